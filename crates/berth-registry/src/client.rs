//! The registry client proper.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::challenge::parse_challenges;
use crate::coalesce::{Coalescer, TtlCache};
use crate::guard::{GuardedResolver, SsrfPolicy, check_ip, check_name};
use crate::{Error, Result, Step};

/// Largest manifest, tag list or token answer read (bytes).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
const MAX_ATTEMPTS: u32 = 3;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
const MAX_TAG_PAGES: usize = 100;

/// Manifest media types berth accepts, in the Accept header's order.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How berth authenticates to a registry. `Debug` never shows the password.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// Username and password or access token, byte-exact (GAR's `_json_key` password is a
    /// whole JSON document).
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// An OS/architecture(/variant) pair as in an image index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Self {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(format!(
                "platform {s:?} must look like os/arch or os/arch/variant, e.g. linux/amd64"
            )),
        }
    }
}

impl Platform {
    /// Whether an index entry `other` runs here (a missing variant matches any).
    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

/// The kind of manifest a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaType {
    OciIndex,
    OciManifest,
    DockerManifestList,
    DockerManifest,
    Other(String),
}

impl MediaType {
    fn from_header(s: &str) -> Self {
        let essence = s.split(';').next().unwrap_or("").trim();
        match essence {
            "application/vnd.oci.image.index.v1+json" => MediaType::OciIndex,
            "application/vnd.oci.image.manifest.v1+json" => MediaType::OciManifest,
            "application/vnd.docker.distribution.manifest.list.v2+json" => {
                MediaType::DockerManifestList
            }
            "application/vnd.docker.distribution.manifest.v2+json" => MediaType::DockerManifest,
            other => MediaType::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediaType::OciIndex => MANIFEST_TYPES[0],
            MediaType::OciManifest => MANIFEST_TYPES[1],
            MediaType::DockerManifestList => MANIFEST_TYPES[2],
            MediaType::DockerManifest => MANIFEST_TYPES[3],
            MediaType::Other(s) => s,
        }
    }

    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }
}

/// What a tag or digest resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `sha256:…` of the manifest (or index) the reference names.
    pub digest: String,
    pub media_type: MediaType,
    /// Platforms listed by an index; empty for a single manifest.
    pub platforms: Vec<Platform>,
    /// For an index: whether the wanted platform is in it. `None` for a single manifest (its
    /// platform is in the config blob, which berth does not fetch).
    pub platform_available: Option<bool>,
}

/// Per-registry settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Extra trusted CA certificates (PEM), on top of the system roots.
    pub ca_pem: Option<String>,
    /// Allow plain HTTP for a non-loopback host (loopback hosts may always fall back to it).
    pub insecure: bool,
    /// The platform deployments need (default linux/amd64).
    pub platform: Platform,
    pub ssrf: SsrfPolicy,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            ca_pem: None,
            insecure: false,
            platform: Platform::default(),
            ssrf: SsrfPolicy::default(),
            timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
enum AuthMode {
    /// Not learned yet.
    Unknown,
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct CachedToken {
    token: String,
    expires: Instant,
}

/// How long a resolved digest is answered from memory, and how many are kept.
const DIGEST_CACHE_TTL: Duration = Duration::from_secs(600);
const DIGEST_CACHE_CAPACITY: usize = 4096;

/// A client for one registry host.
pub struct RegistryClient {
    /// host[:port] where the API lives (e.g. `registry-1.docker.io`, `127.0.0.1:5000`).
    host: String,
    http: reqwest::Client,
    creds: Credentials,
    opts: RegistryOptions,
    scheme: Mutex<Option<&'static str>>,
    auth: Mutex<AuthMode>,
    tokens: Mutex<HashMap<String, CachedToken>>,
    /// Concurrent resolutions of one `repository:reference` share round trips.
    resolving: Coalescer<(String, String), Resolved, Error>,
    /// Digests that resolved recently (immutable content: no need to ask again).
    resolved_digests: TtlCache<(String, String), Resolved>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("host", &self.host)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorsBody {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ManifestBody {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Vec<IndexEntry>>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

#[derive(Deserialize)]
struct IndexEntry {
    platform: Option<IndexPlatform>,
}

#[derive(Deserialize)]
struct IndexPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn is_loopback_host(host: &str) -> bool {
    let h = host_part(host);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The registry's own error text from an `{"errors":[…]}` body, or a short excerpt.
fn registry_detail(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorsBody>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| match (&i.code, &i.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let text = text.trim();
    if text.is_empty() {
        "no details".to_owned()
    } else {
        text.to_owned()
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

impl RegistryClient {
    /// A client for `host` (host[:port], no scheme). Makes no request.
    pub fn new(host: &str, creds: Credentials, opts: RegistryOptions) -> Result<Self> {
        // reqwest is built without a default crypto provider; install ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if host.is_empty() || host.contains('/') || host.contains("://") {
            return Err(Error::Config(format!(
                "registry host {host:?} must be host[:port] without scheme or path"
            )));
        }
        let policy = opts.ssrf;
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("more than 5 redirects");
            }
            let literal = attempt.url().host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            });
            match literal.map(|ip| check_ip(ip, policy)) {
                Some(Err(why)) => attempt.error(format!("redirect blocked: {why}")),
                _ => attempt.follow(),
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .timeout(opts.timeout)
            .connect_timeout(Duration::from_secs(10))
            .dns_resolver(GuardedResolver { policy }.into_arc())
            .redirect(redirect)
            .http1_only();
        if let Some(pem) = &opts.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| Error::Config(format!("the CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("the CA bundle holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            Error::Config(format!(
                "building the HTTP client failed: {}",
                error_chain(&e)
            ))
        })?;
        Ok(Self {
            host: host.to_owned(),
            http,
            creds,
            opts,
            scheme: Mutex::new(None),
            auth: Mutex::new(AuthMode::Unknown),
            tokens: Mutex::new(HashMap::new()),
            resolving: Coalescer::default(),
            resolved_digests: TtlCache::new(DIGEST_CACHE_TTL, DIGEST_CACHE_CAPACITY),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Checks a URL's literal IP or well-known metadata name before connecting (DNS names are
    /// checked by the resolver).
    fn check_url(&self, url: &Url) -> Result<()> {
        let Some(h) = url.host_str() else {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: format!("URL {url} has no host"),
            });
        };
        let bare = h.trim_start_matches('[').trim_end_matches(']');
        let blocked = |reason: String| Error::Blocked {
            host: h.to_owned(),
            reason,
        };
        check_name(bare).map_err(blocked)?;
        if let Ok(ip) = bare.parse::<IpAddr>() {
            check_ip(ip, self.opts.ssrf).map_err(blocked)?;
        }
        Ok(())
    }

    fn classify(&self, host: &str, e: &reqwest::Error) -> Error {
        let chain = error_chain(e);
        let lower = chain.to_ascii_lowercase();
        if e.is_timeout() {
            return Error::Timeout {
                host: host.to_owned(),
                seconds: self.opts.timeout.as_secs(),
            };
        }
        if lower.contains("blocked:") || lower.contains("cloud metadata") {
            let reason = chain.split("blocked: ").nth(1).unwrap_or(&chain).to_owned();
            return Error::Blocked {
                host: host.to_owned(),
                reason,
            };
        }
        if lower.contains("dns error")
            || lower.contains("failed to lookup")
            || lower.contains("name or service not known")
            || lower.contains("no addresses")
        {
            return Error::Dns {
                host: host.to_owned(),
                reason: chain,
            };
        }
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("corrupt message")
            || lower.contains("invalidcontenttype")
        {
            return Error::Tls {
                host: host.to_owned(),
                reason: chain,
            };
        }
        Error::Connect {
            host: host.to_owned(),
            reason: chain,
        }
    }

    /// `https`, or `http` for a loopback/insecure registry that does not speak TLS. Learned on
    /// first use.
    async fn scheme(&self) -> Result<&'static str> {
        if let Some(s) = *lock(&self.scheme) {
            return Ok(s);
        }
        let https = Url::parse(&format!("https://{}/v2/", self.host))
            .map_err(|e| Error::Config(format!("registry host {:?}: {e}", self.host)))?;
        self.check_url(&https)?;
        let chosen = match self.http.get(https).send().await {
            Ok(_) => "https",
            Err(e) => {
                let err = self.classify(&self.host, &e);
                let may_fall_back = is_loopback_host(&self.host) || self.opts.insecure;
                match err {
                    Error::Tls { .. } | Error::Connect { .. } if may_fall_back => {
                        let http = Url::parse(&format!("http://{}/v2/", self.host))
                            .map_err(|e| Error::Config(e.to_string()))?;
                        // Only a registry answer (200 or 401 on /v2/) proves plain HTTP is
                        // right; a TLS server answers plain HTTP with 400, and then the TLS
                        // error is the one to report.
                        match self.http.get(http).send().await {
                            Ok(r) if matches!(r.status().as_u16(), 200 | 401) => "http",
                            Ok(r) if r.status() != StatusCode::BAD_REQUEST => {
                                return Err(Error::Protocol {
                                    host: self.host.clone(),
                                    detail: format!(
                                        "speaks plain HTTP but GET /v2/ answered {}: this is not an OCI/Docker registry API",
                                        r.status()
                                    ),
                                });
                            }
                            _ => return Err(err),
                        }
                    }
                    Error::Tls { host, reason } if !may_fall_back => {
                        return Err(Error::Tls {
                            host,
                            reason: format!(
                                "{reason} (give the registry's CA certificate, or mark it insecure if it speaks plain HTTP)"
                            ),
                        });
                    }
                    other => return Err(other),
                }
            }
        };
        debug!(host = %self.host, scheme = chosen, "registry scheme");
        *lock(&self.scheme) = Some(chosen);
        Ok(chosen)
    }

    async fn url(&self, path_and_query: &str) -> Result<Url> {
        let scheme = self.scheme().await?;
        Url::parse(&format!("{scheme}://{}{path_and_query}", self.host))
            .map_err(|e| Error::Config(format!("bad URL for {path_and_query}: {e}")))
    }

    /// Sends with retries on 429/502/503/504, honouring `Retry-After`.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        basic: bool,
    ) -> Result<reqwest::Response> {
        self.check_url(url)?;
        // With its port: `cannot connect to 127.0.0.1:5000`, not `… to 127.0.0.1`.
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(port)) => format!("{h}:{port}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => self.host.clone(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if basic && let Credentials::Basic { username, password } = &self.creds {
                req = req.basic_auth(username, Some(password));
            }
            let resp = req.send().await.map_err(|e| self.classify(&host, &e))?;
            let status = resp.status();
            let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
            if !retryable || attempt >= MAX_ATTEMPTS {
                return Ok(resp);
            }
            let wait = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_millis(250 * 2u64.pow(attempt - 1)))
                .min(MAX_RETRY_WAIT);
            debug!(%url, %status, ?wait, attempt, "registry busy; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn read_body(&self, resp: reqwest::Response) -> Result<Vec<u8>> {
        let host = self.host.clone();
        let too_big = || Error::Protocol {
            host: host.clone(),
            detail: format!("answer is larger than {MAX_BODY} bytes"),
        };
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_big());
        }
        let mut resp = resp;
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.classify(&self.host, &e))?
        {
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(too_big());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// Learns how the registry wants to be authenticated from a 401 answer.
    fn learn_auth(&self, headers: &HeaderMap) -> AuthMode {
        let mut basic = false;
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let Ok(text) = value.to_str() else { continue };
            for c in parse_challenges(text) {
                if c.scheme == "bearer"
                    && let Some(realm) = c.param("realm")
                {
                    return AuthMode::Bearer {
                        realm: realm.to_owned(),
                        service: c.param("service").map(str::to_owned),
                    };
                }
                basic |= c.scheme == "basic";
            }
        }
        if basic {
            AuthMode::Basic
        } else {
            AuthMode::Unknown
        }
    }

    /// A bearer token for `scope` ("" = no scope), from the cache or the token service.
    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        if let Some(t) = lock(&self.tokens).get(scope)
            && t.expires > Instant::now()
        {
            return Ok(t.token.clone());
        }
        let mut url = Url::parse(realm).map_err(|e| Error::Protocol {
            host: self.host.clone(),
            detail: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: format!("token realm {realm:?} must be http(s)"),
            });
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
            if let Credentials::Basic { username, .. } = &self.creds {
                q.append_pair("account", username);
            }
        }
        let realm_host = url.host_str().unwrap_or_default().to_owned();
        let resp = self
            .send(Method::GET, &url, &HeaderMap::new(), true)
            .await?;
        let status = resp.status();
        let body = self.read_body(resp).await?;
        match status.as_u16() {
            200 => {}
            401 => {
                return Err(Error::Unauthorized {
                    host: realm_host,
                    detail: format!("token service: {}", registry_detail(&body)),
                });
            }
            403 => {
                return Err(Error::Denied {
                    host: realm_host,
                    detail: format!("token service: {}", registry_detail(&body)),
                });
            }
            429 => {
                return Err(Error::RateLimited {
                    host: realm_host,
                    retry_after: None,
                });
            }
            code => {
                return Err(Error::Server {
                    host: realm_host,
                    status: code,
                    detail: format!("token service: {}", registry_detail(&body)),
                });
            }
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            host: realm_host.clone(),
            detail: format!("token answer is not the expected JSON: {e}"),
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                host: realm_host,
                detail: "token answer has neither `token` nor `access_token`".into(),
            })?;
        // The spec's default lifetime is 60 s; keep a margin so a token does not expire in flight.
        let lifetime = answer.expires_in.unwrap_or(60).max(60);
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(10));
        lock(&self.tokens).insert(
            scope.to_owned(),
            CachedToken {
                token: token.clone(),
                expires,
            },
        );
        Ok(token)
    }

    /// A request with authentication: learns the scheme from a 401, fetches a token for
    /// `scope`, and retries once.
    async fn authed(
        &self,
        method: Method,
        path_and_query: &str,
        scope: &str,
        mut headers: HeaderMap,
    ) -> Result<reqwest::Response> {
        let url = self.url(path_and_query).await?;
        for round in 0..2 {
            let mode = lock(&self.auth).clone();
            let mut basic = false;
            match &mode {
                AuthMode::Bearer { realm, service } => {
                    let token = self.token(realm, service.as_deref(), scope).await?;
                    let value = format!("Bearer {token}")
                        .parse()
                        .map_err(|_| Error::Protocol {
                            host: self.host.clone(),
                            detail: "token contains characters not allowed in a header".into(),
                        })?;
                    headers.insert(AUTHORIZATION, value);
                }
                AuthMode::Basic => basic = true,
                AuthMode::None | AuthMode::Unknown => {}
            }
            let resp = self.send(method.clone(), &url, &headers, basic).await?;
            if resp.status() != StatusCode::UNAUTHORIZED || round == 1 {
                if matches!(mode, AuthMode::Unknown) && resp.status() != StatusCode::UNAUTHORIZED {
                    *lock(&self.auth) = AuthMode::None;
                }
                return Ok(resp);
            }
            let learned = self.learn_auth(resp.headers());
            let changed = !matches!(
                (&mode, &learned),
                (AuthMode::Basic, AuthMode::Basic)
                    | (AuthMode::Bearer { .. }, AuthMode::Bearer { .. })
            );
            if matches!(learned, AuthMode::Unknown) || (!changed && matches!(mode, AuthMode::Basic))
            {
                return Ok(resp);
            }
            if !changed {
                // Same bearer scheme but rejected: the cached token may be stale.
                lock(&self.tokens).remove(scope);
            }
            if matches!(learned, AuthMode::Basic) && matches!(self.creds, Credentials::Anonymous) {
                return Ok(resp);
            }
            *lock(&self.auth) = learned;
        }
        unreachable!("the loop returns in its second round")
    }

    fn unauthorized(&self, body: &[u8]) -> Error {
        let detail = registry_detail(body);
        let hint = match self.creds {
            Credentials::Anonymous => {
                " (the registry needs credentials; use auth type basic or docker-config)"
            }
            Credentials::Basic { .. } => " (check the username and password or token)",
        };
        Error::Unauthorized {
            host: self.host.clone(),
            detail: format!("{detail}{hint}"),
        }
    }

    fn status_error(
        &self,
        status: StatusCode,
        body: &[u8],
        what: String,
        headers: &HeaderMap,
    ) -> Error {
        match status.as_u16() {
            401 => self.unauthorized(body),
            403 => Error::Denied {
                host: self.host.clone(),
                detail: registry_detail(body),
            },
            404 => Error::NotFound {
                host: self.host.clone(),
                what,
                detail: registry_detail(body),
            },
            429 => Error::RateLimited {
                host: self.host.clone(),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            },
            code => Error::Server {
                host: self.host.clone(),
                status: code,
                detail: registry_detail(body),
            },
        }
    }

    /// `GET /v2/`: reachable, speaks the distribution API, and accepts the credentials.
    /// Returns how it authenticated: `anonymous`, `basic` or `bearer`.
    pub async fn ping(&self) -> Result<&'static str> {
        let resp = self
            .authed(Method::GET, "/v2/", "", HeaderMap::new())
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.read_body(resp).await?;
        if status.is_success() {
            return Ok(match *lock(&self.auth) {
                AuthMode::Basic => "basic",
                AuthMode::Bearer { .. } => "bearer",
                _ => "anonymous",
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: "GET /v2/ answered 404: this is not an OCI/Docker registry API".into(),
            });
        }
        Err(self.status_error(status, &body, "the registry API".into(), &headers))
    }

    /// Resolves `reference` (tag or digest) of `repository` to the digest of its manifest or
    /// index, checking the wanted platform against an index. Reads only the manifest.
    /// [`Self::resolve`] for callers that share one client: concurrent calls for the same
    /// `repository:reference` share registry round trips (never answered by a lookup that began
    /// before they asked), and a digest that resolved within the last minutes is answered
    /// without asking again.
    pub async fn resolve_shared(
        self: &std::sync::Arc<Self>,
        repository: &str,
        reference: &str,
    ) -> Result<Resolved> {
        let key = (repository.to_owned(), reference.to_owned());
        let by_digest = reference.contains(':');
        if by_digest && let Some(hit) = self.resolved_digests.get(&key) {
            return Ok(hit);
        }
        let client = self.clone();
        let (repo, reference_owned) = key.clone();
        let answer = self
            .resolving
            .run(key.clone(), move || {
                let (client, repo, reference) =
                    (client.clone(), repo.clone(), reference_owned.clone());
                async move { client.resolve(&repo, &reference).await }
            })
            .await;
        if by_digest && let Ok(r) = &answer {
            self.resolved_digests.put(key, r.clone());
        }
        answer
    }

    pub async fn resolve(&self, repository: &str, reference: &str) -> Result<Resolved> {
        let scope = format!("repository:{repository}:pull");
        let path = format!("/v2/{repository}/manifests/{reference}");
        let mut accept = HeaderMap::new();
        accept.insert(
            ACCEPT,
            MANIFEST_TYPES
                .join(", ")
                .parse()
                .expect("static header value"),
        );
        let what = format!("manifest {repository}:{reference}");
        let head = self
            .authed(Method::HEAD, &path, &scope, accept.clone())
            .await?;
        let head_status = head.status();
        let head_digest = head
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let head_type = head
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(MediaType::from_header);
        if head_status.is_success()
            && let (Some(digest), Some(media_type)) = (&head_digest, &head_type)
            && !media_type.is_index()
            && !matches!(media_type, MediaType::Other(_))
        {
            check_digest_matches(&self.host, reference, digest)?;
            return Ok(Resolved {
                digest: digest.clone(),
                media_type: media_type.clone(),
                platforms: Vec::new(),
                platform_available: None,
            });
        }
        // GET: the HEAD failed (its body, if any, is lost), had no digest, or named an index.
        let resp = self.authed(Method::GET, &path, &scope, accept).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.read_body(resp).await?;
        if !status.is_success() {
            return Err(self.status_error(status, &body, what, &headers));
        }
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(sent) = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && sent.starts_with("sha256:")
            && sent != computed
        {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: format!(
                    "manifest digest mismatch: registry says {sent}, content hashes to {computed}"
                ),
            });
        }
        check_digest_matches(&self.host, reference, &computed)?;
        let parsed: ManifestBody = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            host: self.host.clone(),
            detail: format!("manifest is not valid JSON: {e}"),
        })?;
        let media_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(MediaType::from_header)
            .filter(|m| !matches!(m, MediaType::Other(_)))
            .or_else(|| parsed.media_type.as_deref().map(MediaType::from_header))
            .unwrap_or_else(|| {
                if parsed.manifests.is_some() {
                    MediaType::OciIndex
                } else {
                    MediaType::OciManifest
                }
            });
        if parsed.schema_version == Some(1) {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: "manifest schema 1 is deprecated and not supported; push the image again with a current client".into(),
            });
        }
        if let MediaType::Other(other) = &media_type {
            return Err(Error::Protocol {
                host: self.host.clone(),
                detail: format!("{repository}:{reference} is a {other}, not a container image"),
            });
        }
        let platforms: Vec<Platform> = parsed
            .manifests
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.platform)
            .filter(|p| p.os != "unknown")
            .map(|p| Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            })
            .collect();
        let platform_available = media_type
            .is_index()
            .then(|| platforms.iter().any(|p| self.opts.platform.matches(p)));
        Ok(Resolved {
            digest: computed,
            media_type,
            platforms,
            platform_available,
        })
    }

    /// All tags of `repository`, following `Link` pagination.
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        self.list_tags_paged(repository, 1000).await
    }

    /// [`Self::list_tags`] asking for `page_size` tags per request.
    pub async fn list_tags_paged(&self, repository: &str, page_size: u32) -> Result<Vec<String>> {
        let scope = format!("repository:{repository}:pull");
        let mut path = format!("/v2/{repository}/tags/list?n={page_size}");
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .authed(Method::GET, &path, &scope, HeaderMap::new())
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = self.read_body(resp).await?;
            if !status.is_success() {
                return Err(self.status_error(
                    status,
                    &body,
                    format!("repository {repository}"),
                    &headers,
                ));
            }
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                host: self.host.clone(),
                detail: format!("tag list is not the expected JSON: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next_link(&headers) {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }
}

fn check_digest_matches(host: &str, reference: &str, digest: &str) -> Result<()> {
    if reference.contains(':') && reference != digest {
        return Err(Error::Protocol {
            host: host.to_owned(),
            detail: format!("asked for {reference} but the registry returned {digest}"),
        });
    }
    Ok(())
}

/// The path+query of a `Link: </v2/…?last=x&n=100>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.replace(' ', "").contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        if target.starts_with('/') {
            Some(target.to_owned())
        } else {
            // Absolute URL: keep only path and query (same registry).
            Url::parse(target).ok().map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            })
        }
    })
}

/// One step of a connection test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestStep {
    /// `dns`, `connect`, `tls`, `auth`, `manifest`.
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Runs the connection test of `berth registry test`: each step in order, stopping at the
/// first failure, which is reported with the registry's own words.
pub async fn test_connection(
    client: &RegistryClient,
    image: Option<(&str, &str)>,
) -> Vec<TestStep> {
    let mut steps = Vec::new();
    let order = [Step::Dns, Step::Connect, Step::Tls, Step::Auth];
    match client.ping().await {
        Ok(how) => {
            let scheme = (*lock(&client.scheme)).unwrap_or("https");
            for step in order {
                let detail = match step {
                    Step::Dns => format!("{} resolves to an allowed address", client.host),
                    Step::Connect => format!("connected to {}", client.host),
                    Step::Tls if scheme == "http" => {
                        "plain HTTP (loopback or insecure registry)".to_owned()
                    }
                    Step::Tls => "certificate verified".to_owned(),
                    _ => format!("GET /v2/ accepted ({how})"),
                };
                steps.push(TestStep {
                    step: step.as_str(),
                    ok: true,
                    detail,
                });
            }
        }
        Err(e) => {
            let failed = e.step();
            for step in order {
                if step == failed {
                    steps.push(TestStep {
                        step: step.as_str(),
                        ok: false,
                        detail: e.to_string(),
                    });
                    return steps;
                }
                steps.push(TestStep {
                    step: step.as_str(),
                    ok: true,
                    detail: "ok".into(),
                });
            }
            return steps;
        }
    }
    if let Some((repo, reference)) = image {
        let (ok, detail) = match client.resolve(repo, reference).await {
            Ok(r) => {
                let mut d = format!(
                    "{repo}:{reference} resolves to {} ({})",
                    r.digest,
                    r.media_type.as_str()
                );
                if r.platform_available == Some(false) {
                    d.push_str(&format!(
                        "; but the index has no {} image (it has: {})",
                        client.opts.platform,
                        r.platforms
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                (r.platform_available != Some(false), d)
            }
            Err(e) => (false, e.to_string()),
        };
        steps.push(TestStep {
            step: Step::Manifest.as_str(),
            ok,
            detail,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_pagination() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"</v2/a/tags/list?last=v9&n=2>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/a/tags/list?last=v9&n=2")
        );
        h.insert(
            LINK,
            r#"<https://r.example/v2/a/tags/list?last=x>; rel="next""#
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=x"));
        h.insert(LINK, r#"</v2/x>; rel="prev""#.parse().unwrap());
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn registry_error_text() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_detail(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_detail(b""), "no details");
        assert_eq!(registry_detail(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && s.contains("redacted"), "{s}");
    }

    #[test]
    fn platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        let want = Platform::default();
        assert!(want.matches(&"linux/amd64".parse().unwrap()));
        assert!(!want.matches(&"linux/arm64".parse().unwrap()));
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("ghcr.io"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }

    #[test]
    fn host_must_be_bare() {
        for bad in ["https://ghcr.io", "ghcr.io/org", ""] {
            assert!(
                RegistryClient::new(bad, Credentials::Anonymous, RegistryOptions::default())
                    .is_err(),
                "{bad}"
            );
        }
    }
}
