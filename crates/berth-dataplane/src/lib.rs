//! berth-dataplane: the [`DataPlane`] trait — what berth asks of wherever components run — and
//! its drivers. The engine driver talks to Docker or Podman through the Docker-compatible API
//! (bollard); the Kubernetes driver renders manifests (a pure function, [`kubernetes::render`])
//! and applies them with server-side apply (kube-rs, cargo feature `kubernetes`).
//!
//! Drivers never read the store: the reconciler hands them complete [`WorkloadSpec`]s, with
//! pull credentials resolved. Types here are engine-neutral so both drivers share them.

pub mod engine;
pub mod kubernetes;
mod spec;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use thiserror::Error;

/// One rollout at a time per workload: a deploy's runner and the reconciler's check of what
/// serves take the workload's lock, so they never interleave (shared by the drivers).
#[derive(Debug, Default)]
pub(crate) struct RolloutLocks(
    std::sync::Mutex<
        std::collections::HashMap<WorkloadKey, std::sync::Arc<tokio::sync::Mutex<()>>>,
    >,
);

impl RolloutLocks {
    /// The workload's lock (made on first use).
    fn of(&self, key: &WorkloadKey) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key.clone()).or_default().clone()
    }

    /// Runs `work` with the workload's lock held.
    pub(crate) async fn run<T>(&self, key: &WorkloadKey, work: impl Future<Output = T>) -> T {
        let lock = self.of(key);
        let _serialized = lock.lock().await;
        work.await
    }

    /// Runs `work` with the workload's lock held, unless `superseded()`, asked once the lock is
    /// held, says a deploy started since the caller read what `work` does (`None` then): the
    /// reconciler's check of what serves.
    pub(crate) async fn unless_superseded<T>(
        &self,
        key: &WorkloadKey,
        superseded: impl Fn() -> bool,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        self.run(key, async {
            if superseded() { None } else { Some(work.await) }
        })
        .await
    }
}

pub use spec::{
    DeploymentPhase, EndpointSpec, FileMount, Instance, InstanceState, LogLine, LogStream,
    LogsOptions, Probe, ProbeAction, PullAuth, PullPolicy, RolloutEvent, Scaling, TaskOutcome,
    TaskSchedule, TaskSpec, WorkloadKey, WorkloadKind, WorkloadSpec,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// No engine socket answered; the message lists where berth looked.
    #[error("no container engine found: {0}")]
    NotFound(String),
    /// The engine is configured but does not answer (socket gone, daemon stopped).
    #[error("container engine at {endpoint} is unavailable: {reason}")]
    Unavailable { endpoint: String, reason: String },
    /// Pulling the image failed (the registry's words: 401, manifest unknown, …).
    #[error("pulling {image} failed: {reason}")]
    Pull { image: String, reason: String },
    /// The new version never became ready (or crashed); the old one keeps serving.
    #[error("{0}")]
    NotReady(String),
    /// The engine refused a request.
    #[error("container engine: {0}")]
    Engine(String),
    /// No usable Kubernetes configuration (kubeconfig or in-cluster service account).
    #[error("Kubernetes configuration: {0}")]
    KubeConfig(String),
    /// The spec cannot run (bad mount path, port, …).
    #[error("invalid workload: {0}")]
    Invalid(String),
}

impl Error {
    /// Whether retrying later may help (an engine that went away may come back). Pull and
    /// readiness failures are permanent for that release: the deployment fails with the reason.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// What the data plane reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Where berth reaches it, e.g. `unix:///run/podman/podman.sock`.
    pub endpoint: String,
    /// `Docker Engine` or `Podman Engine`, and its version.
    pub product: String,
    pub version: String,
    /// The API version berth negotiated.
    pub api_version: String,
}

/// Called by a rollout when the new replicas are ready, before the old ones drain: the gateway
/// switches its routes for the workload to `backends` atomically.
pub trait RouteSwitch: Send + Sync {
    fn switch(&self, key: &WorkloadKey, backends: &[SocketAddr]);
}

/// A `RouteSwitch` that routes nothing (tasks, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRoutes;

impl RouteSwitch for NoRoutes {
    fn switch(&self, _: &WorkloadKey, _: &[SocketAddr]) {}
}

/// Boxed stream of log lines.
pub type BoxLogStream = Pin<Box<dyn futures_util::Stream<Item = Result<LogLine>> + Send>>;

/// The data plane. Every method is idempotent: applying the same spec twice is a no-op, and
/// removing what is already gone is `Ok(())`.
pub trait DataPlane: Send + Sync {
    /// Checks that the data plane answers and says what it is. Never changes anything.
    fn ping(&self) -> impl Future<Output = Result<EngineInfo>> + Send;

    /// Creates the network of (org, project, env) if missing.
    fn ensure_network(&self, key: &WorkloadKey) -> impl Future<Output = Result<()>> + Send;

    /// Rolls `spec` out with zero downtime: pull (credentials per pull, never stored in the
    /// engine) → start `replicas` new instances → readiness → `routes.switch(new)` → drain and
    /// remove the instances of other releases. When the new instances never get ready (or
    /// crash), they are removed, the old ones keep serving, and the error says why (probe
    /// error and the last log lines). Rolling out the release that already runs and is ready
    /// is a no-op that returns its instances. Progress goes to `events`.
    fn rollout(
        &self,
        spec: &WorkloadSpec,
        routes: &dyn RouteSwitch,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> impl Future<Output = Result<Vec<Instance>>> + Send;

    /// The instances of one workload (any release), running or not.
    fn instances(&self, key: &WorkloadKey) -> impl Future<Output = Result<Vec<Instance>>> + Send;

    /// Every instance berth manages (label `berth.managed=true`), for the reconciler's sweep.
    fn list_managed(&self) -> impl Future<Output = Result<Vec<Instance>>> + Send;

    /// Stops and removes one instance (after `grace`). Gone already → `Ok(())`.
    fn remove_instance(
        &self,
        id: &str,
        grace: std::time::Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stops and removes every instance of a workload.
    fn remove_workload(&self, key: &WorkloadKey) -> impl Future<Output = Result<()>> + Send;

    /// Logs of one instance.
    fn logs(
        &self,
        instance_id: &str,
        options: &LogsOptions,
    ) -> impl Future<Output = Result<BoxLogStream>> + Send;

    /// Runs a task to completion (pull, run with `args` appended, wait, collect logs) and
    /// returns its exit code.
    fn run_task(
        &self,
        task: &TaskSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> impl Future<Output = Result<TaskOutcome>> + Send;
}

/// The data plane a server runs on: the container engine or a Kubernetes cluster.
pub enum Plane {
    Engine(engine::Engine),
    #[cfg(feature = "kubernetes")]
    Kubernetes(kubernetes::Kubernetes),
}

impl std::fmt::Debug for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Plane").field(&self.endpoint()).finish()
    }
}

impl Plane {
    /// Where berth reaches it.
    pub fn endpoint(&self) -> &str {
        match self {
            Plane::Engine(e) => e.endpoint(),
            #[cfg(feature = "kubernetes")]
            Plane::Kubernetes(k) => k.endpoint(),
        }
    }

    /// The engine, for what only it has (networks' subnets, IP-level isolation).
    pub fn as_engine(&self) -> Option<&engine::Engine> {
        match self {
            Plane::Engine(e) => Some(e),
            #[cfg(feature = "kubernetes")]
            Plane::Kubernetes(_) => None,
        }
    }

    #[cfg(feature = "kubernetes")]
    pub fn as_kubernetes(&self) -> Option<&kubernetes::Kubernetes> {
        match self {
            Plane::Kubernetes(k) => Some(k),
            Plane::Engine(_) => None,
        }
    }

    /// Whether workloads run on Kubernetes (whose CronJobs schedule tasks and whose Gateways
    /// route traffic).
    pub fn is_kubernetes(&self) -> bool {
        !matches!(self, Plane::Engine(_))
    }
}

macro_rules! delegate {
    ($self:ident, $p:ident => $call:expr) => {
        match $self {
            Plane::Engine($p) => $call.await,
            #[cfg(feature = "kubernetes")]
            Plane::Kubernetes($p) => $call.await,
        }
    };
}

impl DataPlane for Plane {
    async fn ping(&self) -> Result<EngineInfo> {
        delegate!(self, p => p.ping())
    }

    async fn ensure_network(&self, key: &WorkloadKey) -> Result<()> {
        delegate!(self, p => p.ensure_network(key))
    }

    async fn rollout(
        &self,
        spec: &WorkloadSpec,
        routes: &dyn RouteSwitch,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<Vec<Instance>> {
        delegate!(self, p => p.rollout(spec, routes, events))
    }

    async fn instances(&self, key: &WorkloadKey) -> Result<Vec<Instance>> {
        delegate!(self, p => p.instances(key))
    }

    async fn list_managed(&self) -> Result<Vec<Instance>> {
        delegate!(self, p => p.list_managed())
    }

    async fn remove_instance(&self, id: &str, grace: std::time::Duration) -> Result<()> {
        delegate!(self, p => p.remove_instance(id, grace))
    }

    async fn remove_workload(&self, key: &WorkloadKey) -> Result<()> {
        delegate!(self, p => p.remove_workload(key))
    }

    async fn logs(&self, instance_id: &str, options: &LogsOptions) -> Result<BoxLogStream> {
        delegate!(self, p => p.logs(instance_id, options))
    }

    async fn run_task(
        &self,
        task: &TaskSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<TaskOutcome> {
        delegate!(self, p => p.run_task(task, events))
    }
}
