//! Service workloads: containers, instances and the zero-downtime rollout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, EndpointSettings, HostConfig, HostConfigLogConfig, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Client, Engine, label, mounts, probe};
use crate::{
    DeploymentPhase, Error, Instance, InstanceState, ProbeAction, Result, RolloutEvent,
    RouteSwitch, WorkloadKey, WorkloadSpec,
};

/// How often readiness is checked when the spec has no probe.
const DEFAULT_PERIOD: Duration = Duration::from_millis(250);
/// Timeout of the implicit TCP probe.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Log lines quoted when a new instance does not get ready.
const FAILURE_LOG_LINES: usize = 20;
/// Old instances are stopped this long after their drain period (SIGTERM, then SIGKILL).
const DRAIN_STOP_GRACE: Duration = Duration::from_secs(1);
/// Per-container log cap where the engine supports it (json-file, k8s-file).
const LOG_MAX_SIZE: &str = "10m";

/// The label filter selecting one workload.
pub(crate) fn key_labels(key: &WorkloadKey) -> [(&'static str, &str); 4] {
    [
        (label::ORG, key.org.as_str()),
        (label::PROJECT, key.project.as_str()),
        (label::COMPONENT, key.component.as_str()),
        (label::ENV, key.env.as_str()),
    ]
}

/// Labels of every container of `spec`'s release (owned by `owner`, when given).
pub(crate) fn base_labels(spec: &WorkloadSpec, owner: Option<&str>) -> HashMap<String, String> {
    let key = &spec.key;
    let mut labels = HashMap::from([
        (label::MANAGED.to_owned(), "true".to_owned()),
        (label::ORG.to_owned(), key.org.clone()),
        (label::PROJECT.to_owned(), key.project.clone()),
        (label::COMPONENT.to_owned(), key.component.clone()),
        (label::ENV.to_owned(), key.env.clone()),
        (label::RELEASE.to_owned(), spec.release.clone()),
    ]);
    if let Some(owner) = owner {
        labels.insert(label::OWNER.to_owned(), owner.to_owned());
    }
    labels
}

/// Characters allowed in container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`); others become `-`.
pub(crate) fn name_part(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `{container_prefix}-{release-first-8-chars}-{index}`, or with the whole release id when
/// `long` (used when another release already holds the short name: time-ordered ids such as
/// UUIDv7 share their first 8 characters for about a minute).
fn replica_name(spec: &WorkloadSpec, index: usize, long: bool) -> String {
    let release = name_part(&spec.release, if long { 128 } else { 8 });
    format!("{}-{release}-{index}", spec.key.container_prefix())
}

fn choose_name(spec: &WorkloadSpec, index: usize, existing: &[Instance]) -> String {
    let short = replica_name(spec, index, false);
    match existing.iter().find(|x| x.name == short) {
        Some(x) if x.release != spec.release => replica_name(spec, index, true),
        _ => short,
    }
}

fn validate(spec: &WorkloadSpec) -> Result<()> {
    let invalid = |m: String| Err(Error::Invalid(m));
    if spec.image.is_empty() {
        return invalid("no image".into());
    }
    if spec.release.is_empty() {
        return invalid("no release id".into());
    }
    if spec.replicas == 0 {
        return invalid("replicas must be at least 1 (remove the workload to stop it)".into());
    }
    if spec.port == Some(0) {
        return invalid("port 0".into());
    }
    if spec.memory_bytes.is_some_and(|m| m <= 0) || spec.cpu_millis.is_some_and(|c| c <= 0) {
        return invalid("memory and CPU limits must be positive".into());
    }
    mounts::validate(&spec.files)
}

fn state_of_summary(s: Option<&ContainerSummaryStateEnum>) -> InstanceState {
    match s {
        Some(ContainerSummaryStateEnum::CREATED) => InstanceState::Created,
        Some(ContainerSummaryStateEnum::RUNNING) => InstanceState::Running,
        Some(ContainerSummaryStateEnum::EXITED) => InstanceState::Exited,
        _ => InstanceState::Other,
    }
}

fn state_of_inspect(info: &ContainerInspectResponse) -> InstanceState {
    match info.state.as_ref().and_then(|s| s.status.as_ref()) {
        Some(ContainerStateStatusEnum::CREATED) => InstanceState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => InstanceState::Running,
        Some(ContainerStateStatusEnum::EXITED) => InstanceState::Exited,
        _ => InstanceState::Other,
    }
}

fn key_from_labels(labels: &HashMap<String, String>) -> Option<WorkloadKey> {
    let get = |k: &str| labels.get(k).cloned();
    Some(WorkloadKey {
        org: get(label::ORG)?,
        project: get(label::PROJECT)?,
        component: get(label::COMPONENT)?,
        env: get(label::ENV)?,
    })
}

fn published_ip(ip: Option<&str>) -> IpAddr {
    match ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// An [`Instance`] from a container listing; `None` for containers without berth's key labels.
pub(crate) fn instance_from_summary(s: &ContainerSummary) -> Option<Instance> {
    let labels = s.labels.as_ref()?;
    let key = key_from_labels(labels)?;
    let port: Option<u16> = labels.get(label::PORT).and_then(|p| p.parse().ok());
    let address = port.and_then(|port| {
        s.ports
            .iter()
            .flatten()
            .find(|p| p.private_port == port && p.public_port.is_some_and(|p| p != 0))
            .map(|p| SocketAddr::new(published_ip(p.ip.as_deref()), p.public_port.unwrap_or(0)))
    });
    Some(Instance {
        id: s.id.clone()?,
        name: s
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        key,
        release: labels.get(label::RELEASE).cloned().unwrap_or_default(),
        state: state_of_summary(s.state.as_ref()),
        address,
    })
}

/// An [`Instance`] from an inspection (what a rollout just started).
fn instance_from_inspect(info: &ContainerInspectResponse) -> Option<Instance> {
    let labels = info.config.as_ref()?.labels.as_ref()?;
    let key = key_from_labels(labels)?;
    let port: Option<u16> = labels.get(label::PORT).and_then(|p| p.parse().ok());
    let address = port.and_then(|port| {
        let ports = info.network_settings.as_ref()?.ports.as_ref()?;
        ports
            .get(&format!("{port}/tcp"))?
            .as_ref()?
            .iter()
            .find_map(|b| {
                let host_port: u16 = b.host_port.as_deref()?.parse().ok()?;
                (host_port != 0)
                    .then(|| SocketAddr::new(published_ip(b.host_ip.as_deref()), host_port))
            })
    });
    Some(Instance {
        id: info.id.clone()?,
        name: info
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        key,
        release: labels.get(label::RELEASE).cloned().unwrap_or_default(),
        state: state_of_inspect(info),
        address,
    })
}

/// The container's address on the workload network (probes of ports other than the published
/// one go there: container IPs are routable from the engine's host).
fn network_ip(info: &ContainerInspectResponse, network: &str) -> Option<IpAddr> {
    info.network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .get(network)?
        .ip_address
        .as_deref()?
        .parse()
        .ok()
}

/// Why a container that should run does not: `exited with code N` and what the engine adds.
fn exit_reason(info: &ContainerInspectResponse) -> String {
    let state = info.state.as_ref();
    let code = state
        .and_then(|s| s.exit_code)
        .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let mut reason = match state.and_then(|s| s.status.as_ref()) {
        Some(ContainerStateStatusEnum::EXITED) | Some(ContainerStateStatusEnum::DEAD) | None => {
            format!("exited with code {code}")
        }
        Some(other) => format!("is {other} (exit code {code})"),
    };
    if state.and_then(|s| s.oom_killed).unwrap_or(false) {
        reason.push_str(" (killed: out of memory)");
    }
    if let Some(err) = state
        .and_then(|s| s.error.as_deref())
        .filter(|e| !e.is_empty())
    {
        reason.push_str(&format!(": {err}"));
    }
    reason
}

/// What a container of `spec` is created with.
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) labels: HashMap<String, String>,
    /// CMD; `None` keeps the image's (or none, when the entrypoint is replaced).
    pub(crate) cmd: Option<Vec<String>>,
    /// Join the network with the component name as DNS alias (services, not tasks).
    pub(crate) alias: bool,
    /// Publish `spec.port` on 127.0.0.1 with a random host port.
    pub(crate) publish: bool,
}

fn container_body(
    spec: &WorkloadSpec,
    plan: &Plan,
    binds: Vec<String>,
    log_caps: bool,
) -> ContainerCreateBody {
    let network = spec.key.network_name();
    let published = spec.port.filter(|_| plan.publish);
    let port_bindings = published.map(|p| {
        HashMap::from([(
            format!("{p}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                // "0": the engine picks a free port and reports it in inspect.
                host_port: Some("0".to_owned()),
            }]),
        )])
    });
    let host_config = HostConfig {
        network_mode: Some(network.clone()),
        port_bindings,
        binds: (!binds.is_empty()).then_some(binds),
        memory: spec.memory_bytes,
        nano_cpus: spec.cpu_millis.map(|m| m.saturating_mul(1_000_000)),
        // berth restarts on its own terms (liveness, reconciler); a crash shows as not ready.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        log_config: log_caps.then(|| HostConfigLogConfig {
            typ: None,
            config: Some(HashMap::from([(
                "max-size".to_owned(),
                LOG_MAX_SIZE.to_owned(),
            )])),
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        entrypoint: spec.command.clone(),
        cmd: plan.cmd.clone(),
        labels: Some(plan.labels.clone()),
        exposed_ports: published.map(|p| vec![format!("{p}/tcp")]),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                EndpointSettings {
                    aliases: plan.alias.then(|| vec![spec.key.component.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

impl Engine {
    /// Creates and starts one container (replacing a leftover of the same name) and returns its
    /// inspection. On a start failure the container is removed again.
    pub(crate) async fn create_and_start(
        &self,
        c: &Client,
        spec: &WorkloadSpec,
        plan: &Plan,
    ) -> Result<ContainerInspectResponse> {
        self.remove_container(c, &plan.name, DRAIN_STOP_GRACE)
            .await?;
        let binds = mounts::write(&self.data_root, &plan.name, &spec.files)?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&plan.name)
            .build();
        let create = |log_caps: bool| {
            c.docker.create_container(
                Some(options.clone()),
                container_body(spec, plan, binds.clone(), log_caps),
            )
        };
        let created = match create(true).await {
            // An engine whose default log driver takes no max-size (journald, …): run uncapped.
            Err(e) if e.to_string().to_lowercase().contains("log") => {
                warn!(container = %plan.name, error = %e, "log size cap refused; creating without it");
                create(false).await
            }
            other => other,
        };
        let created = match created {
            Ok(r) => r,
            Err(e) => {
                mounts::remove(&self.data_root, &plan.name);
                return Err(self.engine_error(e));
            }
        };
        if let Err(e) = c.docker.start_container(&created.id, None).await {
            let err = self.engine_error(e);
            let _ = self
                .remove_container(c, &created.id, DRAIN_STOP_GRACE)
                .await;
            return Err(err);
        }
        self.inspect(c, &created.id)
            .await
            .map_err(|e| self.engine_error(e))
    }

    /// The last `lines` log lines of a container, for error messages.
    pub(crate) async fn tail_logs(&self, c: &Client, id: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let collect = async {
            let mut out = Vec::new();
            let mut stream = c.docker.logs(id, Some(options));
            while let Some(Ok(frame)) = stream.next().await {
                out.extend(super::log_lines(&frame).into_iter().map(|l| l.text));
            }
            out
        };
        let out = tokio::time::timeout(Duration::from_secs(5), collect)
            .await
            .unwrap_or_default();
        let skip = out.len().saturating_sub(lines);
        out[skip..].join("\n")
    }

    /// One readiness check of a running instance (no waiting, no retries).
    async fn check(
        &self,
        c: &Client,
        spec: &WorkloadSpec,
        instance: &Instance,
        info: &ContainerInspectResponse,
    ) -> Result<(), String> {
        let network = spec.key.network_name();
        let target = |port: u16| -> Result<SocketAddr, String> {
            if Some(port) == spec.port {
                instance
                    .address
                    .ok_or_else(|| format!("port {port} is not published"))
            } else {
                network_ip(info, &network)
                    .map(|ip| SocketAddr::new(ip, port))
                    .ok_or_else(|| format!("no address on network {network}"))
            }
        };
        let Some(readiness) = spec.readiness.as_ref() else {
            return match spec.port {
                Some(port) => probe::tcp(target(port)?, DEFAULT_TIMEOUT).await,
                // Nothing to connect to: running is ready.
                None => Ok(()),
            };
        };
        match &readiness.action {
            ProbeAction::Http {
                path,
                port,
                statuses,
            } => {
                let status = probe::http_status(target(*port)?, path, readiness.timeout).await?;
                if statuses.contains(&status) {
                    Ok(())
                } else {
                    Err(format!(
                        "GET {path} returned HTTP {status} (expected {}-{})",
                        statuses.start(),
                        statuses.end()
                    ))
                }
            }
            ProbeAction::Tcp { port } => probe::tcp(target(*port)?, readiness.timeout).await,
            ProbeAction::Exec { command } => {
                probe::exec(c, &instance.id, command, readiness.timeout).await
            }
        }
    }

    /// Whether an existing instance runs and passes one readiness check now.
    async fn ready_now(&self, c: &Client, spec: &WorkloadSpec, instance: &Instance) -> bool {
        // The usual case first, without asking the engine: an HTTP probe on the published
        // port that answers as expected means the container runs (Podman takes tens of
        // milliseconds per inspect with hundreds of containers, and the reconciler asks this
        // of every serving instance on every pass). Anything else is checked as before.
        if let (Some(readiness), Some(addr)) = (spec.readiness.as_ref(), instance.address)
            && let ProbeAction::Http {
                path,
                port,
                statuses,
            } = &readiness.action
            && Some(*port) == spec.port
            && probe::http_status(addr, path, readiness.timeout)
                .await
                .is_ok_and(|status| statuses.contains(&status))
        {
            return true;
        }
        // A running instance is replaced only after LIVENESS_FAILURES failed checks in a row, a
        // probe period apart: one slow answer under load is not a dead instance (replacing it
        // would only add churn). One that stopped running is replaced at once.
        let period = spec
            .readiness
            .as_ref()
            .map_or(DEFAULT_PERIOD, |p| p.period.max(Duration::from_millis(10)));
        for attempt in 1..=LIVENESS_FAILURES {
            let Ok(info) = self.inspect(c, &instance.id).await else {
                return false;
            };
            if state_of_inspect(&info) != InstanceState::Running {
                return false;
            }
            match self.check(c, spec, instance, &info).await {
                Ok(()) => return true,
                Err(reason) if attempt < LIVENESS_FAILURES => {
                    debug!(instance = %instance.name, %reason, attempt, "liveness check failed; checking again");
                    tokio::time::sleep(period).await;
                }
                Err(reason) => {
                    info!(instance = %instance.name, %reason, "liveness: failed {LIVENESS_FAILURES} checks in a row");
                }
            }
        }
        false
    }

    /// Waits until `instance` is ready: initial delay, then a check every period until one
    /// succeeds, the container stops running (fails at once) or `spec.ready_timeout` passes.
    async fn wait_ready(
        &self,
        c: &Client,
        spec: &WorkloadSpec,
        instance: &Instance,
        events: &UnboundedSender<RolloutEvent>,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let deadline = started + spec.ready_timeout;
        let (initial_delay, period) = spec
            .readiness
            .as_ref()
            .map_or((Duration::ZERO, DEFAULT_PERIOD), |p| {
                (p.initial_delay, p.period.max(Duration::from_millis(10)))
            });
        tokio::time::sleep_until((started + initial_delay).min(deadline)).await;
        let fail = |reason: String| Failure {
            instance: instance.clone(),
            reason,
        };
        let mut last: Option<String> = None;
        loop {
            let info = self
                .inspect(c, &instance.id)
                .await
                .map_err(|e| fail(format!("inspecting: {}", self.engine_error(e))))?;
            if state_of_inspect(&info) != InstanceState::Running {
                let reason = exit_reason(&info);
                let _ = events.send(RolloutEvent::ProbeFailed {
                    instance: instance.name.clone(),
                    reason: reason.clone(),
                });
                return Err(fail(reason));
            }
            match self.check(c, spec, instance, &info).await {
                Ok(()) => {
                    info!(instance = %instance.name, after = ?started.elapsed(), "ready");
                    let _ = events.send(RolloutEvent::Ready {
                        instance: instance.name.clone(),
                    });
                    return Ok(());
                }
                Err(reason) => {
                    // One event per distinct reason: a probe every 200 ms is not news.
                    if last.as_deref() != Some(reason.as_str()) {
                        debug!(instance = %instance.name, %reason, "not ready yet");
                        let _ = events.send(RolloutEvent::ProbeFailed {
                            instance: instance.name.clone(),
                            reason: reason.clone(),
                        });
                    }
                    last = Some(reason);
                }
            }
            if Instant::now() + period >= deadline {
                return Err(fail(format!(
                    "readiness probe failed: {} (not ready within {:?})",
                    last.unwrap_or_default(),
                    spec.ready_timeout
                )));
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Failed checks in a row after which a running instance counts as failing (Kubernetes'
/// `failureThreshold` default).
const LIVENESS_FAILURES: u32 = 3;

/// An instance that did not get ready, and why.
struct Failure {
    instance: Instance,
    reason: String,
}

/// See [`crate::DataPlane::rollout`].
pub(crate) async fn rollout(
    engine: &Engine,
    spec: &WorkloadSpec,
    routes: &dyn RouteSwitch,
    events: &UnboundedSender<RolloutEvent>,
) -> Result<Vec<Instance>> {
    validate(spec)?;
    let c = engine.client().await?;
    let existing = engine.list(&c, &key_labels(&spec.key), false).await?;
    let replicas = spec.replicas as usize;

    // Replicas of this release that already run and answer are kept: rolling out the running
    // release is a no-op, and after a crash only the broken replicas are replaced.
    let mut slots: Vec<Option<Instance>> = vec![None; replicas];
    for (index, slot) in slots.iter_mut().enumerate() {
        let names = [
            replica_name(spec, index, false),
            replica_name(spec, index, true),
        ];
        if let Some(x) = existing.iter().find(|x| {
            x.release == spec.release
                && x.state == InstanceState::Running
                && names.contains(&x.name)
        }) && engine.ready_now(&c, spec, x).await
        {
            *slot = Some(x.clone());
        }
    }

    let missing: Vec<usize> = (0..replicas).filter(|i| slots[*i].is_none()).collect();
    if !missing.is_empty() {
        // Only what starts needs the network. Podman answers a network inspect in seconds
        // once hundreds of containers exist, so the reconciler's no-op rollouts of running
        // releases do not ask.
        engine.ensure_network_with(&c, &spec.key).await?;
        engine
            .pull_image(&spec.image, spec.auth.as_ref(), spec.pull_policy, events)
            .await?;
        let fresh = start_new(engine, &c, spec, &existing, &missing, events).await?;
        for (index, instance) in missing.iter().zip(fresh) {
            slots[*index] = Some(instance);
        }
    }
    let instances: Vec<Instance> = slots.into_iter().flatten().collect();

    let backends: Vec<SocketAddr> = instances.iter().filter_map(|i| i.address).collect();
    if !missing.is_empty() {
        // A phase only when traffic moves to new instances (the reconciler's no-op rollouts
        // switch to the same backends again and report just `Switched`).
        let _ = events.send(RolloutEvent::Switching {
            backends: backends.len(),
        });
        engine.fault_hold(DeploymentPhase::Switching).await;
    }
    routes.switch(&spec.key, &backends);
    let _ = events.send(RolloutEvent::Switched {
        backends: backends.len(),
    });
    info!(backends = backends.len(), "traffic switched");

    // Everything else of this workload drains: other releases, surplus replicas.
    let old: Vec<&Instance> = existing
        .iter()
        .filter(|x| !instances.iter().any(|i| i.id == x.id || i.name == x.name))
        .collect();
    // Traffic is on the new release: it serves, whatever the removal of the old instances
    // says. Failing the rollout here would record the serving release as failed, and the
    // reconciler would then remove it as unwanted. What could not be removed now is removed
    // by the reconciler (instances of a release that does not serve).
    if let Err(e) = drain(engine, &c, spec, &old, events).await {
        warn!(error = %e, "removing the old instances failed; the reconciler removes them");
    }
    Ok(instances)
}

/// The reconciler's fast path (see [`Engine::keep_serving`]): the instances when `listed`
/// holds exactly the spec's replicas, all of its release, running and ready now; they are
/// routed then.
pub(crate) async fn keep_listed(
    engine: &Engine,
    spec: &WorkloadSpec,
    routes: &dyn RouteSwitch,
    listed: &[Instance],
) -> Option<Vec<Instance>> {
    if validate(spec).is_err() {
        return None;
    }
    let replicas = spec.replicas as usize;
    let mine: Vec<&Instance> = listed.iter().filter(|x| x.key == spec.key).collect();
    if mine.len() != replicas {
        return None;
    }
    let c = engine.client().await.ok()?;
    let mut instances = Vec::with_capacity(replicas);
    for index in 0..replicas {
        let names = [
            replica_name(spec, index, false),
            replica_name(spec, index, true),
        ];
        let x = mine.iter().find(|x| {
            x.release == spec.release
                && x.state == InstanceState::Running
                && names.contains(&x.name)
        })?;
        if !engine.ready_now(&c, spec, x).await {
            return None;
        }
        instances.push(*x);
    }
    let backends: Vec<SocketAddr> = instances.iter().filter_map(|i| i.address).collect();
    routes.switch(&spec.key, &backends);
    Some(instances.into_iter().cloned().collect())
}

/// Starts the `missing` replicas and waits until all are ready. On any failure the new
/// containers are removed again and the error says why.
async fn start_new(
    engine: &Engine,
    c: &Client,
    spec: &WorkloadSpec,
    existing: &[Instance],
    missing: &[usize],
    events: &UnboundedSender<RolloutEvent>,
) -> Result<Vec<Instance>> {
    let mut fresh: Vec<Instance> = Vec::with_capacity(missing.len());
    let mut failure: Option<(String, Error)> = None;
    for &index in missing {
        let name = choose_name(spec, index, existing);
        let mut labels = base_labels(spec, engine.owner());
        labels.insert(label::REPLICA.to_owned(), index.to_string());
        if let Some(port) = spec.port {
            labels.insert(label::PORT.to_owned(), port.to_string());
        }
        let plan = Plan {
            name: name.clone(),
            labels,
            cmd: spec.args.clone(),
            alias: true,
            publish: true,
        };
        let _ = events.send(RolloutEvent::Starting {
            instance: name.clone(),
        });
        engine.fault_hold(DeploymentPhase::Starting).await;
        match engine.create_and_start(c, spec, &plan).await {
            Ok(info) => match instance_from_inspect(&info) {
                Some(instance) => fresh.push(instance),
                None => {
                    failure = Some((
                        name,
                        Error::Engine("the new container has no labels".into()),
                    ));
                    break;
                }
            },
            Err(e) => {
                failure = Some((name, e));
                break;
            }
        }
    }

    let failure = match failure {
        Some((name, e)) if e.is_transient() => {
            remove_all(engine, c, &fresh).await;
            debug!(instance = %name, "engine went away during the rollout");
            return Err(e);
        }
        Some((name, e)) => format!("{name} could not start: {e}"),
        None => {
            let waits = fresh.iter().map(|i| engine.wait_ready(c, spec, i, events));
            match futures_util::future::try_join_all(waits).await {
                Ok(_) => return Ok(fresh),
                Err(Failure { instance, reason }) => {
                    let logs = engine.tail_logs(c, &instance.id, FAILURE_LOG_LINES).await;
                    let logs = if logs.trim().is_empty() {
                        "(no output)".to_owned()
                    } else {
                        logs
                    };
                    format!(
                        "{} did not get ready: {reason}; last log lines:\n{logs}",
                        instance.name
                    )
                }
            }
        }
    };
    warn!(reason = %failure, "rollout failed; removing the new instances");
    remove_all(engine, c, &fresh).await;
    let _ = events.send(RolloutEvent::RolledBack {
        reason: failure.clone(),
    });
    Err(Error::NotReady(failure))
}

async fn remove_all(engine: &Engine, c: &Client, instances: &[Instance]) {
    let removals = instances
        .iter()
        .map(|i| engine.remove_container(c, &i.id, DRAIN_STOP_GRACE));
    for (r, i) in futures_util::future::join_all(removals)
        .await
        .into_iter()
        .zip(instances)
    {
        if let Err(e) = r {
            warn!(instance = %i.name, error = %e, "could not remove a failed instance");
        }
    }
}

/// Lets `old` finish in-flight requests for `spec.drain`, then stops and removes them.
async fn drain(
    engine: &Engine,
    c: &Client,
    spec: &WorkloadSpec,
    old: &[&Instance],
    events: &UnboundedSender<RolloutEvent>,
) -> Result<()> {
    if old.is_empty() {
        return Ok(());
    }
    for x in old {
        let _ = events.send(RolloutEvent::Draining {
            instance: x.name.clone(),
        });
    }
    engine.fault_hold(DeploymentPhase::Draining).await;
    tokio::time::sleep(spec.drain).await;
    let removals = old.iter().map(|x| async move {
        engine.remove_container(c, &x.id, DRAIN_STOP_GRACE).await?;
        let _ = events.send(RolloutEvent::Removed {
            instance: x.name.clone(),
        });
        Ok::<_, Error>(())
    });
    for r in futures_util::future::join_all(removals).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(release: &str) -> WorkloadSpec {
        WorkloadSpec {
            key: WorkloadKey {
                org: "default".into(),
                project: "shop".into(),
                component: "web".into(),
                env: "dev".into(),
            },
            release: release.into(),
            image: "r/x@sha256:0".into(),
            auth: None,
            pull_policy: crate::PullPolicy::IfNotPresent,
            env: vec![("A".into(), "1".into())],
            files: vec![],
            command: None,
            args: None,
            port: Some(8080),
            memory_bytes: Some(64 << 20),
            cpu_millis: Some(500),
            replicas: 2,
            readiness: None,
            liveness: None,
            ready_timeout: Duration::from_secs(5),
            drain: Duration::ZERO,
            kind: Default::default(),
            endpoints: vec![],
            secret_env: vec![],
            scaling: None,
        }
    }

    #[test]
    fn names() {
        let s = spec("0192f3a4-7b2c-7def-8000-000000000001");
        assert_eq!(
            replica_name(&s, 1, false),
            "berth-default-shop-web-dev-0192f3a4-1"
        );
        let holder = Instance {
            id: "x".into(),
            name: "berth-default-shop-web-dev-0192f3a4-0".into(),
            key: s.key.clone(),
            release: "0192f3a4-other".into(),
            state: InstanceState::Running,
            address: None,
        };
        // Another release holds the short name: use the long one.
        assert_eq!(
            choose_name(&s, 0, std::slice::from_ref(&holder)),
            "berth-default-shop-web-dev-0192f3a4-7b2c-7def-8000-000000000001-0"
        );
        assert_eq!(choose_name(&s, 1, &[holder]), replica_name(&s, 1, false));
        assert_eq!(name_part("a/b c", 8), "a-b-c");
    }

    #[test]
    fn body_maps_the_spec() {
        let s = spec("r1");
        let plan = Plan {
            name: "n".into(),
            labels: base_labels(&s, None),
            cmd: None,
            alias: true,
            publish: true,
        };
        let body = container_body(&s, &plan, vec!["/h:/c:ro".into()], true);
        let hc = body.host_config.as_ref().unwrap();
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.network_mode.as_deref(), Some("berth-default-shop-dev"));
        let binding = &hc.port_bindings.as_ref().unwrap()["8080/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("0"));
        assert_eq!(body.env, Some(vec!["A=1".to_owned()]));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["berth-default-shop-dev"].aliases,
            Some(vec!["web".to_owned()])
        );
        assert_eq!(body.labels.unwrap()[label::RELEASE], "r1");
        assert!(validate(&s).is_ok());
        assert!(validate(&WorkloadSpec { replicas: 0, ..s }).is_err());
    }
}
