//! Console sessions and CSRF tokens.
//!
//! Signing in trades an API token for a random session id in an `HttpOnly; SameSite=Strict`
//! cookie. The server keeps, in memory, the token the session stands for and the session's
//! CSRF token; the browser never holds the API token after the sign-in form. Every request
//! re-authenticates the token, so revoking or expiring it ends its sessions at once. Sessions
//! die with the process (signing in again after a restart is the price of not storing bearer
//! secrets in the database).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use berth_core::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Cookie holding the session id.
pub const SESSION_COOKIE: &str = "berth_session";
/// Cookie holding the sign-in form's CSRF token (before there is a session).
pub const LOGIN_COOKIE: &str = "berth_login";

/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// No session lives longer than this, used or not.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many sessions; the least recently used one goes first.
const MAX_SESSIONS: usize = 10_000;

struct Entry {
    token: Secret,
    csrf: String,
    created: Instant,
    seen: Instant,
    /// A secret to show once on the next page (a token just created): (what, secret).
    flash: Option<(String, Secret)>,
}

/// What a valid session carries.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: Secret,
    pub csrf: String,
}

/// The in-memory session table, keyed by the SHA-256 of the session id (so lookups do not
/// compare the secret id itself byte by byte).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// `bytes` random bytes, hex-encoded.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("no system randomness: {e}"))?;
    Ok(hex::encode(buf))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // A panic while holding the lock cannot leave the map half-updated: every critical
        // section is a single insert/remove/lookup.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for `token`; returns its id (for the cookie) and its CSRF token.
    pub fn create(&self, token: Secret) -> Result<(String, String), String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, e| alive(e, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.seen).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            Entry {
                token,
                csrf: csrf.clone(),
                created: now,
                seen: now,
                flash: None,
            },
        );
        Ok((id, csrf))
    }

    /// The live session with this id, marking it used.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = key(id);
        let entry = map.get_mut(&k)?;
        if !alive(entry, now) {
            map.remove(&k);
            return None;
        }
        entry.seen = now;
        Some(Session {
            token: entry.token.clone(),
            csrf: entry.csrf.clone(),
        })
    }

    /// Keeps `secret` for the session's next page that asks for `what` (Post/Redirect/Get for
    /// secrets shown once: the POST stores it, the GET after the redirect takes it, a reload
    /// finds nothing). A newer flash replaces an older one.
    pub fn set_flash(&self, id: &str, what: &str, secret: Secret) {
        if let Some(entry) = self.lock().get_mut(&key(id)) {
            entry.flash = Some((what.to_owned(), secret));
        }
    }

    /// Takes the flash stored for `what`, if it is still there.
    pub fn take_flash(&self, id: &str, what: &str) -> Option<Secret> {
        let mut map = self.lock();
        let entry = map.get_mut(&key(id))?;
        match &entry.flash {
            Some((w, _)) if w == what => entry.flash.take().map(|(_, s)| s),
            _ => None,
        }
    }

    /// Ends a session; unknown ids are fine.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }
}

fn alive(e: &Entry, now: Instant) -> bool {
    now.duration_since(e.seen) < IDLE && now.duration_since(e.created) < MAX_AGE
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when berth is reached
/// over HTTPS.
pub fn set_cookie(name: &str, value: &str, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}")
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    format!("{}; Max-Age=0", set_cookie(name, "", path, secure))
}

/// Constant-time comparison of a presented CSRF token with the expected one.
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_live_and_die() {
        let s = Sessions::default();
        let (id, csrf) = s.create(Secret::new("berth_pat_x")).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        let got = s.get(&id).unwrap();
        assert_eq!(got.token.expose(), "berth_pat_x");
        assert_eq!(got.csrf, csrf);
        assert!(s.get("nope").is_none());
        // A flash is taken once, and only by what it is for.
        s.set_flash(&id, "ci:1", Secret::new("berth_ci_x"));
        assert!(s.take_flash(&id, "ci:2").is_none());
        assert_eq!(s.take_flash(&id, "ci:1").unwrap().expose(), "berth_ci_x");
        assert!(s.take_flash(&id, "ci:1").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn cookies_and_tokens() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; berth_session=abc"));
        h.append(COOKIE, HeaderValue::from_static("berth_login=def"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), Some("def"));
        assert_eq!(cookie(&h, "berth"), None);
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", ""));
        assert!(!tokens_match("", ""));
        assert_eq!(
            set_cookie(SESSION_COOKIE, "v", "/", true),
            "berth_session=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(clear_cookie(SESSION_COOKIE, "/", false).ends_with("Max-Age=0"));
    }
}
