//! Who may read the matrix, the Data Map and the page.
//!
//! What they show is not about patients (release names, component health, bucketed totals of
//! three or more sites), but it is the consortium's internal picture, so reading needs a static
//! bearer token by default, stored only as its SHA-256 (as the gate's callers). A consortium that
//! wants the page in a browser puts the hub behind its single-sign-on proxy (e.g. oauth2-proxy in
//! front of the Ingress) and starts it with `--public-read`, which drops the token check.
//!
//! Not behind this check: the feed (its entries carry their own signatures, and every site must
//! be able to fetch it) and report submission (each report is signed with its site's key).
//!
//! Readers config (`--readers`, JSON): `{"tokens": [{"requester": "release-managers",
//! "sha256": "<hex SHA-256 of the token>"}]}` or `"tokenFile"` instead of `"sha256"`.

use std::path::Path;

use miracolix_service::config::{ConfigFileError, read_json};
use miracolix_service::token::{StaticToken, TokenError, TokenSet, bearer};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadersConfig {
    #[serde(default)]
    pub tokens: Vec<StaticToken>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "nobody could read the matrix: give --readers with at least one token, or --public-read when a proxy in front of the hub authenticates"
    )]
    NoReaders,
}

/// The read-access rule.
#[derive(Debug, Clone)]
pub enum Access {
    /// Anyone who reaches the hub may read.
    Public,
    /// A bearer token of the set.
    Tokens(TokenSet),
}

impl Access {
    pub fn load(readers: Option<&Path>, public: bool) -> Result<Self, AccessError> {
        if public {
            return Ok(Access::Public);
        }
        let Some(path) = readers else {
            return Err(AccessError::NoReaders);
        };
        let config: ReadersConfig = read_json(path, "readers config")?;
        Self::tokens(&config.tokens)
    }

    pub fn tokens(tokens: &[StaticToken]) -> Result<Self, AccessError> {
        let set = TokenSet::load(tokens)?;
        if set.is_empty() {
            return Err(AccessError::NoReaders);
        }
        Ok(Access::Tokens(set))
    }

    /// The reader behind an `Authorization` header value (`"public"` when open); `None` refuses.
    pub fn reader(&self, authorization: Option<&str>) -> Option<String> {
        match self {
            Access::Public => Some("public".to_string()),
            Access::Tokens(set) => bearer(authorization)
                .and_then(|t| set.find(t))
                .map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miracolix_service::token::token_sha256;

    #[test]
    fn tokens_or_public_and_never_nobody() {
        let access = Access::tokens(&[StaticToken {
            requester: "rm".into(),
            sha256: token_sha256("t0ken"),
            token_file: None,
        }])
        .expect("access");
        assert_eq!(access.reader(Some("Bearer t0ken")).as_deref(), Some("rm"));
        assert_eq!(access.reader(Some("Bearer other")), None);
        assert_eq!(access.reader(None), None);
        assert!(Access::Public.reader(None).is_some());
        assert!(matches!(
            Access::load(None, false),
            Err(AccessError::NoReaders)
        ));
        assert!(matches!(Access::tokens(&[]), Err(AccessError::NoReaders)));
    }
}
