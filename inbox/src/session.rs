//! Sessions and CSRF tokens: a signed cookie (HMAC-SHA256 with the session secret), no server-side
//! session table. The cookie is `HttpOnly; Secure; SameSite=Lax`; every form carries a CSRF token
//! derived from the session, so a page of another site cannot post a vote in a member's name.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::hmac;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const SESSION_COOKIE: &str = "inbox_session";
pub const LOGIN_COOKIE: &str = "inbox_login";
pub const LANG_COOKIE: &str = "inbox_lang";

/// Session lifetime: a working day.
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// Who is logged in, from the ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub subject: String,
    pub email: String,
    pub name: String,
    /// The groups claim's values (only what membership needs).
    pub groups: Vec<String>,
    /// Unix seconds.
    pub expires: i64,
}

/// The pending login: what the callback must see again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub expires: i64,
}

#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// `base64url(json).base64url(hmac)`.
    pub fn seal<T: Serialize>(&self, value: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The value, if the signature is ours and the value is not expired.
    pub fn open<T: DeserializeOwned + Expiring>(
        &self,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> Option<T> {
        let (payload, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let value: T = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (value.expires() > now.timestamp()).then_some(value)
    }

    /// The CSRF token of a session cookie value.
    pub fn csrf(&self, sealed_session: &str) -> String {
        let tag = hmac::sign(&self.key, format!("csrf:{sealed_session}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Checked with `hmac::verify` (constant time).
    pub fn csrf_ok(&self, sealed_session: &str, token: &str) -> bool {
        URL_SAFE_NO_PAD.decode(token).is_ok_and(|tag| {
            hmac::verify(&self.key, format!("csrf:{sealed_session}").as_bytes(), &tag).is_ok()
        })
    }
}

pub trait Expiring {
    fn expires(&self) -> i64;
}

impl Expiring for Session {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Expiring for Login {
    fn expires(&self) -> i64 {
        self.expires
    }
}

/// A `Set-Cookie` value with the attributes every inbox cookie gets.
pub fn cookie(name: &str, value: &str, path: &str, max_age: i64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn read_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// URL-safe random token of `bytes` bytes.
pub fn random_token(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    // The OS random source does not fail on Linux once booted; a zero token would still be
    // unique enough to fail the state check rather than pass it.
    let _ = ring::rand::SystemRandom::new().fill(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires: i64) -> Session {
        Session {
            subject: "s".into(),
            email: "a@uk.de".into(),
            name: "A".into(),
            groups: vec![],
            expires,
        }
    }

    #[test]
    fn sealed_values_open_only_with_the_key_and_before_expiry() {
        let now = Utc::now();
        let signer = Signer::new(b"secret");
        let sealed = signer.seal(&session(now.timestamp() + 60));
        assert_eq!(
            signer.open::<Session>(&sealed, now),
            Some(session(now.timestamp() + 60))
        );
        assert_eq!(Signer::new(b"other").open::<Session>(&sealed, now), None);
        let expired = signer.seal(&session(now.timestamp() - 1));
        assert_eq!(signer.open::<Session>(&expired, now), None);
        // A changed payload with the old tag fails.
        let (_, tag) = sealed.split_once('.').expect("dot");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(br#"{"subject":"x"}"#));
        assert_eq!(signer.open::<Session>(&forged, now), None);
        assert!(signer.csrf_ok(&sealed, &signer.csrf(&sealed)));
        assert!(!signer.csrf_ok(&sealed, &signer.csrf(&expired)));
    }

    #[test]
    fn cookies() {
        assert_eq!(
            read_cookie("a=1; inbox_session=x.y; b=2", SESSION_COOKIE),
            Some("x.y")
        );
        assert_eq!(read_cookie("a=1", SESSION_COOKIE), None);
        let c = cookie(SESSION_COOKIE, "v", "/inbox", 60);
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/inbox"] {
            assert!(c.contains(attr), "{c}");
        }
    }
}
