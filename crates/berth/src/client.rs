//! The HTTP client of the CLI: finds a token, calls the API, decodes `ApiError`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use berth_core::api::ApiError;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A failed call: the server's error envelope when it sent one.
#[derive(Debug)]
pub struct CallError {
    pub api: Option<ApiError>,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Where `berth login` keeps tokens: `$XDG_CONFIG_HOME/berth/credentials.json`
/// (default `~/.config/berth/credentials.json`), mode 0600.
pub fn credentials_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("berth").join("credentials.json"))
}

fn read_credentials(path: &Path) -> serde_json::Map<String, Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("servers").and_then(Value::as_object).cloned())
        .unwrap_or_default()
}

/// Saves (or with `None` removes) the token for `server`.
pub fn store_credentials(server: &str, token: Option<&str>) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path =
        credentials_path().ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
    let mut servers = read_credentials(&path);
    match token {
        Some(t) => {
            servers.insert(server.to_owned(), serde_json::json!({ "token": t }));
        }
        None => {
            servers.remove(server);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(
        serde_json::to_string_pretty(&serde_json::json!({ "servers": servers }))?.as_bytes(),
    )?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn is_loopback(server: &str) -> bool {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]")
}

/// The token to use: `BERTH_TOKEN`, else the one saved by `berth login` for this server, else
/// (for a server on this machine) the admin token in the local data dir.
pub fn resolve_token(server: &str, data_dir: &Path) -> Option<String> {
    if let Ok(t) = std::env::var("BERTH_TOKEN")
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_owned());
    }
    if let Some(path) = credentials_path()
        && let Some(t) = read_credentials(&path)
            .get(server.trim_end_matches('/'))
            .and_then(|v| v.get("token"))
            .and_then(Value::as_str)
    {
        return Some(t.to_owned());
    }
    if is_loopback(server) {
        let file = data_dir.join("admin-token");
        if let Ok(t) = std::fs::read_to_string(file) {
            let t = t.trim();
            if !t.is_empty() {
                return Some(t.to_owned());
            }
        }
    }
    None
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.finish(req, &url).await
    }

    /// Sends a request and decodes the answer or the `ApiError`.
    async fn finish<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, CallError> {
        let resp = req.send().await.map_err(|e| CallError {
            api: None,
            message: format!(
                "cannot reach the berth server at {}: {}; is `berth serve` running? (--server / BERTH_SERVER)",
                self.base,
                root_cause(&e)
            ),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CallError {
            api: None,
            message: format!("reading the answer from {url} failed: {e}"),
        })?;
        if status.is_success() {
            let bytes = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(bytes).map_err(|e| CallError {
                api: None,
                message: format!("unexpected answer from {url}: {e}"),
            });
        }
        let api: Option<ApiError> = serde_json::from_slice(&bytes).ok();
        let message = match &api {
            Some(a) => {
                let mut m = a.error.message.clone();
                if status.as_u16() == 401 {
                    m.push_str("; set BERTH_TOKEN or run `berth login`");
                }
                m
            }
            None => format!(
                "{} answered {status}: {}",
                url,
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        };
        Err(CallError { api, message })
    }

    /// PUT with a `text/plain` body (schema files).
    pub async fn put_text<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        self.finish(req, &url).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// GETs a list that comes a page at a time (`{"items": […], "nextCursor": …}`), following
    /// `nextCursor` until the last page, or until `max` items: one `{"items": […]}` with the
    /// first page's other fields. `path` may carry a query string already; each request asks
    /// for at most `page` items (the list's largest page).
    pub async fn get_pages(
        &self,
        path: &str,
        max: Option<usize>,
        page: u32,
    ) -> Result<Value, CallError> {
        let mut items: Vec<Value> = Vec::new();
        let mut first: Option<Value> = None;
        let mut cursor: Option<String> = None;
        loop {
            let want = max.map_or(page as usize, |m| m.saturating_sub(items.len()));
            let limit = want.clamp(1, page as usize);
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={}", seg(c)));
            }
            let mut answer: Value = self.get(&url).await?;
            let next = answer
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(page_items) = answer.get_mut("items").and_then(Value::as_array_mut) {
                items.append(page_items);
            }
            if first.is_none() {
                first = Some(answer);
            }
            match next {
                Some(n) if max.is_none_or(|m| items.len() < m) => cursor = Some(n),
                _ => break,
            }
        }
        let mut out = first.unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(o) = out.as_object_mut() {
            o.remove("nextCursor");
            o.insert("items".into(), Value::Array(items));
        }
        Ok(out)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call::<(), T>(Method::DELETE, path, None).await
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:7400"));
        assert!(is_loopback("http://localhost:7400/"));
        assert!(is_loopback("http://[::1]:7400"));
        assert!(!is_loopback("https://berth.example.com"));
        assert!(!is_loopback("http://127.0.0.1.evil.com"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("shop"), "shop");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
