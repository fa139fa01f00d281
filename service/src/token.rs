//! Static bearer tokens, stored only as their SHA-256: a config Secret never holds a usable
//! credential twice, and comparing digests reveals nothing about the token through timing.

use std::path::Path;

use serde::Deserialize;

/// One configured token.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticToken {
    /// Who presents it (the name metrics and logs use).
    pub requester: String,
    /// Hex SHA-256 of the token.
    #[serde(default)]
    pub sha256: String,
    /// Or a file holding the token itself (a mounted Secret; surrounding whitespace is ignored).
    /// Read once at start and kept only as its hash.
    #[serde(default)]
    pub token_file: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tokens[{0}].sha256 must be 64 lowercase hex digits (or set tokenFile)")]
    BadHash(usize),
    #[error("tokens[{0}].tokenFile {1} is empty")]
    EmptyToken(usize, String),
}

/// The tokens of a config, as digests.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    tokens: Vec<(String, [u8; 32])>,
}

impl TokenSet {
    /// Reads every `tokenFile` and checks every hash; errors name the entry.
    pub fn load(tokens: &[StaticToken]) -> Result<Self, TokenError> {
        let mut out = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let hash = match &t.token_file {
                Some(file) => {
                    let raw =
                        std::fs::read(Path::new(file)).map_err(|source| TokenError::Read {
                            path: file.clone(),
                            source,
                        })?;
                    let token = String::from_utf8_lossy(&raw);
                    let token = token.trim();
                    if token.is_empty() {
                        return Err(TokenError::EmptyToken(i, file.clone()));
                    }
                    digest(token)
                }
                None => parse_hex32(&t.sha256).ok_or(TokenError::BadHash(i))?,
            };
            out.push((t.requester.clone(), hash));
        }
        Ok(Self { tokens: out })
    }

    /// The requester whose token this is.
    pub fn find(&self, token: &str) -> Option<&str> {
        let d = digest(token);
        self.tokens
            .iter()
            .find(|(_, hash)| *hash == d)
            .map(|(r, _)| r.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The token of an `Authorization: Bearer …` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a token, as a config's `sha256` field wants it.
pub fn token_sha256(token: &str) -> String {
    hex(&digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_digest_and_bad_hashes_name_the_entry() {
        let set = TokenSet::load(&[StaticToken {
            requester: "dsf".into(),
            sha256: token_sha256("s3cret"),
            token_file: None,
        }])
        .expect("load");
        assert_eq!(set.find("s3cret"), Some("dsf"));
        assert_eq!(set.find("wrong"), None);
        assert_eq!(bearer(Some("Bearer s3cret")), Some("s3cret"));
        assert_eq!(bearer(Some("Basic czNjcmV0")), None);
        assert_eq!(bearer(Some("Bearer  ")), None);
        let bad = TokenSet::load(&[StaticToken {
            requester: "dsf".into(),
            sha256: "S3CRET".into(),
            token_file: None,
        }]);
        assert!(matches!(bad, Err(TokenError::BadHash(0))));
    }
}
