//! The engine driver: Docker Engine or Podman through the Docker-compatible API.
//!
//! Mapping (docs: DESIGN.md "Data plane mapping"):
//! - one bridge network per (org, project, env), containers join it with their component name
//!   as DNS alias; under Podman the network is created with `isolate=true`, so other projects'
//!   networks cannot reach it by IP either;
//! - containers carry the `berth.*` labels of [`label`], so a restarted server adopts what runs;
//! - the service port is published on `127.0.0.1` with a random host port (the gateway and the
//!   probes use it); readiness is probed by berth itself, because Podman without systemd never
//!   runs engine healthchecks;
//! - files are written below a data root on the host and bind-mounted read-only.

mod isolation;
mod mounts;
mod probe;
mod pull;
mod task;
mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    InspectNetworkOptions, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tracing::{debug, instrument, warn};

use crate::{
    BoxLogStream, DataPlane, DeploymentPhase, EngineInfo, Error, Instance, LogLine, LogStream,
    LogsOptions, Result, RolloutEvent, RouteSwitch, TaskOutcome, TaskSpec, WorkloadKey,
    WorkloadSpec,
};

/// Unix sockets tried, in order, when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Where file mounts are written on the host unless [`Engine::with_data_root`] says otherwise.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth/mounts";

/// Seconds bollard waits for an engine's response headers before giving up (streams such as
/// pulls, logs and waits may then run longer).
const TIMEOUT_SECS: u64 = 30;

/// How long `remove_workload` lets each instance stop gracefully before it is killed.
const REMOVE_GRACE: Duration = Duration::from_secs(5);

/// The labels berth puts on the containers and networks it manages.
pub mod label {
    /// `true` on everything berth created.
    pub const MANAGED: &str = "berth.managed";
    /// The id of the berth server whose store wants the container ([`Engine::with_owner`]):
    /// servers sharing an engine leave each other's containers alone.
    pub const OWNER: &str = "berth.owner";
    pub const ORG: &str = "berth.org";
    pub const PROJECT: &str = "berth.project";
    pub const COMPONENT: &str = "berth.component";
    pub const ENV: &str = "berth.env";
    pub const RELEASE: &str = "berth.release";
    /// Replica index of a service instance (`0`, `1`, …).
    pub const REPLICA: &str = "berth.replica";
    /// The container port published for the gateway (lets listings find the address).
    pub const PORT: &str = "berth.port";
    /// Execution id of a task container; task containers are not workload instances.
    pub const EXECUTION: &str = "berth.execution";
}

/// A Docker/Podman engine reached over its API.
///
/// The connection is made on first use and retried on later calls, so a server started before
/// its engine (or outliving an engine restart) recovers by itself.
#[derive(Debug)]
pub struct Engine {
    endpoint: String,
    kind: Transport,
    client: std::sync::Mutex<Option<Client>>,
    data_root: PathBuf,
    /// Labels new containers and limits listings to them (plus unowned ones); see
    /// [`Engine::with_owner`].
    owner: Option<String>,
    /// One rollout at a time per workload, so two reconcile passes cannot interleave.
    rollouts: crate::RolloutLocks,
    /// Fault injection: rollouts pause this long when they enter this phase. See
    /// [`Engine::with_fault_hold`].
    fault_hold: Option<(DeploymentPhase, Duration)>,
}

#[derive(Debug, Clone)]
enum Transport {
    Unix(String),
    Http(String),
}

/// A connected client whose API version was negotiated.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) docker: Docker,
    /// Podman needs a few things done differently (network isolation option).
    pub(crate) podman: bool,
}

/// Where to find the engine: an explicit endpoint (flag or `DOCKER_HOST`), else the first
/// default socket that exists.
pub fn discover_endpoint(explicit: Option<&str>) -> Result<String> {
    if let Some(e) = explicit.filter(|e| !e.is_empty()) {
        return Ok(e.to_owned());
    }
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
    {
        return Ok(host);
    }
    DEFAULT_SOCKETS
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("unix://{p}"))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "DOCKER_HOST is not set and none of {} exists; start Docker or Podman \
                 (scripts/setup-engine does it) or pass --engine",
                DEFAULT_SOCKETS.join(", ")
            ))
        })
}

impl Engine {
    /// Checks the endpoint's form; no request is made until the first call.
    pub fn connect(endpoint: &str) -> Result<Self> {
        let kind = if let Some(path) = endpoint.strip_prefix("unix://") {
            Transport::Unix(path.to_owned())
        } else if endpoint.starts_with('/') {
            Transport::Unix(endpoint.to_owned())
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Transport::Http(endpoint.to_owned())
        } else {
            return Err(Error::Unavailable {
                endpoint: endpoint.to_owned(),
                reason: "expected unix:///path/to/socket, /path/to/socket or tcp://host:port"
                    .into(),
            });
        };
        Ok(Self {
            endpoint: endpoint.to_owned(),
            kind,
            client: std::sync::Mutex::new(None),
            data_root: PathBuf::from(DEFAULT_DATA_ROOT),
            owner: None,
            rollouts: crate::RolloutLocks::default(),
            fault_hold: None,
        })
    }

    /// Where file mounts are written on the host (default [`DEFAULT_DATA_ROOT`]). The engine
    /// must see the same path: keep it on the engine's host.
    #[must_use]
    pub fn with_data_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.data_root = root.into();
        self
    }

    /// Marks the containers this engine creates as `owner`'s (label [`label::OWNER`]) and makes
    /// every listing — so adoption and orphan removal — see only those, plus containers without
    /// an owner (created before owners existed). Without it, every berth container is seen:
    /// two servers on one engine would each remove the other's containers as orphans.
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Fault injection for tests: every rollout pauses for `duration` when it enters `phase`
    /// (after reporting it), so a test can observe the phase and kill the server in it. Some
    /// phases last microseconds otherwise (switching, pulling an image the engine has cached).
    /// Never set in production.
    #[must_use]
    pub fn with_fault_hold(mut self, phase: DeploymentPhase, duration: Duration) -> Self {
        self.fault_hold = Some((phase, duration));
        self
    }

    /// Waits out the fault-injection hold of `phase`, if one is set.
    pub(crate) async fn fault_hold(&self, phase: DeploymentPhase) {
        if let Some((held, duration)) = self.fault_hold
            && held == phase
        {
            warn!(
                phase = phase.as_str(),
                ?duration,
                "fault injection: holding the rollout"
            );
            tokio::time::sleep(duration).await;
        }
    }

    pub(crate) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// A fresh, unnegotiated client (bollard connects lazily: this makes no request).
    fn connect_docker(&self) -> Result<Docker> {
        match &self.kind {
            Transport::Unix(path) => {
                Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
            Transport::Http(url) => {
                Docker::connect_with_http(url, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
        }
        .map_err(|e| self.unavailable(e))
    }

    /// Connects, negotiates the API version (podman reports 1.41, older than bollard's
    /// default) and learns which engine answers.
    async fn handshake(&self) -> Result<(Client, bollard::models::SystemVersion)> {
        let docker = self
            .connect_docker()?
            .negotiate_version()
            .await
            .map_err(|e| self.unavailable(e))?;
        let version = docker.version().await.map_err(|e| self.unavailable(e))?;
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.contains("Podman"));
        let client = Client { docker, podman };
        *self.slot() = Some(client.clone());
        Ok((client, version))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Client>> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the reconciler does for a workload that serves, under the workload's rollout lock
    /// (taken once):
    /// - nothing (`None`) when `superseded()` says a deploy started since the caller read
    ///   `spec`: its runner rolls the workload out, and rolling out `spec` after it would
    ///   switch traffic back to the older release;
    /// - the fast path: when `listed` (the pass's listing of every managed instance, taken
    ///   moments ago) shows exactly the spec's replicas of its release running, and each
    ///   passes a readiness check now, they are routed and returned, without listing the
    ///   workload's containers again (Podman takes tens of milliseconds per listing with
    ///   hundreds of containers);
    /// - otherwise a rollout of `spec`, which looks again and replaces what is broken.
    pub async fn keep_serving(
        &self,
        spec: &WorkloadSpec,
        routes: &dyn RouteSwitch,
        listed: &[Instance],
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
        superseded: impl Fn() -> bool + Send,
    ) -> Option<Result<Vec<Instance>>> {
        self.rollouts
            .unless_superseded(&spec.key, superseded, async {
                match workload::keep_listed(self, spec, routes, listed).await {
                    Some(kept) => Ok(kept),
                    None => workload::rollout(self, spec, routes, events).await,
                }
            })
            .await
    }

    /// The negotiated client, connecting first when there is none yet.
    pub(crate) async fn client(&self) -> Result<Client> {
        if let Some(c) = self.slot().as_ref() {
            return Ok(c.clone());
        }
        Ok(self.handshake().await?.0)
    }

    pub(crate) fn unavailable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }

    /// Maps a bollard error: an engine answer becomes [`Error::Engine`] (with its message), a
    /// transport failure [`Error::Unavailable`] (transient).
    pub(crate) fn engine_error(&self, e: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => Error::Engine(format!("{message} (HTTP {status_code})")),
            B::DockerStreamError { error } => Error::Engine(error),
            B::DockerContainerWaitError { error, code } => {
                Error::Engine(format!("wait: {error} (exit code {code})"))
            }
            B::JsonDataError { .. } | B::JsonSerdeError { .. } | B::StrParseError { .. } => {
                Error::Engine(e.to_string())
            }
            other => self.unavailable(other),
        }
    }

    /// Creates a missing network of (org, project, env); see [`DataPlane::ensure_network`].
    pub(crate) async fn ensure_network_with(&self, c: &Client, key: &WorkloadKey) -> Result<()> {
        let name = key.network_name();
        match c
            .docker
            .inspect_network(&name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(self.engine_error(e)),
        }
        let labels = HashMap::from([
            (label::MANAGED.to_owned(), "true".to_owned()),
            (label::ORG.to_owned(), key.org.clone()),
            (label::PROJECT.to_owned(), key.project.clone()),
            (label::ENV.to_owned(), key.env.clone()),
        ]);
        // netavark's `isolate` drops traffic between berth networks; Docker's bridge networks
        // are isolated from each other by default and would not know the option.
        let options = c
            .podman
            .then(|| HashMap::from([("isolate".to_owned(), "true".to_owned())]));
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels),
            options,
            ..Default::default()
        };
        match c.docker.create_network(request).await {
            Ok(_) => {
                debug!(network = %name, "network created");
                if let Err(e) = self.enforce_isolation_with(c).await {
                    tracing::warn!(error = %e, "could not isolate the new network from other projects at the IP level");
                }
                Ok(())
            }
            // Created concurrently by someone else: what we wanted.
            Err(e) if is_status(&e, 409) || error_mentions(&e, "already exists") => Ok(()),
            Err(e) => Err(self.engine_error(e)),
        }
    }

    /// Keeps berth's networks from reaching each other by IP (see `engine/isolation.rs`).
    /// Under Podman on this host only; elsewhere a no-op. Idempotent.
    pub async fn enforce_isolation(&self) -> Result<()> {
        let c = self.client().await?;
        self.enforce_isolation_with(&c).await
    }

    async fn enforce_isolation_with(&self, c: &Client) -> Result<()> {
        if !c.podman || !matches!(self.kind, Transport::Unix(_)) {
            return Ok(());
        }
        let filters =
            HashMap::from([("label".to_owned(), vec![format!("{}=true", label::MANAGED)])]);
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = c
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.engine_error(e))?;
        let subnets: Vec<String> = networks
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
            .filter_map(|cfg| cfg.subnet)
            .collect();
        tokio::task::spawn_blocking(move || isolation::sync(&subnets))
            .await
            .map_err(|e| Error::Engine(format!("isolation task: {e}")))?
            .map_err(Error::Engine)
    }

    /// The subnets of every berth network of `org` (label `berth.org`): where connections of
    /// that organization's containers come from, for the internal gateway's check.
    pub async fn org_subnets(&self, org: &str) -> Result<Vec<(std::net::IpAddr, u8)>> {
        let c = self.client().await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}=true", label::MANAGED),
                format!("{}={org}", label::ORG),
            ],
        )]);
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = c
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.engine_error(e))?;
        let mut subnets = Vec::new();
        for n in networks {
            for cfg in n.ipam.and_then(|i| i.config).unwrap_or_default() {
                if let Some((net, bits)) = cfg.subnet.as_deref().and_then(|s| s.split_once('/'))
                    && let (Ok(net), Ok(bits)) = (net.parse(), bits.parse())
                {
                    subnets.push((net, bits));
                }
            }
        }
        Ok(subnets)
    }

    /// Removes the network of (org, project, env) when no container uses it any more. Gone
    /// already → `Ok(())`; still in use → [`Error::Engine`].
    pub async fn remove_network(&self, key: &WorkloadKey) -> Result<()> {
        let c = self.client().await?;
        match c.docker.remove_network(&key.network_name()).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(self.engine_error(e)),
        }
    }

    /// Lists containers carrying all `labels` (plus `berth.managed=true`), tasks included
    /// when `with_tasks`.
    pub(crate) async fn list(
        &self,
        c: &Client,
        labels: &[(&str, &str)],
        with_tasks: bool,
    ) -> Result<Vec<Instance>> {
        let mut wanted: Vec<(&str, &str)> = vec![(label::MANAGED, "true")];
        wanted.extend_from_slice(labels);
        let filters = HashMap::from([(
            "label".to_owned(),
            wanted.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = ride_out_unknown_states("container list", || {
            c.docker.list_containers(Some(options.clone()))
        })
        .await
        .map_err(|e| self.engine_error(e))?;
        let mut out: Vec<Instance> = containers
            .iter()
            // Filter again here: engines have differed on how several label filters combine.
            .filter(|s| {
                let l = s.labels.as_ref();
                wanted
                    .iter()
                    .all(|(k, v)| l.and_then(|l| l.get(*k)).is_some_and(|x| x == v))
                    && (with_tasks || l.is_none_or(|l| !l.contains_key(label::EXECUTION)))
                    && self.owns(l)
            })
            .filter_map(workload::instance_from_summary)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether a container with these labels is ours: no owner configured (a bare driver, as in
    /// tests), or the same owner. An owner never touches containers without an owner label:
    /// they belong to a driver used directly, which another server must not remove as orphans.
    fn owns(&self, labels: Option<&HashMap<String, String>>) -> bool {
        match (&self.owner, labels.and_then(|l| l.get(label::OWNER))) {
            (Some(ours), Some(theirs)) => ours == theirs,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    /// Stops (SIGTERM or the image's STOPSIGNAL, then SIGKILL after `grace`, at least 1 s) and
    /// removes one container and its mounted files. Gone already → `Ok(())`.
    pub(crate) async fn remove_container(
        &self,
        c: &Client,
        id: &str,
        grace: Duration,
    ) -> Result<()> {
        let name = match self.inspect(c, id).await {
            Ok(info) => info
                .name
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(self.engine_error(e)),
        };
        let t = i32::try_from(grace.as_secs_f64().ceil() as u64)
            .unwrap_or(i32::MAX)
            .max(1);
        let stop = StopContainerOptionsBuilder::default().t(t).build();
        if let Err(e) = c.docker.stop_container(id, Some(stop)).await {
            // Not running (304), gone (404) or stuck: the forced removal below settles it.
            debug!(container = %name, error = %e, "stop failed; removing by force");
        }
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        match c.docker.remove_container(id, Some(remove)).await {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            // Podman answers 500 "no such container" when a removal raced another one.
            Err(e) if error_mentions(&e, "no such container") => {}
            Err(e) => return Err(self.engine_error(e)),
        }
        if !name.is_empty() {
            mounts::remove(&self.data_root, &name);
        }
        Ok(())
    }

    /// `inspect_container`, riding out Podman's transient `stopped` state (see
    /// [`ride_out_unknown_states`]).
    pub(crate) async fn inspect(
        &self,
        c: &Client,
        id: &str,
    ) -> std::result::Result<bollard::models::ContainerInspectResponse, bollard::errors::Error>
    {
        ride_out_unknown_states(id, || c.docker.inspect_container(id, None)).await
    }
}

/// Repeats an engine call whose answer named a container state bollard does not know.
///
/// Between a process exit and its cleanup Podman 4.3 reports the state `stopped` (in inspect
/// and, now and then, in listings), which the Docker API and so bollard's enums do not have:
/// the whole answer then fails to deserialize. The state becomes `exited` within a fraction of
/// a second, so asking again settles it.
pub(crate) async fn ride_out_unknown_states<T, F, Fut>(
    what: &str,
    mut call: F,
) -> std::result::Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
{
    const TRIES: u32 = 100;
    let mut tries = 0;
    loop {
        match call().await {
            Err(e @ bollard::errors::Error::JsonDataError { .. })
                if tries < TRIES && e.to_string().contains("unknown variant") =>
            {
                tries += 1;
                debug!(what, error = %e, "unknown container state; asking again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r => return r,
        }
    }
}

/// Whether a bollard error is an engine answer with this HTTP status.
pub(crate) fn is_status(e: &bollard::errors::Error, status: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status)
}

fn error_mentions(e: &bollard::errors::Error, needle: &str) -> bool {
    e.to_string().to_lowercase().contains(needle)
}

impl DataPlane for Engine {
    async fn ping(&self) -> Result<EngineInfo> {
        // Negotiate on every ping: the engine may have been upgraded or replaced meanwhile, and
        // podman reports an older API (1.41) than bollard's default.
        let (client, version) = self.handshake().await?;
        let product = version
            .components
            .as_ref()
            .and_then(|c| c.first())
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "Docker Engine".to_owned());
        let info = EngineInfo {
            endpoint: self.endpoint.clone(),
            product,
            version: version.version.unwrap_or_default(),
            api_version: client.docker.client_version().to_string(),
        };
        debug!(endpoint = %info.endpoint, product = %info.product, version = %info.version, "engine answered");
        Ok(info)
    }

    #[instrument(skip_all, fields(network = %key.network_name()))]
    async fn ensure_network(&self, key: &WorkloadKey) -> Result<()> {
        let c = self.client().await?;
        self.ensure_network_with(&c, key).await
    }

    #[instrument(skip_all, fields(workload = %spec.key, release = %spec.release))]
    async fn rollout(
        &self,
        spec: &WorkloadSpec,
        routes: &dyn RouteSwitch,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<Vec<Instance>> {
        self.rollouts
            .run(&spec.key, workload::rollout(self, spec, routes, events))
            .await
    }

    async fn instances(&self, key: &WorkloadKey) -> Result<Vec<Instance>> {
        let c = self.client().await?;
        self.list(&c, &workload::key_labels(key), false).await
    }

    async fn list_managed(&self) -> Result<Vec<Instance>> {
        let c = self.client().await?;
        self.list(&c, &[], true).await
    }

    #[instrument(skip_all, fields(instance = %id))]
    async fn remove_instance(&self, id: &str, grace: Duration) -> Result<()> {
        let c = self.client().await?;
        self.remove_container(&c, id, grace).await
    }

    #[instrument(skip_all, fields(workload = %key))]
    async fn remove_workload(&self, key: &WorkloadKey) -> Result<()> {
        let c = self.client().await?;
        // Tasks of the workload too: nothing with the key's labels survives.
        let all = self.list(&c, &workload::key_labels(key), true).await?;
        let removals = all
            .iter()
            .map(|i| self.remove_container(&c, &i.id, REMOVE_GRACE));
        for r in futures_util::future::join_all(removals).await {
            r?;
        }
        Ok(())
    }

    async fn logs(&self, instance_id: &str, options: &LogsOptions) -> Result<BoxLogStream> {
        let c = self.client().await?;
        // Ask first so that a wrong id is an error now, not an empty stream.
        if let Err(e) = self.inspect(&c, instance_id).await {
            return Err(if is_status(&e, 404) {
                Error::Engine(format!("no instance {instance_id}"))
            } else {
                self.engine_error(e)
            });
        }
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let since = options
            .since
            .map_or(0, |s| i32::try_from(s.max(0)).unwrap_or(i32::MAX));
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail)
            .since(since)
            .build();
        let endpoint = self.endpoint.clone();
        let stream = c
            .docker
            .logs(instance_id, Some(opts))
            .flat_map(move |item| {
                let lines: Vec<Result<LogLine>> = match item {
                    Ok(output) => log_lines(&output).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(Error::Unavailable {
                        endpoint: endpoint.clone(),
                        reason: format!("reading logs: {e}"),
                    })],
                };
                futures_util::stream::iter(lines)
            });
        Ok(Box::pin(stream))
    }

    #[instrument(skip_all, fields(workload = %task.workload.key, execution = %task.execution))]
    async fn run_task(
        &self,
        task: &TaskSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<TaskOutcome> {
        task::run(self, task, events).await
    }
}

/// Splits one demultiplexed log frame into lines (engines usually send one line per frame).
pub(crate) fn log_lines(output: &bollard::container::LogOutput) -> Vec<LogLine> {
    use bollard::container::LogOutput;
    let stream = match output {
        LogOutput::StdErr { .. } => LogStream::Stderr,
        _ => LogStream::Stdout,
    };
    let text = String::from_utf8_lossy(output.as_ref());
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n')
        .map(|l| LogLine {
            stream,
            text: l.strip_suffix('\r').unwrap_or(l).to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_endpoint_wins() {
        assert_eq!(
            discover_endpoint(Some("unix:///tmp/x.sock")).unwrap(),
            "unix:///tmp/x.sock"
        );
    }

    #[test]
    fn rejects_unknown_scheme() {
        let err = Engine::connect("ftp://x").unwrap_err();
        assert!(err.to_string().contains("expected unix://"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_unavailable_not_a_panic() {
        let engine = Engine::connect("unix:///nonexistent/berth-test.sock").unwrap();
        let err = engine.ping().await.unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string().contains("/nonexistent/berth-test.sock"),
            "{err}"
        );
        // Every other call fails the same way, transiently.
        let err = engine.list_managed().await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }

    #[test]
    fn log_frames_split_into_lines() {
        use bollard::container::LogOutput;
        let lines = log_lines(&LogOutput::StdErr {
            message: "a\r\nb\n".into(),
        });
        assert_eq!(
            lines,
            vec![
                LogLine {
                    stream: LogStream::Stderr,
                    text: "a".into()
                },
                LogLine {
                    stream: LogStream::Stderr,
                    text: "b".into()
                }
            ]
        );
    }

    #[test]
    fn data_root_is_configurable() {
        let e = Engine::connect("unix:///x.sock")
            .unwrap()
            .with_data_root("/tmp/berth-x");
        assert_eq!(e.data_root(), Path::new("/tmp/berth-x"));
        assert_eq!(
            Engine::connect("/x.sock").unwrap().data_root(),
            Path::new(DEFAULT_DATA_ROOT)
        );
    }
}
