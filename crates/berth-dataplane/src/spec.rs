//! Engine-neutral workload types.

use std::net::SocketAddr;
use std::time::Duration;

pub use berth_core::api::DeploymentPhase;

/// One component in one environment: what a network, a label set and a route belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub org: String,
    pub project: String,
    pub component: String,
    pub env: String,
}

impl WorkloadKey {
    /// `berth-<org>-<project>-<env>`: one network per (org, project, environment).
    pub fn network_name(&self) -> String {
        format!("berth-{}-{}-{}", self.org, self.project, self.env)
    }

    /// Prefix of this workload's container names.
    pub fn container_prefix(&self) -> String {
        format!(
            "berth-{}-{}-{}-{}",
            self.org, self.project, self.component, self.env
        )
    }

    /// Name of the container of one task execution: `{container_prefix}-task-{execution}`
    /// (characters a container name cannot hold become `-`).
    pub fn task_container_name(&self, execution: &str) -> String {
        let execution: String = execution
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{}-task-{execution}", self.container_prefix())
    }
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.org, self.project, self.component, self.env
        )
    }
}

/// Credentials for one pull. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PullAuth {
    pub username: String,
    pub password: String,
    /// Registry host as the engine knows it, e.g. `127.0.0.1:5000`, `docker.io`.
    pub server: String,
}

impl std::fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only when the engine lacks the image (right for digests: they never change).
    #[default]
    IfNotPresent,
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// HTTP GET on the container port; success when the status is in `statuses`.
    Http {
        path: String,
        port: u16,
        statuses: std::ops::RangeInclusive<u16>,
    },
    /// A TCP connect.
    Tcp { port: u16 },
    /// A command run inside the container; exit code 0 is success.
    Exec { command: Vec<String> },
}

/// A readiness or liveness probe, run by berth itself (engine healthchecks need systemd under
/// Podman).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the probe counts as failed.
    pub failure_threshold: u32,
}

impl Probe {
    pub fn http(path: &str, port: u16) -> Self {
        Self {
            action: ProbeAction::Http {
                path: path.to_owned(),
                port,
                statuses: 200..=399,
            },
            initial_delay: Duration::ZERO,
            // Readiness gates traffic: poll briskly so a deploy is not slower than the app.
            period: Duration::from_millis(50),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
        }
    }
}

/// A file mounted read-only into the container.
#[derive(Clone, PartialEq, Eq)]
pub struct FileMount {
    /// Absolute path inside the container.
    pub path: String,
    pub content: Vec<u8>,
    /// Secret files live in a 0600 directory on the host and are never logged.
    pub secret: bool,
}

impl std::fmt::Debug for FileMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMount")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .field("secret", &self.secret)
            .finish()
    }
}

/// What a workload is: how it is exposed or when it runs. The engine driver starts services and
/// web apps alike (the gateway routes them) and runs tasks on demand; the Kubernetes driver
/// renders a Deployment, a CronJob or, per run, a Job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkloadKind {
    #[default]
    Service,
    /// Routed by host name (`<component>-<project>-<env>.<org>.<domain>`).
    WebApp,
    /// Runs on a schedule (`None` = no schedule set yet: nothing runs by itself).
    ScheduledTask(Option<TaskSchedule>),
    /// Runs when asked.
    ManualTask,
}

/// When a scheduled task runs, with Kubernetes' CronJob semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSchedule {
    /// Five-field cron expression.
    pub expr: String,
    /// IANA time zone.
    pub zone: String,
    pub concurrency: berth_core::api::ConcurrencyPolicy,
    pub starting_deadline_seconds: Option<i64>,
    pub active_deadline_seconds: Option<i64>,
    pub suspended: bool,
    pub successful_history_limit: i64,
    pub failed_history_limit: i64,
}

/// One endpoint of a workload: a port, how far it is visible and (HTTP) where it is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub name: String,
    pub port: u16,
    /// HTTP-like (REST, GraphQL, WS): routed by path. Others are reachable, never routed.
    pub http: bool,
    /// Path prefix inside the container (`/` = everything).
    pub context: String,
    pub visibilities: Vec<berth_core::endpoints::Visibility>,
}

/// Horizontal scaling between `min_replicas` and `max_replicas` on CPU/memory utilization
/// (percent of the requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub cpu_utilization: Option<u8>,
    pub memory_utilization: Option<u8>,
}

/// Everything needed to run one release of one component in one environment.
#[derive(Clone)]
pub struct WorkloadSpec {
    pub key: WorkloadKey,
    /// The release id (label `berth.release`).
    pub release: String,
    /// Pull reference pinned to a digest: `host/repo@sha256:…`.
    pub image: String,
    pub auth: Option<PullAuth>,
    pub pull_policy: PullPolicy,
    /// Environment variables (secret values included: never log a spec's env).
    pub env: Vec<(String, String)>,
    pub files: Vec<FileMount>,
    /// Replaces the image's ENTRYPOINT when set.
    pub command: Option<Vec<String>>,
    /// Replaces the image's CMD when set.
    pub args: Option<Vec<String>>,
    /// The port the container listens on (published on 127.0.0.1 for the gateway).
    pub port: Option<u16>,
    pub memory_bytes: Option<i64>,
    /// CPU limit in millicores (1000 = one core).
    pub cpu_millis: Option<i64>,
    pub replicas: u32,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    /// How long the new release may take to get ready.
    pub ready_timeout: Duration,
    /// How long old instances keep running after the switch, to finish in-flight requests.
    pub drain: Duration,
    pub kind: WorkloadKind,
    /// Its endpoints (empty for tasks; a service without an endpoints file gets one Public
    /// endpoint on `port` at `/`).
    pub endpoints: Vec<EndpointSpec>,
    /// Names in `env` whose values are secret (Kubernetes keeps them in a Secret, the others in
    /// a ConfigMap).
    pub secret_env: Vec<String>,
    /// Autoscaling (Kubernetes); `None` = exactly `replicas`.
    pub scaling: Option<Scaling>,
}

impl std::fmt::Debug for WorkloadSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Env values may be secrets: show names only.
        f.debug_struct("WorkloadSpec")
            .field("key", &self.key)
            .field("release", &self.release)
            .field("image", &self.image)
            .field("auth", &self.auth)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("files", &self.files)
            .field("port", &self.port)
            .field("replicas", &self.replicas)
            .field("kind", &self.kind)
            .field("endpoints", &self.endpoints)
            .field("scaling", &self.scaling)
            .finish_non_exhaustive()
    }
}

/// A run-to-completion task.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub workload: WorkloadSpec,
    /// Execution id (label `berth.execution`).
    pub execution: String,
    /// Appended after the image's ENTRYPOINT/CMD.
    pub extra_args: Vec<String>,
    /// Killed after this long.
    pub active_deadline: Option<Duration>,
    /// Largest log kept (bytes); older output is dropped first.
    pub log_limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    pub exit_code: i64,
    pub timed_out: bool,
    pub logs: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Created,
    Running,
    Exited,
    Other,
}

/// One running (or stopped) container / pod of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub key: WorkloadKey,
    pub release: String,
    pub state: InstanceState,
    /// Where the gateway and probes reach it (127.0.0.1:<published port>).
    pub address: Option<SocketAddr>,
}

/// Progress of a rollout or a task, written to the deployment's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutEvent {
    Pulling {
        image: String,
    },
    PullProgress {
        status: String,
    },
    Pulled {
        image: String,
    },
    Starting {
        instance: String,
    },
    Ready {
        instance: String,
    },
    ProbeFailed {
        instance: String,
        reason: String,
    },
    /// Every new instance is ready: traffic switches to them next.
    Switching {
        backends: usize,
    },
    Switched {
        backends: usize,
    },
    Draining {
        instance: String,
    },
    Removed {
        instance: String,
    },
    RolledBack {
        reason: String,
    },
}

impl RolloutEvent {
    /// The rollout phase this event starts, if it starts one.
    pub fn phase(&self) -> Option<DeploymentPhase> {
        match self {
            RolloutEvent::Pulling { .. } => Some(DeploymentPhase::Pulling),
            RolloutEvent::Starting { .. } => Some(DeploymentPhase::Starting),
            RolloutEvent::Switching { .. } => Some(DeploymentPhase::Switching),
            RolloutEvent::Draining { .. } => Some(DeploymentPhase::Draining),
            _ => None,
        }
    }
}

impl std::fmt::Display for RolloutEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RolloutEvent::Pulling { image } => write!(f, "pulling {image}"),
            RolloutEvent::PullProgress { status } => write!(f, "pull: {status}"),
            RolloutEvent::Pulled { image } => write!(f, "pulled {image}"),
            RolloutEvent::Starting { instance } => write!(f, "starting {instance}"),
            RolloutEvent::Ready { instance } => write!(f, "{instance} is ready"),
            RolloutEvent::ProbeFailed { instance, reason } => {
                write!(f, "{instance}: readiness probe failed: {reason}")
            }
            RolloutEvent::Switching { backends } => {
                write!(f, "switching traffic to {backends} new instance(s)")
            }
            RolloutEvent::Switched { backends } => {
                write!(f, "traffic switched to {backends} new instance(s)")
            }
            RolloutEvent::Draining { instance } => write!(f, "draining {instance}"),
            RolloutEvent::Removed { instance } => write!(f, "removed {instance}"),
            RolloutEvent::RolledBack { reason } => write!(f, "rolled back: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Last N lines; `None` = all.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub follow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_redaction() {
        let key = WorkloadKey {
            org: "default".into(),
            project: "shop".into(),
            component: "web".into(),
            env: "development".into(),
        };
        assert_eq!(key.network_name(), "berth-default-shop-development");
        assert_eq!(key.container_prefix(), "berth-default-shop-web-development");
        let auth = PullAuth {
            username: "u".into(),
            password: "hunter2".into(),
            server: "r".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
