//! A string that must not leak: registry passwords, tokens.
//!
//! `Debug` and `Display` print `<redacted>`, so a secret inside a struct that is logged or put in
//! an error message stays hidden. It deserializes from a plain JSON string but deliberately does
//! not implement `Serialize`: a secret cannot end up in an API response or a log line encoded as
//! JSON by accident — code that really must send it calls [`Secret::expose`] and says so.

use serde::Deserialize;
use std::fmt;

/// A secret string. Only [`Secret::expose`] reveals it.
///
/// Equality is an ordinary (not constant-time) comparison: it is meant for tests and for
/// detecting changed settings, not for checking a credential presented by a client — use
/// `subtle` for that.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Every call site is a place where it can leak; keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn deserializes_from_a_string() {
        #[derive(Deserialize, Debug)]
        struct Login {
            password: Secret,
        }
        let login: Login = serde_json::from_str(r#"{"password":"s3cr:et"}"#).unwrap();
        assert_eq!(login.password, Secret::new("s3cr:et"));
        assert!(!format!("{login:?}").contains("s3cr"));
        assert!(serde_json::from_str::<Secret>("42").is_err());
    }
}
