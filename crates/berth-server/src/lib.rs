//! berth-server: the `berth serve` process — HTTP API, console, the use-case services, the
//! reconciler, the scheduler and the gateway — over the store, the registry client and the data
//! plane.
//!
//! Business rules that do not need I/O belong in berth-core; this crate wires them to the world.

pub mod api;
pub mod audit;
pub mod auth;
pub mod auto_deploy;
pub mod console;
pub mod deploy;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod leader;
pub mod logwriter;
pub mod tasks;
#[cfg(test)]
mod test_support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use berth_dataplane::Plane;
pub use berth_dataplane::Scaling;
use berth_dataplane::engine::{Engine, discover_endpoint};
pub use berth_dataplane::kubernetes::{GatewayRef, RenderOptions, Routing};
pub use berth_registry::SsrfPolicy;
use berth_store::Store;
use berth_store::keys::{MasterKey, write_owner_only};
use thiserror::Error;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, info_span, warn};

use crate::error::REQUEST_ID;

/// File in the data dir holding the bootstrap admin token (mode 0600), so the CLI on the same
/// machine works without copy-paste.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// How long a starting server waits for the engine to say what runs before its gateway serves.
const INITIAL_ROUTES_TIMEOUT: Duration = Duration::from_secs(10);

/// How `berth serve` is configured (flags and `BERTH_*` variables, parsed by the CLI).
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Engine endpoint; `None` = `DOCKER_HOST`, then the default sockets.
    pub engine: Option<String>,
    /// Which addresses registry traffic may reach (link-local/metadata are always refused).
    pub registry_ssrf: berth_registry::SsrfPolicy,
    /// Address of the external gateway.
    pub gateway_listen: SocketAddr,
    /// Address of the internal gateway (Organization endpoints; answers only the
    /// organization's containers, which reach it as `host.containers.internal`).
    pub internal_gateway_listen: SocketAddr,
    /// How long a new release may take to get ready before it is rolled back.
    pub ready_timeout: Duration,
    /// How long old instances keep serving in-flight requests after the switch.
    pub drain: Duration,
    /// Fault injection for tests: rollouts pause this long in this phase (see
    /// [`berth_dataplane::engine::Engine::with_fault_hold`]). `None` in production.
    pub fault_hold: Option<(berth_core::api::DeploymentPhase, Duration)>,
    /// Base URL clients and CI reach the API at (status URLs, CI snippets); `None` =
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// Deploy-webhook calls each CI token may make per minute.
    pub ci_rate_per_minute: u32,
    /// A PostgreSQL database (`postgres://…`) instead of `<data_dir>/berth.db`; several
    /// servers may share it (see [`leader`]).
    pub database_url: Option<berth_core::Secret>,
    /// Threads of the external gateway, each its own event loop; 0 = one per CPU.
    pub gateway_workers: usize,
    /// Where workloads run.
    pub data_plane: DataPlaneKind,
    /// How workloads map to Kubernetes objects (the driver and `berth render`).
    pub kubernetes: KubernetesSettings,
}

/// Which data plane `berth serve` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataPlaneKind {
    /// Docker or Podman (`DOCKER_HOST`, the default sockets).
    #[default]
    Engine,
    /// A Kubernetes cluster (`KUBECONFIG`, `~/.kube/config` or in-cluster).
    Kubernetes,
}

/// Kubernetes settings: names of the cluster's Gateways, routing, and the autoscaling every
/// service and web app gets.
#[derive(Debug, Clone, Default)]
pub struct KubernetesSettings {
    pub render: berth_dataplane::kubernetes::RenderOptions,
    /// `None` = exactly one replica, no HorizontalPodAutoscaler.
    pub scaling: Option<berth_dataplane::Scaling>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".berth"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            engine: None,
            registry_ssrf: berth_registry::SsrfPolicy::default(),
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 7480)),
            internal_gateway_listen: SocketAddr::from(([0, 0, 0, 0], 7481)),
            ready_timeout: Duration::from_secs(120),
            drain: Duration::from_secs(10),
            fault_hold: None,
            public_url: None,
            ci_rate_per_minute: api::ci::HOOK_REQUESTS_PER_MINUTE,
            database_url: None,
            gateway_workers: 0,
            data_plane: DataPlaneKind::Engine,
            kubernetes: KubernetesSettings::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("data dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    #[error("listening on {addr} failed: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("serving failed: {0}")]
    Serve(String),
    #[error("{0}")]
    Config(String),
}

/// Shared, cheap-to-clone state of the server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Result<Plane, String>,
    config: RuntimeConfig,
    gateway: Arc<gateway::Gateway>,
    runners: deploy::Runners,
    /// Whether this server runs the reconciler and the scheduler (always on SQLite).
    leadership: leader::Leadership,
    tasks: tasks::Tasks,
    /// Per-token rate of the CI deploy webhook.
    ci_limiter: api::ci::RateLimiter,
    /// Signed-in console sessions.
    sessions: console::session::Sessions,
    /// Registry clients by settings fingerprint (see `api::registries::client_for`).
    registry_clients:
        std::sync::Mutex<std::collections::HashMap<String, Arc<berth_registry::RegistryClient>>>,
    /// Group commit of the deploy webhook's audit rows.
    audit: audit::AuditWriter,
    /// Concurrent deploy requests for one component share their read of its deploy context
    /// (`api::components::deploy_context`).
    deploy_contexts: api::components::ContextReads,
    /// One lock per component, held while a deploy request decides that its digest is new and
    /// creates the deployment: concurrent requests for one new digest create one deployment.
    deploy_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `/readyz`'s last check of the engine, and the one in flight (see `api::system`).
    engine_probe: std::sync::Mutex<api::system::EngineProbe>,
}

/// Settings the services read at run time.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub ssrf: berth_registry::SsrfPolicy,
    pub ready_timeout: Duration,
    pub drain: Duration,
    /// Base URL of the API as clients reach it (status URLs).
    pub public_url: String,
    /// Deploy-webhook calls each CI token may make per minute.
    pub ci_rate_per_minute: u32,
    /// Kubernetes mapping (the driver, and the render route whatever the data plane).
    pub kubernetes: KubernetesSettings,
}

impl AppState {
    /// `store` should carry the master key ([`Store::with_master_key`]) so credentials can be
    /// stored.
    pub fn new(
        store: Store,
        engine: Result<Engine, String>,
        config: RuntimeConfig,
        gateway: Arc<gateway::Gateway>,
    ) -> Self {
        Self::with_plane(store, engine.map(Plane::Engine), config, gateway)
    }

    /// Like [`AppState::new`], on any data plane.
    pub fn with_plane(
        store: Store,
        engine: Result<Plane, String>,
        config: RuntimeConfig,
        gateway: Arc<gateway::Gateway>,
    ) -> Self {
        let ci_limiter = api::ci::RateLimiter::new(config.ci_rate_per_minute);
        // The only server of a SQLite store leads from the start; on PostgreSQL the lock
        // decides (`leader::start`).
        let leading = store.backend() == berth_store::Backend::Sqlite;
        let audit = audit::AuditWriter::new(store.clone());
        Self {
            inner: Arc::new(Inner {
                audit,
                deploy_locks: std::sync::Mutex::default(),
                engine_probe: std::sync::Mutex::default(),
                deploy_contexts: api::components::ContextReads::default(),
                store,
                engine,
                config,
                gateway,
                runners: deploy::Runners::default(),
                leadership: leader::Leadership::new(leading),
                tasks: tasks::Tasks::default(),
                ci_limiter,
                registry_clients: std::sync::Mutex::new(std::collections::HashMap::new()),
                sessions: console::session::Sessions::default(),
            }),
        }
    }

    pub fn ssrf_policy(&self) -> berth_registry::SsrfPolicy {
        self.inner.config.ssrf
    }

    pub(crate) fn registry_clients(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, Arc<berth_registry::RegistryClient>>,
    > {
        self.inner
            .registry_clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub fn gateway(&self) -> &Arc<gateway::Gateway> {
        &self.inner.gateway
    }

    pub(crate) fn runners(&self) -> &deploy::Runners {
        &self.inner.runners
    }

    pub fn leadership(&self) -> &leader::Leadership {
        &self.inner.leadership
    }

    pub(crate) fn audit(&self) -> &audit::AuditWriter {
        &self.inner.audit
    }

    pub(crate) fn deploy_contexts(&self) -> &api::components::ContextReads {
        &self.inner.deploy_contexts
    }

    pub(crate) fn engine_probe(&self) -> std::sync::MutexGuard<'_, api::system::EngineProbe> {
        self.inner
            .engine_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The creation lock of `key`'s component (see `Inner::deploy_locks`).
    pub(crate) fn deploy_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .deploy_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Drop the locks nobody holds now and then: the map stays as small as the set of
        // components being deployed.
        if locks.len() > 1000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key.to_owned()).or_default().clone()
    }

    pub(crate) fn ci_limiter(&self) -> &api::ci::RateLimiter {
        &self.inner.ci_limiter
    }

    pub(crate) fn sessions(&self) -> &console::session::Sessions {
        &self.inner.sessions
    }

    /// The scheduler and the running task executions.
    pub fn tasks(&self) -> &tasks::Tasks {
        &self.inner.tasks
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The data plane (engine or Kubernetes), or why there is none.
    pub fn engine(&self) -> Result<&Plane, &str> {
        self.inner.engine.as_ref().map_err(String::as_str)
    }
}

/// Puts the request id (set by `SetRequestIdLayer`) where errors can find it.
async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The whole HTTP surface. Tests drive it with `oneshot`, `berth serve` with a listener.
pub fn router(state: AppState) -> Router {
    let v1 = api::authenticated().layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    Router::new()
        .route("/healthz", get(api::system::healthz))
        .route("/readyz", get(api::system::readyz))
        .route("/metrics", get(api::system::metrics))
        .route("/api/v1/openapi.json", get(api::system::openapi))
        // CI tokens are no user tokens: the webhook has its own authentication and audit.
        .nest("/api/v1/hooks", api::ci::hooks(state.clone()))
        // A registry's push events, authenticated by its notification secret.
        .nest(
            api::auto_deploy::NOTIFICATIONS_PATH,
            api::auto_deploy::notifications(state.clone()),
        )
        .nest("/api/v1", v1)
        // The console: server-rendered pages at `/`, `/login`, `/orgs/...`.
        .merge(console::routes(state.clone()))
        // Unknown `/api/...` paths answer JSON; others get the console's HTML 404.
        .fallback(console::not_found)
        .method_not_allowed_fallback(api::system::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn(scope_request_id))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(&REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // Only method, path and id: never headers (Authorization) or query strings.
            info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
}

/// Checks `--public-url`: an absolute http(s) URL without query or fragment; no trailing `/`.
fn public_url(url: &str) -> Result<String, ServeError> {
    let bad = |why: &str| ServeError::Config(format!("--public-url {url:?}: {why}"));
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("names no host"));
    }
    if url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
        return Err(bad("must not contain a query, a fragment or spaces"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Tells the gateway to stop when the API server stops.
struct StopOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// A prepared server: data dir, store and bootstrap done, listener bound.
pub struct Server {
    state: AppState,
    listener: tokio::net::TcpListener,
    gateway_listener: tokio::net::TcpListener,
    internal_listener: tokio::net::TcpListener,
    gateway_workers: usize,
    /// The admin token when this start created it (first start only).
    pub admin_token: Option<String>,
    pub admin_token_file: PathBuf,
}

fn prepare_data_dir(dir: &Path) -> Result<(), ServeError> {
    let err = |reason: String| ServeError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("creating it failed: {e}")))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(format!("setting mode 0700 failed: {e}")))?;
    } else if !dir.is_dir() {
        return Err(err("exists but is not a directory".into()));
    }
    Ok(())
}

impl Server {
    /// Opens the data dir (creating the database and master key at first start), bootstraps
    /// the default organization and admin token when there are no users, and binds `listen`.
    pub async fn prepare(config: &Config) -> Result<Self, ServeError> {
        let configured_url = config.public_url.as_deref().map(public_url).transpose()?;
        prepare_data_dir(&config.data_dir)?;
        let master_key = MasterKey::load_or_create(&config.data_dir)?;
        let mut server_id = berth_store::keys::load_or_create_server_id(&config.data_dir)?;
        let store = match &config.database_url {
            Some(url) => {
                let store = Store::connect(url.expose()).await?;
                // The servers of one database are one berth: they label containers alike, so
                // a new leader adopts what the old one started.
                server_id = store.shared_server_id(&server_id).await?;
                info!(database = %berth_store::redact_url(url.expose()), "store: PostgreSQL");
                store
            }
            None => Store::open(&config.data_dir).await?,
        };
        if !store.master_key_matches(&master_key).await? {
            return Err(ServeError::Config(format!(
                "{} is not the master key this database's credentials are encrypted with; \
                 every server of one database needs the same key: copy master.key from the data \
                 dir of the server that first used the database (mode 0600)",
                config
                    .data_dir
                    .join(berth_store::keys::MASTER_KEY_FILE)
                    .display()
            )));
        }
        let store = store.with_master_key(&master_key);
        let admin_token_file = config.data_dir.join(ADMIN_TOKEN_FILE);
        let admin_token = match store.bootstrap().await? {
            Some(boot) => {
                // A stale file from an earlier data dir would point the CLI at a dead token.
                let _ = std::fs::remove_file(&admin_token_file);
                write_owner_only(&admin_token_file, &format!("{}\n", boot.admin_token))?;
                Some(boot.admin_token)
            }
            None => None,
        };
        let engine = match config.data_plane {
            DataPlaneKind::Engine => discover_endpoint(config.engine.as_deref())
                .and_then(|endpoint| Engine::connect(&endpoint))
                .map(|engine| {
                    let engine = engine
                        .with_data_root(config.data_dir.join("mounts"))
                        .with_owner(server_id);
                    Plane::Engine(match config.fault_hold {
                        Some((phase, duration)) => engine.with_fault_hold(phase, duration),
                        None => engine,
                    })
                })
                .map_err(|e| e.to_string()),
            #[cfg(feature = "kubernetes")]
            DataPlaneKind::Kubernetes => {
                berth_dataplane::kubernetes::Kubernetes::connect(config.kubernetes.render.clone())
                    .await
                    .map(Plane::Kubernetes)
                    .map_err(|e| e.to_string())
            }
            #[cfg(not(feature = "kubernetes"))]
            DataPlaneKind::Kubernetes => {
                return Err(ServeError::Config(
                    "this berth was built without the Kubernetes driver (cargo feature \
                     `kubernetes`)"
                        .into(),
                ));
            }
        };
        match &engine {
            Ok(e) => info!(endpoint = e.endpoint(), "data plane configured"),
            Err(e) => warn!(error = %e, "no data plane; deployments wait until one answers"),
        }
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError::Listen {
                    addr,
                    reason: e.to_string(),
                })
        };
        let listener = bind(config.listen).await?;
        let gateway_listener = bind(config.gateway_listen).await?;
        let internal_listener = bind(config.internal_gateway_listen).await?;
        let api_addr = listener
            .local_addr()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        let gw_addr = gateway_listener
            .local_addr()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        let runtime = RuntimeConfig {
            ssrf: config.registry_ssrf,
            ready_timeout: config.ready_timeout,
            drain: config.drain,
            public_url: configured_url.unwrap_or_else(|| format!("http://{api_addr}")),
            ci_rate_per_minute: config.ci_rate_per_minute,
            kubernetes: config.kubernetes.clone(),
        };
        let gateway = Arc::new(gateway::Gateway::new(format!("http://{gw_addr}")));
        Ok(Self {
            state: AppState::with_plane(store, engine, runtime, gateway),
            listener,
            gateway_listener,
            internal_listener,
            gateway_workers: config.gateway_workers,
            admin_token,
            admin_token_file,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (up to 30 s).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let (gw_stop, gw_stopped) = tokio::sync::watch::channel(false);
        let internal_stopped = gw_stopped.clone();
        let gateway_listener = self
            .gateway_listener
            .into_std()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        let workers = match self.gateway_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        // Route what runs before the gateway answers: the reconciler leaves workloads with a
        // runner alone, so after a restart in the middle of a rollout the release that still
        // served answered 404 until the resumed rollout finished (a release that never gets
        // ready: its whole ready timeout). Connections wait in the listen backlog meanwhile.
        if tokio::time::timeout(INITIAL_ROUTES_TIMEOUT, deploy::sync_routes(&self.state))
            .await
            .is_err()
        {
            warn!("routing what runs took too long; the reconciler routes it later");
        }
        self.state
            .gateway()
            .clone()
            .serve_workers(gateway_listener, workers, gw_stopped)
            .map_err(|e| ServeError::Serve(format!("starting the gateway: {e}")))?;
        let _internal_task = tokio::spawn(self.state.gateway().clone().serve_internal(
            self.internal_listener,
            async move {
                let mut rx = internal_stopped;
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ));
        // The reconciler, the deploy runners, the scheduler and the auto-deploy poller run on
        // the leader only (on SQLite: always this server).
        leader::start(self.state.clone());
        info!(%addr, "berth listening on http://{addr}");
        let app = router(self.state.clone());
        let _gateway_guard = StopOnDrop(gw_stop);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            info!("shutting down: no new connections, finishing in-flight requests");
            let _ = tx.send(());
        });
        let serve = tokio::spawn(async move { serve.await });
        let mut serve = serve;
        let finished = |res: Result<std::io::Result<()>, tokio::task::JoinError>| {
            res.map_err(|e| ServeError::Serve(e.to_string()))?
                .map_err(|e| ServeError::Serve(e.to_string()))?;
            info!("stopped: in-flight requests finished");
            Ok(())
        };
        tokio::select! {
            res = &mut serve => return finished(res),
            _ = rx => {}
        }
        match tokio::time::timeout(Duration::from_secs(30), serve).await {
            Ok(res) => finished(res),
            Err(_) => {
                warn!("in-flight requests did not finish within 30 s; exiting anyway");
                Ok(())
            }
        }
    }
}
