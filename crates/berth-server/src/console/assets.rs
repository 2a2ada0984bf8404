//! The console's static files, embedded in the binary and served under a content-hashed name
//! (`/assets/console.<hash>.css`) so they can be cached for a year: a new build with a changed
//! file changes its URL.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::extract::Path;

/// htmx 2.0.11 from the npm package `htmx.org` (0BSD); see `assets/README.md`.
const HTMX: &[u8] = include_bytes!("../../assets/htmx.min.js");
/// htmx's Server-Sent Events extension 2.2.4 from the npm package `htmx-ext-sse` (0BSD).
const HTMX_SSE: &[u8] = include_bytes!("../../assets/htmx-ext-sse.min.js");
/// The console's own few lines of script (copy buttons, log scrolling); hand-written.
const JS: &[u8] = include_bytes!("../../assets/console.js");
const CSS: &[u8] = include_bytes!("../../assets/console.css");

/// FNV-1a: a stable, dependency-free content fingerprint (not a security boundary).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

struct Asset {
    name: String,
    bytes: &'static [u8],
    content_type: &'static str,
}

static ASSETS: LazyLock<[Asset; 4]> = LazyLock::new(|| {
    [
        Asset {
            name: format!("htmx-2.0.11.{:016x}.min.js", fnv1a(HTMX)),
            bytes: HTMX,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            name: format!("htmx-ext-sse-2.2.4.{:016x}.min.js", fnv1a(HTMX_SSE)),
            bytes: HTMX_SSE,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            name: format!("console.{:016x}.js", fnv1a(JS)),
            bytes: JS,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            name: format!("console.{:016x}.css", fnv1a(CSS)),
            bytes: CSS,
            content_type: "text/css; charset=utf-8",
        },
    ]
});

static JS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", ASSETS[0].name));
static SSE_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", ASSETS[1].name));
static APP_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", ASSETS[2].name));
static CSS_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}", ASSETS[3].name));

/// Where the page finds htmx.
pub fn js_url() -> &'static str {
    &JS_URL
}

/// Where the page finds htmx's SSE extension (loaded after htmx).
pub fn sse_url() -> &'static str {
    &SSE_URL
}

/// Where the page finds the console's own script.
pub fn app_js_url() -> &'static str {
    &APP_URL
}

/// Where the page finds the style sheet.
pub fn css_url() -> &'static str {
    &CSS_URL
}

/// `GET /assets/{name}`: only the current names exist; an old hash is a 404, never stale
/// content under a new name.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            a.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        assert!(js_url().starts_with("/assets/htmx-2.0.11."), "{}", js_url());
        assert!(js_url().ends_with(".min.js"));
        assert!(css_url().starts_with("/assets/console.") && css_url().ends_with(".css"));
        assert!(sse_url().starts_with("/assets/htmx-ext-sse-2.2.4."));
        assert!(app_js_url().starts_with("/assets/console.") && app_js_url().ends_with(".js"));
        let sse = std::str::from_utf8(HTMX_SSE).unwrap();
        assert!(sse.contains("htmx.defineExtension(\"sse\""), "{sse:.80}");
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        // The vendored file is the release it claims to be.
        let head = std::str::from_utf8(&HTMX[..200]).unwrap();
        assert!(head.starts_with("var htmx=function()"), "{head}");
        assert!(
            std::str::from_utf8(HTMX)
                .unwrap()
                .contains("version:\"2.0.11\""),
            "htmx.min.js is not 2.0.11"
        );
    }
}
