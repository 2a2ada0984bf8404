//! Cursor pagination of the lists that grow without bound (components, projects, deployments,
//! Previous Images, task executions, the audit log).
//!
//! A page is read in keyset order (`WHERE (sort key, id) < (cursor) ORDER BY … LIMIT n + 1`,
//! never OFFSET) and answers `{"items": […], "nextCursor": "…"}`; the last page has no
//! `nextCursor`. The cursor is opaque to callers: base64url of the list's kind, a tag of its
//! scope (which organization, project, component, filters) and the sort key of the page's last
//! row. A cursor that does not decode, or that another list (or the same list with other
//! filters) handed out, is a 422 naming `cursor`: it would silently page through something
//! else. It carries no secret; a cursor crafted by hand only moves where a page the caller may
//! read anyway starts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ApiResult};

/// Longest cursor accepted (the ones we hand out are far shorter).
const MAX_CURSOR: usize = 1024;

/// One list's page size rules: the default and the largest `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default: u32,
    pub max: u32,
}

impl Limits {
    /// The page size asked for: `limit`, or the default; 422 naming `limit` out of range.
    pub fn pick(self, limit: Option<u32>) -> ApiResult<u32> {
        let limit = limit.unwrap_or(self.default);
        if (1..=self.max).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::validation(
                "limit",
                format!("must be between 1 and {}", self.max),
            ))
        }
    }
}

/// Which list a cursor belongs to: its kind and its scope (the path and filters that select
/// the rows).
#[derive(Debug, Clone)]
pub struct ListScope {
    kind: &'static str,
    tag: String,
}

impl ListScope {
    pub fn new(kind: &'static str, scope: &[&str]) -> Self {
        let mut hash = Sha256::new();
        hash.update(kind.as_bytes());
        for part in scope {
            // Length-prefixed: ("ab", "c") and ("a", "bc") are different scopes.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        ListScope {
            kind,
            tag: hex::encode(&hash.finalize()[..8]),
        }
    }

    /// The cursor of the page that starts after `key` (the sort key of a page's last row).
    pub fn cursor(&self, key: &[&str]) -> String {
        let doc = serde_json::json!([self.kind, self.tag, key]);
        URL_SAFE_NO_PAD.encode(doc.to_string())
    }

    /// The sort key in `cursor`, which must be one of this list's with `parts` parts; a 422
    /// naming `cursor` otherwise. `None` for no cursor (the first page).
    pub fn key(&self, cursor: Option<&str>, parts: usize) -> ApiResult<Option<Vec<String>>> {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        let malformed = || {
            ApiError::validation(
                "cursor",
                "is not a cursor of this server: pass the nextCursor of the previous page as it came",
            )
        };
        if cursor.is_empty() || cursor.len() > MAX_CURSOR {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim_end_matches('='))
            .map_err(|_| malformed())?;
        let (kind, tag, key): (String, String, Vec<String>) =
            serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        if kind != self.kind || tag != self.tag {
            return Err(ApiError::validation(
                "cursor",
                "belongs to another list (or the same list with other filters): pass the nextCursor this list answered",
            ));
        }
        // NUL cannot be stored in PostgreSQL text: no key we hand out holds one.
        if key.len() != parts || key.iter().any(|k| k.contains('\0')) {
            return Err(malformed());
        }
        Ok(Some(key))
    }

    /// [`ListScope::key`] for keys of two parts, as a pair.
    pub fn pair(&self, cursor: Option<&str>) -> ApiResult<Option<(String, String)>> {
        Ok(self.key(cursor, 2)?.map(|mut k| {
            let second = k.pop().unwrap_or_default();
            let first = k.pop().unwrap_or_default();
            (first, second)
        }))
    }

    /// [`ListScope::key`] for keys of one part.
    pub fn single(&self, cursor: Option<&str>) -> ApiResult<Option<String>> {
        Ok(self.key(cursor, 1)?.and_then(|mut k| k.pop()))
    }
}

/// A `(String, String)` key as the `(&str, &str)` the store takes.
pub fn as_pair(key: &Option<(String, String)>) -> Option<(&str, &str)> {
    key.as_ref().map(|(a, b)| (a.as_str(), b.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn a_cursor_comes_back_as_its_key() {
        let scope = ListScope::new("deployments", &["default", "shop", "web", ""]);
        let cursor = scope.cursor(&["2026-01-01T00:00:00.000Z", "0193-id"]);
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{cursor}"
        );
        assert_eq!(
            scope.pair(Some(&cursor)).unwrap(),
            Some(("2026-01-01T00:00:00.000Z".into(), "0193-id".into()))
        );
        assert_eq!(scope.pair(None).unwrap(), None);
    }

    #[test]
    fn malformed_and_foreign_cursors_are_422_naming_cursor() {
        let scope = ListScope::new("deployments", &["default", "shop", "web", ""]);
        let other_env = ListScope::new("deployments", &["default", "shop", "web", "production"]);
        let other_kind = ListScope::new("previous-images", &["default", "shop", "web", ""]);
        let shifted = ListScope::new("deployments", &["default", "shopw", "eb", ""]);
        let good = scope.cursor(&["a", "b"]);
        let json = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let cases = [
            String::new(),
            "not base64!".into(),
            "x".repeat(2000),
            URL_SAFE_NO_PAD.encode("not json"),
            json(serde_json::json!({"kind": "deployments"})),
            json(serde_json::json!(["deployments", 5, ["a", "b"]])),
            // the right list, but a key of the wrong shape
            scope.cursor(&["a"]),
            scope.cursor(&["a", "b", "c"]),
            scope.cursor(&["a\0", "b"]),
            other_env.cursor(&["a", "b"]),
            other_kind.cursor(&["a", "b"]),
            shifted.cursor(&["a", "b"]),
        ];
        for cursor in cases {
            let err = scope.pair(Some(&cursor)).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{cursor}");
            assert_eq!(err.field.as_deref(), Some("cursor"), "{cursor}");
        }
        assert!(scope.pair(Some(&good)).is_ok());
    }

    #[test]
    fn limits_are_checked() {
        let limits = Limits {
            default: 50,
            max: 500,
        };
        assert_eq!(limits.pick(None).unwrap(), 50);
        assert_eq!(limits.pick(Some(500)).unwrap(), 500);
        for bad in [0, 501] {
            let err = limits.pick(Some(bad)).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("limit"));
            assert!(err.message.contains("between 1 and 500"), "{}", err.message);
        }
    }
}
