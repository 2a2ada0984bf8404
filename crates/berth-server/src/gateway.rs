//! The external gateway: a reverse proxy in front of the components' instances.
//!
//! Services answer at `/<org>/<project>/<component>/<env>/…` (the prefix is stripped), web
//! apps at `http://<component>-<project>-<env>.<org>.localhost:<port>/`. The route table is
//! replaced atomically on every rollout switch (copy on write), so a request sees either the
//! old backends or the new ones, never a mix or nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use berth_dataplane::{RouteSwitch, WorkloadKey};
use tracing::{debug, info, warn};

mod upstream;

/// How long an upstream may take to answer (headers).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
struct Route {
    backends: Vec<SocketAddr>,
    /// `X-Forwarded-Prefix` of path-routed requests: `/<org>/<project>/<component>/<env>`.
    prefix: Option<HeaderValue>,
    /// Host-routed (web app) rather than path-routed.
    web_app: bool,
    /// Contexts of the Public endpoints; `None` = no endpoints file, everything is routed.
    contexts: Option<Vec<String>>,
    /// Contexts of the Organization endpoints (internal gateway only).
    org_contexts: Vec<String>,
    /// The schemas the release publishes (`…/openapi`).
    schemas: Arc<Vec<Published>>,
    /// This workload's counters (kept across switches).
    stats: Arc<RouteStats>,
}

/// Per-route counters, updated without a lock on every proxied request.
#[derive(Debug, Default)]
struct RouteStats {
    /// Requests per status class (index 0 = 1xx … 4 = 5xx).
    requests: [AtomicU64; 5],
    /// Milliseconds to the upstream's answer head, summed per status class.
    millis: [AtomicU64; 5],
}

impl RouteStats {
    fn record(&self, status: u16, ms: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        self.millis[class].fetch_add(ms, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Table {
    routes: HashMap<WorkloadKey, Route>,
    /// `component-project-env.org.localhost` → key, for web apps.
    hosts: HashMap<String, WorkloadKey>,
    /// `org/project/component/env` → key, so a request finds its route without allocating.
    paths: HashMap<String, WorkloadKey>,
}

impl Table {
    fn rebuild_index(&mut self) {
        self.hosts = self
            .routes
            .iter()
            .filter(|(_, r)| r.web_app)
            .map(|(k, _)| (web_app_host(k), k.clone()))
            .collect();
        self.paths = self
            .routes
            .keys()
            .map(|k| {
                let path = format!("{}/{}/{}/{}", k.org, k.project, k.component, k.env);
                (path, k.clone())
            })
            .collect();
    }
}

/// A published schema: (context, file name, content).
pub type Published = (String, String, String);

/// The host name a web app answers on (without the port).
pub fn web_app_host(key: &WorkloadKey) -> String {
    format!(
        "{}-{}-{}.{}.localhost",
        key.component, key.project, key.env, key.org
    )
}

/// The gateway: route table + HTTP client. Cheap to share (`Arc`).
pub struct Gateway {
    table: RwLock<Arc<Table>>,
    /// Keys that are web apps (set when the component is known).
    web_apps: RwLock<std::collections::HashSet<WorkloadKey>>,
    /// Public contexts per key (set from the release's endpoints before its switch).
    exposure: RwLock<HashMap<WorkloadKey, Vec<String>>>,
    /// Organization contexts per key.
    org_exposure: RwLock<HashMap<WorkloadKey, Vec<String>>>,
    /// Per-route counters, by workload (the routes hold the same `Arc`s).
    stats: RwLock<HashMap<WorkloadKey, Arc<RouteStats>>>,
    /// Published schemas per key: (context, file name, content), served at `<context>/openapi`.
    schemas: RwLock<HashMap<WorkloadKey, Vec<Published>>>,
    /// Subnets of each organization's container networks: who may use the internal gateway.
    org_subnets: RwLock<HashMap<String, Vec<(std::net::IpAddr, u8)>>>,
    /// Base URL of the internal gateway as containers reach it, once it listens.
    internal_url: RwLock<Option<String>>,
    next: AtomicUsize,
    /// Public base URL, e.g. `http://127.0.0.1:7480`.
    pub base_url: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(base_url: String) -> Self {
        Self {
            table: RwLock::new(Arc::new(Table::default())),
            web_apps: RwLock::new(Default::default()),
            exposure: RwLock::new(Default::default()),
            org_exposure: RwLock::new(Default::default()),
            schemas: RwLock::new(Default::default()),
            stats: RwLock::new(Default::default()),
            org_subnets: RwLock::new(Default::default()),
            internal_url: RwLock::new(None),
            next: AtomicUsize::new(0),
            base_url,
        }
    }

    fn snapshot(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Table)) {
        let mut guard = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Table {
            routes: guard.routes.clone(),
            hosts: HashMap::new(),
            paths: HashMap::new(),
        };
        f(&mut next);
        next.rebuild_index();
        *guard = Arc::new(next);
    }

    /// Marks a workload as a web app (host-routed) before its first switch.
    pub fn set_web_app(&self, key: &WorkloadKey, web_app: bool) {
        let mut set = self
            .web_apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if web_app {
            set.insert(key.clone());
        } else {
            set.remove(key);
        }
    }

    /// Sets which contexts of a workload the external gateway routes: those of its Public
    /// endpoints (`None`: the release has no endpoints file, so everything is routed). Like
    /// every route setting, it takes effect at the workload's next switch, together with the
    /// backends of the release it belongs to: while a new release pulls and starts, the one
    /// serving keeps its own settings.
    pub fn set_public_contexts(&self, key: &WorkloadKey, contexts: Option<Vec<String>>) {
        let mut map = self
            .exposure
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match contexts {
            Some(c) => {
                map.insert(key.clone(), c);
            }
            None => {
                map.remove(key);
            }
        }
    }

    /// Sets the contexts of a workload's Organization endpoints (internal gateway), for its
    /// next switch (see [`Gateway::set_public_contexts`]).
    pub fn set_org_contexts(&self, key: &WorkloadKey, contexts: Vec<String>) {
        self.org_exposure
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), contexts);
    }

    fn stats_for(&self, key: &WorkloadKey) -> Arc<RouteStats> {
        self.stats
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Per-route request counts and latency sums in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let stats = self
            .stats
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys: Vec<&WorkloadKey> = stats.keys().collect();
        keys.sort();
        // (key, status class, requests, milliseconds) for every class that saw requests.
        let rows: Vec<(&WorkloadKey, usize, u64, u64)> = keys
            .iter()
            .flat_map(|k| {
                let st = &stats[*k];
                (0..5).filter_map(move |i| {
                    let n = st.requests[i].load(Ordering::Relaxed);
                    (n > 0).then(|| (*k, i + 1, n, st.millis[i].load(Ordering::Relaxed)))
                })
            })
            .collect();
        let label = |k: &WorkloadKey, class: usize| {
            format!(
                "org=\"{}\",project=\"{}\",component=\"{}\",env=\"{}\",status=\"{class}xx\"",
                k.org, k.project, k.component, k.env
            )
        };
        let mut out = String::from(
            "# HELP berth_gateway_requests_total Requests proxied per route and status class.\n# TYPE berth_gateway_requests_total counter\n",
        );
        for (k, class, n, _) in &rows {
            out.push_str(&format!(
                "berth_gateway_requests_total{{{}}} {n}\n",
                label(k, *class)
            ));
        }
        out.push_str("# HELP berth_gateway_request_milliseconds_total Time to the upstream's answer head, summed.\n# TYPE berth_gateway_request_milliseconds_total counter\n");
        for (k, class, _, ms) in &rows {
            out.push_str(&format!(
                "berth_gateway_request_milliseconds_total{{{}}} {ms}\n",
                label(k, *class)
            ));
        }
        out
    }

    /// Sets the schema documents a workload publishes at `<context>/openapi`, for its next
    /// switch (see [`Gateway::set_public_contexts`]).
    pub fn set_schemas(&self, key: &WorkloadKey, schemas: Vec<Published>) {
        self.schemas
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), schemas);
    }

    /// The schema published at `path` (e.g. `/api/openapi`) by the release `route` serves.
    fn schema_at(route: &Route, path: &str) -> Option<(String, String)> {
        route.schemas.iter().find_map(|(ctx, name, content)| {
            (path == format!("{}/openapi", ctx.trim_end_matches('/')))
                .then(|| (name.clone(), content.clone()))
        })
    }

    /// Records the subnets of an organization's networks (refreshed after each rollout).
    pub fn set_org_subnets(&self, org: &str, subnets: Vec<(std::net::IpAddr, u8)>) {
        self.org_subnets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org.to_owned(), subnets);
    }

    fn in_org(&self, org: &str, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.org_subnets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(org)
            .is_some_and(|nets| nets.iter().any(|(net, bits)| in_subnet(ip, *net, *bits)))
    }

    /// The internal gateway's URL for a workload, as containers of its organization call it.
    pub fn internal_url_for(&self, key: &WorkloadKey) -> Option<String> {
        let base = self
            .internal_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        Some(format!(
            "{base}/{}/{}/{}/{}/",
            key.org, key.project, key.component, key.env
        ))
    }

    /// Serves the internal gateway (Organization endpoints) until `shutdown` resolves: only
    /// connections from the organization's container networks are answered.
    pub async fn serve_internal(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        *self
            .internal_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(format!("http://host.containers.internal:{}", addr.port()));
        info!(%addr, "internal gateway listening on http://{addr}");
        // The handler as the whole service: no router in front of it.
        let app = axum::handler::Handler::with_state(proxy_internal, self);
        // Small proxied answers must not wait for Nagle's algorithm.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Drops the routes of a workload (component deleted).
    pub fn remove(&self, key: &WorkloadKey) {
        self.update(|t| {
            t.routes.remove(key);
        });
    }

    /// The workloads that have a route.
    pub fn routed_keys(&self) -> Vec<WorkloadKey> {
        self.snapshot().routes.keys().cloned().collect()
    }

    /// The backends currently routed for a workload.
    pub fn backends(&self, key: &WorkloadKey) -> Vec<SocketAddr> {
        self.snapshot()
            .routes
            .get(key)
            .map(|r| r.backends.clone())
            .unwrap_or_default()
    }

    /// The URL a workload answers at through this gateway.
    pub fn url_for(&self, key: &WorkloadKey, web_app: bool) -> String {
        if web_app {
            let port = self.base_url.rsplit(':').next().unwrap_or("80");
            format!("http://{}:{port}/", web_app_host(key))
        } else {
            format!(
                "{}/{}/{}/{}/{}/",
                self.base_url, key.org, key.project, key.component, key.env
            )
        }
    }

    /// Serves the gateway on `workers` threads, each its own single-threaded event loop that
    /// accepts from the shared listening socket and serves its connections start to end (as
    /// nginx's worker processes do): no request hops between threads. Returns the threads; they
    /// end once `stop` turns true and their connections finished.
    pub fn serve_workers(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        workers: usize,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        info!(%addr, workers, "gateway listening on http://{addr}");
        let mut threads = Vec::with_capacity(workers.max(1));
        for i in 0..workers.max(1) {
            let listener = listener.try_clone()?;
            let (gw, mut stop) = (self.clone(), stop.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("berth-gateway-{i}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            let listener = match tokio::net::TcpListener::from_std(listener) {
                                Ok(l) => l,
                                Err(e) => {
                                    warn!(error = %e, "gateway worker could not listen");
                                    return;
                                }
                            };
                            let shutdown = async move {
                                let _ = stop.wait_for(|stop| *stop).await;
                            };
                            if let Err(e) = gw.serve(listener, shutdown).await {
                                warn!(error = %e, "gateway worker stopped");
                            }
                        });
                    })?,
            );
        }
        Ok(threads)
    }

    /// Serves the gateway on the current runtime until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        debug!(%addr, "gateway event loop listening on http://{addr}");
        // The handler as the whole service: no router in front of it (one boxed future per
        // request instead of a route lookup and a cloned boxed service).
        let app = axum::handler::Handler::with_state(proxy, self);
        // Small proxied answers must not wait for Nagle's algorithm.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

impl RouteSwitch for Gateway {
    fn switch(&self, key: &WorkloadKey, backends: &[SocketAddr]) {
        let web_app = self
            .web_apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(key);
        let contexts = self
            .exposure
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned();
        let org_contexts = self
            .org_exposure
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
            .unwrap_or_default();
        let schemas = Arc::new(
            self.schemas
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .cloned()
                .unwrap_or_default(),
        );
        debug!(%key, backends = backends.len(), "routes switched");
        let stats = self.stats_for(key);
        self.update(|t| {
            t.routes.insert(
                key.clone(),
                Route {
                    backends: backends.to_vec(),
                    prefix: HeaderValue::try_from(format!(
                        "/{}/{}/{}/{}",
                        key.org, key.project, key.component, key.env
                    ))
                    .ok(),
                    web_app,
                    contexts,
                    org_contexts,
                    schemas,
                    stats,
                },
            );
        });
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only and never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn in_subnet(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            (u32::from(a) & mask) == (u32::from(b) & mask)
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            (u128::from(a) & mask) == (u128::from(b) & mask)
        }
        _ => false,
    }
}

/// The internal gateway: Organization endpoints, for the organization's containers only.
async fn proxy_internal(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if has_dot_segment(req.uri().path()) {
        return dot_segment_error(req.uri().path());
    }
    let table = gw.snapshot();
    let mut parts = req.uri().path().trim_start_matches('/').splitn(5, '/');
    let key = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(p), Some(c), Some(e)) => WorkloadKey {
            org: o.to_owned(),
            project: p.to_owned(),
            component: c.to_owned(),
            env: e.to_owned(),
        },
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "no_route",
                "Organization endpoints answer at /<org>/<project>/<component>/<env>/".into(),
            );
        }
    };
    if !gw.in_org(&key.org, client.ip()) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "only containers of organization {:?} may call its Organization endpoints",
                key.org
            ),
        );
    }
    let rest = format!("/{}", parts.next().unwrap_or(""));
    let Some(route) = table.routes.get(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("no route for {key}"),
        );
    };
    if route.org_contexts.is_empty() || !exposed(Some(&route.org_contexts), &rest) {
        return error(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("no Organization endpoint of {key} matches {rest}"),
        );
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    forward(
        &gw,
        &table,
        client,
        req,
        &key,
        format!("{rest}{query}"),
        None,
    )
    .await
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether `path` holds a `.` or `..` segment, also percent-encoded (`%2e`), behind an encoded
/// separator (`%2f`, `%5c`) or with path parameters (`..;x`, which servlet containers strip
/// before they resolve the path): a backend that resolves it would serve a path outside the
/// endpoint's context (`/api/../admin` is under `/api` only as text). Browsers and HTTP
/// clients resolve such segments before sending, so only crafted requests carry them.
fn has_dot_segment(path: &str) -> bool {
    let dots = |segment: &str| {
        let name = segment.split(';').next().unwrap_or_default();
        name == "." || name == ".."
    };
    // Every request passes here: no allocation unless something is encoded.
    if !path.contains(['%', '\\']) {
        return path.split('/').any(dots);
    }
    let decoded = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace("%3b", ";")
        .replace('\\', "/");
    decoded.split('/').any(dots)
}

/// The answer to a path with a dot segment (see [`has_dot_segment`]).
fn dot_segment_error(path: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_path",
        format!("the path {path:?} has a '.' or '..' segment; send it resolved"),
    )
}

/// Whether `path` is under one of `contexts` (`/api` covers `/api` and `/api/…`, not `/apix`).
fn exposed(contexts: Option<&Vec<String>>, path: &str) -> bool {
    let Some(contexts) = contexts else {
        return true;
    };
    contexts.iter().any(|c| {
        let c = c.trim_end_matches('/');
        c.is_empty()
            || path
                .strip_prefix(c)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Finds the route: web app by host, else service by path. Returns the key and the path to
/// send upstream; `None` also when the path is under no Public endpoint's context.
fn route<'t>(table: &'t Table, host: Option<&str>, uri: &Uri) -> Option<(&'t WorkloadKey, String)> {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(host) = host {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        if let Some(key) = table.hosts.get(&name) {
            let contexts = table.routes.get(key).and_then(|r| r.contexts.as_ref());
            return exposed(contexts, uri.path()).then(|| (key, path_and_query.to_owned()));
        }
    }
    // `/<org>/<project>/<component>/<env>[/rest]`: the key is the first four segments.
    let path = uri.path().trim_start_matches('/');
    let end = path
        .match_indices('/')
        .nth(3)
        .map_or(path.len(), |(i, _)| i);
    let key = table.paths.get(&path[..end])?;
    let route = table.routes.get(key)?;
    if route.web_app {
        return None;
    }
    let rest = path.get(end + 1..).unwrap_or("");
    let mut upstream = String::with_capacity(rest.len() + 2 + uri.query().map_or(0, str::len));
    upstream.push('/');
    upstream.push_str(rest);
    if !exposed(route.contexts.as_ref(), &upstream) {
        return None;
    }
    if let Some(q) = uri.query() {
        upstream.push('?');
        upstream.push_str(q);
    }
    Some((key, upstream))
}

async fn proxy(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if has_dot_segment(req.uri().path()) {
        return dot_segment_error(req.uri().path());
    }
    let table = gw.snapshot();
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let host_name = host.as_ref().and_then(|h| h.to_str().ok());
    let Some((key, upstream_path)) = route(&table, host_name, req.uri()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_route",
            format!(
                "no route for {}; services answer at /<org>/<project>/<component>/<env>/, web apps at http://<component>-<project>-<env>.<org>.localhost/",
                req.uri().path()
            ),
        );
    };
    let path = upstream_path.split('?').next().unwrap_or("/");
    // Only a GET of `…/openapi` can be a schema: no route lookup for any other request.
    if req.method() == axum::http::Method::GET
        && path.ends_with("/openapi")
        && let Some((name, content)) = table
            .routes
            .get(key)
            .and_then(|route| Gateway::schema_at(route, path))
    {
        let content_type = if name.ends_with(".json") {
            "application/json"
        } else if [".graphql", ".graphqls", ".gql", ".sdl"]
            .iter()
            .any(|x| name.ends_with(x))
        {
            "text/plain; charset=utf-8"
        } else {
            "application/yaml"
        };
        return ([(header::CONTENT_TYPE, content_type)], content).into_response();
    }
    forward(&gw, &table, client, req, key, upstream_path, host).await
}

/// Sends `req` to one of `key`'s backends (round robin) and streams the answer back.
async fn forward(
    gw: &Gateway,
    table: &Table,
    client: SocketAddr,
    mut req: Request,
    key: &WorkloadKey,
    upstream_path: String,
    host: Option<HeaderValue>,
) -> Response {
    let route = &table.routes[key];
    let backends = &route.backends;
    if backends.is_empty() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_backend",
            format!("{key} has no ready instance"),
        );
    }
    let backend = backends[gw.next.fetch_add(1, Ordering::Relaxed) % backends.len()];
    // Origin-form (`/path?query`): the request goes straight to the instance.
    let uri = match PathAndQuery::try_from(upstream_path.as_str()) {
        Ok(p) => Uri::from(p),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("invalid path: {e}"),
            );
        }
    };
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // An upgrade (WebSocket) keeps its two hop-by-hop headers and becomes a tunnel.
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .cloned()
        .filter(|_| connection_has_upgrade(req.headers()));
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>());
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(u) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, u.clone());
    }
    let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", client.ip()),
        None => client.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::try_from(forwarded_for) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match host {
        Some(h) => {
            // HTTP/2 clients send no Host header (the authority is in the URI): HTTP/1 needs one.
            if !headers.contains_key(header::HOST) {
                headers.insert(header::HOST, h.clone());
            }
            headers.insert(X_FORWARDED_HOST, h);
        }
        None => {
            if !headers.contains_key(header::HOST)
                && let Ok(v) = HeaderValue::try_from(backend.to_string())
            {
                headers.insert(header::HOST, v);
            }
        }
    }
    if let Some(prefix) = &route.prefix {
        headers.insert(X_FORWARDED_PREFIX, prefix.clone());
    }
    *req.uri_mut() = uri;
    *req.version_mut() = axum::http::Version::HTTP_11;
    let upstream = upstream::send(backend, req);
    match tokio::time::timeout(UPSTREAM_TIMEOUT, upstream).await {
        Ok(Ok(mut resp)) => {
            let ms = started.elapsed().as_millis() as u64;
            route.stats.record(resp.status().as_u16(), ms);
            // The path without its query: queries carry tokens (`?access_token=…`).
            let path = upstream_path.split('?').next().unwrap_or("/");
            info!(target: "berth::gateway::access", %key, %backend, %method,
                path, status = resp.status().as_u16(), ms, "proxied");
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_upgrade) = client_upgrade
            {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let (parts, _) = resp.into_parts();
                tokio::spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((client_io, upstream_io)) => {
                            let mut client_io = hyper_util::rt::TokioIo::new(client_io);
                            let mut upstream_io = hyper_util::rt::TokioIo::new(upstream_io);
                            let _ = tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io)
                                .await;
                        }
                        Err(e) => debug!(error = %e, "upgrade failed"),
                    }
                });
                return Response::from_parts(parts, Body::empty());
            }
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body)
        }
        Ok(Err(e)) => {
            route
                .stats
                .record(502, started.elapsed().as_millis() as u64);
            warn!(%key, %backend, error = %e, "upstream failed");
            error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("{key} ({backend}) failed: {e}"),
            )
        }
        Err(_) => {
            route
                .stats
                .record(504, started.elapsed().as_millis() as u64);
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("{key} ({backend}) did not answer within {UPSTREAM_TIMEOUT:?}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(component: &str) -> WorkloadKey {
        WorkloadKey {
            org: "default".into(),
            project: "shop".into(),
            component: component.into(),
            env: "development".into(),
        }
    }

    #[test]
    fn routes_by_path_and_host() {
        let gw = Gateway::new("http://127.0.0.1:7480".into());
        gw.set_web_app(&key("site"), true);
        gw.switch(&key("api"), &["127.0.0.1:1".parse().unwrap()]);
        gw.switch(&key("site"), &["127.0.0.1:2".parse().unwrap()]);
        let t = gw.snapshot();
        let uri: Uri = "/default/shop/api/development/v1/items?x=1"
            .parse()
            .unwrap();
        let (k, path) = route(&t, Some("127.0.0.1:7480"), &uri).unwrap();
        assert_eq!(*k, key("api"));
        assert_eq!(path, "/v1/items?x=1");
        let uri: Uri = "/default/shop/api/development".parse().unwrap();
        assert_eq!(route(&t, None, &uri).unwrap().1, "/");
        let uri: Uri = "/index.html".parse().unwrap();
        let (k, path) = route(
            &t,
            Some("site-shop-development.default.localhost:7480"),
            &uri,
        )
        .unwrap();
        assert_eq!(*k, key("site"));
        assert_eq!(path, "/index.html");
        // Web apps are not reachable by path, unknown keys not at all.
        let uri: Uri = "/default/shop/site/development/".parse().unwrap();
        assert!(route(&t, None, &uri).is_none());
        let uri: Uri = "/default/shop/nope/development/".parse().unwrap();
        assert!(route(&t, None, &uri).is_none());
        assert_eq!(
            gw.url_for(&key("site"), true),
            "http://site-shop-development.default.localhost:7480/"
        );
        assert_eq!(
            gw.url_for(&key("api"), false),
            "http://127.0.0.1:7480/default/shop/api/development/"
        );
        // Only the Public endpoints' contexts are routed once an endpoints file says so: from
        // the switch to the release that has it (until then the serving release keeps its own
        // settings, also while the new one pulls and starts).
        gw.set_public_contexts(&key("api"), Some(vec!["/v1".into()]));
        let uri: Uri = "/default/shop/api/development/".parse().unwrap();
        assert!(
            route(&gw.snapshot(), None, &uri).is_some(),
            "applied before the switch"
        );
        gw.switch(&key("api"), &["127.0.0.1:1".parse().unwrap()]);
        let t = gw.snapshot();
        for (path, routed) in [
            ("/v1", true),
            ("/v1/items", true),
            ("/v10", false),
            ("/", false),
        ] {
            let uri: Uri = format!("/default/shop/api/development{path}")
                .parse()
                .unwrap();
            assert_eq!(route(&t, None, &uri).is_some(), routed, "{path}");
        }
        gw.set_public_contexts(&key("api"), Some(Vec::new()));
        gw.switch(&key("api"), &["127.0.0.1:1".parse().unwrap()]);
        let uri: Uri = "/default/shop/api/development/v1".parse().unwrap();
        assert!(route(&gw.snapshot(), None, &uri).is_none());
        gw.remove(&key("api"));
        assert!(gw.backends(&key("api")).is_empty());
    }

    /// An upgrade (as WebSocket uses) becomes a byte tunnel through the gateway.
    #[tokio::test]
    async fn upgrades_are_tunnelled() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = upstream.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            assert!(request.contains("upgrade: echo"), "{request}");
            assert!(request.starts_with("get /chat "), "{request}");
            sock.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                sock.write_all(&buf[..n]).await.unwrap();
            }
        });
        let gw = Arc::new(Gateway::new("http://127.0.0.1:0".into()));
        gw.switch(&key("ws"), &[upstream_addr]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw_addr = listener.local_addr().unwrap();
        tokio::spawn(gw.clone().serve(listener, std::future::pending()));
        let mut client = tokio::net::TcpStream::connect(gw_addr).await.unwrap();
        client
            .write_all(b"GET /default/shop/ws/development/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        for msg in [&b"ping"[..], b"hello through the tunnel"] {
            client.write_all(msg).await.unwrap();
            let mut got = vec![0u8; msg.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, msg);
        }
    }

    #[test]
    fn dot_segments_are_found_however_they_are_written() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/a/..",
            "/api/%2e%2e/admin",
            "/api/%2E./admin",
            "/api/..%2fadmin",
            "/api%2f..%2fadmin",
            "/api/..%5cadmin",
            "/api/..\\admin",
            "/api/..;/admin",
            "/api/..;jsessionid=x/admin",
            "/api/.;/admin",
            "/api/..%3b/admin",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "/",
            "/a/b",
            "/a/.b",
            "/a/b..c",
            "/a/...",
            "/%2e%2e%2e",
            "/v1.2/x",
            "/a;b/c",
            "/a/...;x",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }
}
