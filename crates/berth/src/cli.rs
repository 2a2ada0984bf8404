//! Command-line definition (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Deploy prebuilt container images as managed components",
    propagate_version = true
)]
pub struct Cli {
    /// berth server URL.
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        default_value = "http://127.0.0.1:7400"
    )]
    pub server: String,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Organization.
    #[arg(long, global = true, env = "BERTH_ORG", default_value = "default")]
    pub org: String,

    /// Data dir of a local `berth serve`, used to find its admin token when no other token is
    /// configured.
    #[arg(long, global = true, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the berth server (API, console, reconciler, gateway).
    Serve(ServeArgs),
    /// Save a server URL and token (read from stdin) for later commands.
    Login {
        /// Read the token from standard input (otherwise from BERTH_TOKEN).
        #[arg(long)]
        token_stdin: bool,
    },
    /// Forget the saved token for the server.
    Logout,
    /// Show who the current token acts as.
    Whoami,
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Projects of an organization.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Environments of an organization, in promotion order.
    #[command(subcommand, name = "env")]
    Env(EnvCmd),
    /// Users (admin).
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The audit log (admin).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Container registries of an organization.
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Components of a project.
    #[command(subcommand)]
    Component(ComponentCmd),
    /// Deploy a component to the first environment (Update Image Tag / Image URL / Previous Images).
    Deploy(DeployArgs),
    /// Deploy the release running in one environment to another.
    Promote {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Wait for the outcome, printing events; exit 1 when it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Deployments of a component.
    #[command(subcommand)]
    Deployment(DeploymentCmd),
    /// Endpoints of a component (Choreo-compatible endpoints.yaml / component.yaml).
    #[command(subcommand)]
    Endpoints(EndpointsCmd),
    /// Configs and secrets of a component per environment.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// External CI: component-bound tokens and ready-made deploy snippets.
    #[command(subcommand)]
    Ci(CiCmd),
    /// Auto-deploy: deploy new tags of a component's repository as they appear.
    #[command(subcommand)]
    AutoDeploy(AutoDeployCmd),
    /// Recent logs of a component's running instance.
    Logs {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 100)]
        tail: u64,
    },
    /// Scheduled and manual tasks: schedules, runs, executions and their logs.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Kubernetes manifests of a project's environment, exactly as the Kubernetes data plane
    /// applies them (from the server's desired state; nothing is applied). Secret values read
    /// `<redacted>` unless --reveal-secrets. `-o yaml` (or table): YAML documents; `-o json`:
    /// the API's answer.
    Render {
        #[arg(long)]
        project: String,
        #[arg(long)]
        env: String,
        /// Only this component's objects (and the namespace's).
        #[arg(long)]
        component: Option<String>,
        /// Print Secret values (base64) instead of `<redacted>` (admin only).
        #[arg(long)]
        reveal_secrets: bool,
    },
    /// Cron expressions (offline).
    #[command(subcommand)]
    Cron(CronCmd),
    /// Image references (offline).
    #[command(subcommand)]
    Image(ImageCmd),
    /// Validate configuration files (offline).
    #[command(subcommand)]
    Validate(ValidateCmd),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where berth keeps its database, master key and admin token.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,
    /// Address of the API and console.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Container engine endpoint (unix:///path or tcp://host:port); default: DOCKER_HOST, then
    /// /var/run/docker.sock, then /run/podman/podman.sock.
    #[arg(long, env = "BERTH_ENGINE")]
    pub engine: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Refuse registries on private addresses (10/8, 172.16/12, 192.168/16, fc00::/7, …)
    /// after DNS resolution. Link-local and cloud metadata addresses are always refused.
    #[arg(long, env = "BERTH_REGISTRY_BLOCK_PRIVATE")]
    pub registry_block_private: bool,
    /// Refuse registries on loopback addresses (127/8, ::1).
    #[arg(long, env = "BERTH_REGISTRY_BLOCK_LOOPBACK")]
    pub registry_block_loopback: bool,
    /// Address of the external gateway (Public endpoints and web apps).
    #[arg(long, env = "BERTH_GATEWAY_LISTEN", default_value = "127.0.0.1:7480")]
    pub gateway_listen: SocketAddr,
    /// Address of the internal gateway (Organization endpoints). It answers only connections
    /// from the organization's container networks, which reach it as host.containers.internal.
    #[arg(
        long,
        env = "BERTH_INTERNAL_GATEWAY_LISTEN",
        default_value = "0.0.0.0:7481"
    )]
    pub internal_gateway_listen: SocketAddr,
    /// Deploy-webhook calls each CI token may make per minute (429 with Retry-After beyond).
    #[arg(long, env = "BERTH_CI_RATE_PER_MINUTE", default_value_t = 30)]
    pub ci_rate_per_minute: u32,
    /// Threads of the external gateway, each serving its connections on its own event loop
    /// (like nginx's worker processes); 0 = one per CPU.
    #[arg(long, env = "BERTH_GATEWAY_WORKERS", default_value_t = 0)]
    pub gateway_workers: usize,
    /// Seconds a new release may take to get ready before it is rolled back.
    #[arg(long, env = "BERTH_READY_TIMEOUT", default_value_t = 120)]
    pub ready_timeout: u64,
    /// Milliseconds old instances keep serving in-flight requests after traffic switched.
    #[arg(long, env = "BERTH_DRAIN_MS", default_value_t = 10_000)]
    pub drain_ms: u64,
    /// Fault injection for tests only: every rollout pauses MS milliseconds when it enters
    /// PHASE (pulling, starting, switching or draining), e.g. `switching:30000`.
    #[arg(long, env = "BERTH_FAULT_HOLD", hide = true, value_name = "PHASE:MS", value_parser = parse_fault_hold)]
    pub fault_hold: Option<FaultHold>,
    /// Base URL clients and CI reach the API at, e.g. https://berth.example.com (status URLs,
    /// CI snippets); default: http://<listen address>.
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Keep the state in this PostgreSQL database instead of <data dir>/berth.db, e.g.
    /// postgres://berth:PASSWORD@db.example.com/berth?sslmode=require. Several servers may
    /// share one database: all serve the API and the gateway, one at a time runs the
    /// reconciler and the scheduler. The master key stays in the data dir and must be the same
    /// on every server (docs/postgres.md).
    #[arg(long, env = "BERTH_DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<berth_core::Secret>,
    /// Where workloads run: the container engine, or a Kubernetes cluster (KUBECONFIG,
    /// ~/.kube/config or the in-cluster service account).
    #[arg(long, env = "BERTH_DATA_PLANE", value_enum, default_value_t = DataPlaneArg::Engine)]
    pub data_plane: DataPlaneArg,
    /// Kubernetes: the Gateway of Public endpoints and web apps, NAMESPACE/NAME.
    #[arg(
        long,
        env = "BERTH_K8S_EXTERNAL_GATEWAY",
        default_value = "berth-system/berth-external"
    )]
    pub k8s_external_gateway: String,
    /// Kubernetes: the Gateway of Organization endpoints, NAMESPACE/NAME.
    #[arg(
        long,
        env = "BERTH_K8S_INTERNAL_GATEWAY",
        default_value = "berth-system/berth-internal"
    )]
    pub k8s_internal_gateway: String,
    /// Kubernetes: route with Ingresses of these classes, EXTERNAL,INTERNAL, instead of
    /// Gateway API HTTPRoutes.
    #[arg(long, env = "BERTH_K8S_INGRESS_CLASSES")]
    pub k8s_ingress_classes: Option<String>,
    /// Kubernetes: web apps answer at <component>-<project>-<env>.<org>.<DOMAIN>.
    #[arg(long, env = "BERTH_K8S_DOMAIN", default_value = "localhost")]
    pub k8s_domain: String,
    /// Kubernetes: autoscale services and web apps between MIN and MAX replicas (`MIN-MAX`,
    /// e.g. 2-10); default: one replica, no HorizontalPodAutoscaler.
    #[arg(long, env = "BERTH_K8S_REPLICAS")]
    pub k8s_replicas: Option<String>,
    /// Kubernetes: the autoscaler's CPU target, percent of the request.
    #[arg(long, env = "BERTH_K8S_CPU_TARGET", default_value_t = 80)]
    pub k8s_cpu_target: u8,
    /// Kubernetes: the autoscaler's memory target, percent of the request (none by default).
    #[arg(long, env = "BERTH_K8S_MEMORY_TARGET")]
    pub k8s_memory_target: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataPlaneArg {
    Engine,
    Kubernetes,
}

/// A rollout phase and how long rollouts pause in it (`--fault-hold`).
#[derive(Debug, Clone, Copy)]
pub struct FaultHold(
    pub berth_core::api::DeploymentPhase,
    pub std::time::Duration,
);

fn parse_fault_hold(s: &str) -> Result<FaultHold, String> {
    use berth_core::api::DeploymentPhase;
    let (phase, ms) = s
        .split_once(':')
        .ok_or("expected PHASE:MS, e.g. switching:30000")?;
    let phase = match DeploymentPhase::parse(phase) {
        DeploymentPhase::Unknown => {
            return Err(format!(
                "unknown phase {phase:?} (pulling, starting, switching, draining)"
            ));
        }
        known => known,
    };
    let ms: u64 = ms
        .parse()
        .map_err(|_| format!("{ms:?} is not a number of milliseconds"))?;
    Ok(FaultHold(phase, std::time::Duration::from_millis(ms)))
}

fn parse_secret(s: &str) -> Result<berth_core::Secret, String> {
    Ok(berth_core::Secret::new(s))
}

#[derive(Debug, Args)]
pub struct Describe {
    /// Human-friendly name (default: the name).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Update {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Update {
        name: String,
        #[command(flatten)]
        describe: Describe,
    },
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    List,
    /// Add an environment to the promotion order (admin).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// 0-based place in the order (0 = where deploys land); default: last.
        #[arg(long)]
        position: Option<i64>,
    },
    /// Delete an environment no deployment or config uses (admin).
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Set the promotion order: every environment, first one first (admin).
    Reorder {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    List,
    Get {
        name: String,
    },
    Create {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    Delete {
        name: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Your tokens (admins: all, or --user's).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Create a token; the secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// The user the token acts as (default: you).
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// The audit log, newest first.
    List {
        /// At most this many rows.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthType {
    Anonymous,
    Basic,
    DockerConfig,
    Implicit,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Anonymous => "anonymous",
            AuthType::Basic => "basic",
            AuthType::DockerConfig => "docker-config",
            AuthType::Implicit => "implicit",
        }
    }
}

#[derive(Debug, Args)]
pub struct RegistrySettingsArgs {
    /// Registry host[:port], e.g. ghcr.io or 127.0.0.1:5000 (no scheme, no path).
    #[arg(long)]
    pub host: Option<String>,
    /// How berth authenticates: anonymous, basic, docker-config or implicit.
    #[arg(long = "auth", value_enum)]
    pub auth: Option<AuthType>,
    /// Username (basic).
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password or access token from standard input (basic).
    #[arg(long)]
    pub password_stdin: bool,
    /// Docker config JSON file with one `auths` entry (docker-config); `-` reads stdin.
    #[arg(long)]
    pub docker_config: Option<PathBuf>,
    /// PEM file with the CA certificate(s) the registry's TLS certificate chains to.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Allow plain HTTP for a non-loopback host.
    #[arg(long)]
    pub insecure: bool,
    /// Platform deployments need (default linux/amd64).
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Register a registry.
    Add {
        name: String,
        #[command(flatten)]
        settings: RegistrySettingsArgs,
    },
    List,
    Get {
        name: String,
    },
    /// Change a registry (credentials are replaced, never shown).
    Update {
        name: String,
        #[command(flatten)]
        settings: RegistrySettingsArgs,
        /// Remove the CA certificate.
        #[arg(long, conflicts_with = "ca_file")]
        clear_ca: bool,
    },
    Delete {
        name: String,
        #[arg(long)]
        yes: bool,
    },
    /// Check DNS, connection, TLS, credentials and optionally resolve an image; exit 1 on failure.
    Test {
        name: String,
        /// Also resolve this image (repo:tag, repo@digest, or host/repo:tag).
        #[arg(long)]
        image: Option<String>,
    },
    /// List the tags of a repository.
    Tags {
        name: String,
        #[arg(long)]
        repository: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Parse and normalize an image reference like Docker does; exit 1 when invalid.
    Parse { reference: String },
}

#[derive(Debug, Subcommand)]
pub enum ValidateCmd {
    /// Check a Docker config JSON for use as registry credentials (never prints the password).
    DockerConfig {
        /// The file; `-` reads stdin.
        file: PathBuf,
    },
    /// Check a Choreo `.choreo/endpoints.yaml` by Choreo's rules, listing every problem; exit 1
    /// when invalid.
    Endpoints {
        /// The file; `-` reads stdin.
        file: PathBuf,
        /// Directory whose files count as the uploaded schema files `schemaFilePath` may name
        /// (searched recursively). Default: the file's directory, or the build context (the
        /// parent) when that is `.choreo`, as Choreo resolves the paths.
        #[arg(long, value_name = "DIR")]
        schema_dir: Option<PathBuf>,
    },
    /// Check a Choreo `.choreo/component.yaml` (or the older `component-config.yaml`, told
    /// apart by name or content) by Choreo's rules, listing every problem; exit 1 when invalid.
    Component {
        /// The file; `-` reads stdin.
        file: PathBuf,
        /// Directory whose files count as the uploaded schema files `schemaFilePath` may name
        /// (searched recursively). Default: the file's directory, or the build context (the
        /// parent) when that is `.choreo`, as Choreo resolves the paths.
        #[arg(long, value_name = "DIR")]
        schema_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ComponentKind {
    Service,
    WebApp,
    ScheduledTask,
    ManualTask,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Service => "service",
            ComponentKind::WebApp => "web-app",
            ComponentKind::ScheduledTask => "scheduled-task",
            ComponentKind::ManualTask => "manual-task",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ComponentCmd {
    /// Create a component from a full image URL (the tag must resolve unless --no-verify).
    Create {
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long = "type", value_enum)]
        kind: ComponentKind,
        #[arg(long)]
        registry: String,
        /// Full image URL, e.g. ghcr.io/acme/web:v1.
        #[arg(long)]
        image: String,
        /// Container port the service listens on.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Do not resolve the tag now.
        #[arg(long)]
        no_verify: bool,
    },
    List {
        #[arg(long)]
        project: String,
    },
    Get {
        name: String,
        #[arg(long)]
        project: String,
    },
    Update {
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a component and stop it everywhere.
    Delete {
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        yes: bool,
    },
    /// Each image the component ran (for --previous).
    PreviousImages {
        name: String,
        #[arg(long)]
        project: String,
        /// At most this many, the most recently deployed first (default: all).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// What runs in each environment, with URLs.
    Status {
        name: String,
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub component: String,
    /// Update Image Tag.
    #[arg(long, conflicts_with_all = ["image", "previous"])]
    pub tag: Option<String>,
    /// Update Image URL (any repository on a registered registry).
    #[arg(long, conflicts_with = "previous")]
    pub image: Option<String>,
    /// Redeploy a previous image: a digest or a release id.
    #[arg(long)]
    pub previous: Option<String>,
    /// Deploy even when the digest did not change.
    #[arg(long)]
    pub force: bool,
    /// Wait for the outcome, printing events; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCmd {
    /// Deployments of a component, newest first.
    List {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        env: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    Get {
        id: String,
    },
    /// Events of a deployment; --follow until it finishes.
    Events {
        id: String,
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConfigTarget {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub component: String,
    /// Environment (e.g. development).
    #[arg(long)]
    pub env: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Configs of one environment (secret values are never shown).
    List {
        #[command(flatten)]
        target: ConfigTarget,
    },
    /// Set environment variables: KEY=VALUE ... (values of --secret ones are write-only).
    Set {
        #[command(flatten)]
        target: ConfigTarget,
        /// KEY=VALUE pairs; with --secret, KEY alone reads the value from stdin.
        #[arg(required = true)]
        pairs: Vec<String>,
        #[arg(long)]
        secret: bool,
        /// Store only; do not roll the running release out again.
        #[arg(long)]
        no_apply: bool,
    },
    /// Mount a file read-only at PATH with the content of FILE (`-` = stdin).
    SetFile {
        #[command(flatten)]
        target: ConfigTarget,
        #[arg(long)]
        path: String,
        #[arg(long)]
        from_file: PathBuf,
        #[arg(long)]
        secret: bool,
        #[arg(long)]
        no_apply: bool,
    },
    /// Remove variables (or, with --file, mounted files).
    Unset {
        #[command(flatten)]
        target: ConfigTarget,
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long)]
        file: bool,
        #[arg(long)]
        no_apply: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCmd {
    /// Upload the endpoints file (validated with Choreo's rules) and its schema files; they
    /// become part of the next deploy.
    Set {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
        /// endpoints.yaml, component.yaml or component-config.yaml.
        #[arg(long)]
        file: PathBuf,
        /// OpenAPI / GraphQL schema files named by `schemaFilePath` (repeatable).
        #[arg(long)]
        schema: Vec<PathBuf>,
    },
    /// Each endpoint with its URL per environment.
    List {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CiCmd {
    /// CI tokens of a component (good only for its deploy webhook).
    #[command(subcommand)]
    Token(CiTokenCmd),
    /// Print a ready-to-paste CI snippet that deploys through the webhook and waits.
    Snippet {
        #[command(flatten)]
        target: CiTarget,
        /// curl (a POSIX sh script), github-actions or gitlab-ci.
        #[arg(long, value_parser = ["curl", "github-actions", "gitlab-ci"])]
        kind: String,
    },
}

#[derive(Debug, Args)]
pub struct CiTarget {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub component: String,
}

#[derive(Debug, Subcommand)]
pub enum CiTokenCmd {
    /// Create a CI token; the secret is printed once (`-o json`: the `secret` field).
    Create {
        #[command(flatten)]
        target: CiTarget,
        /// Unique per component, e.g. github.
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// The component's CI tokens (never their secrets).
    List {
        #[command(flatten)]
        target: CiTarget,
    },
    /// Revoke a CI token by id or name.
    Revoke {
        #[command(flatten)]
        target: CiTarget,
        /// Token id or name.
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct TaskTarget {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub component: String,
    /// Environment (default: the first, e.g. development).
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Concurrency {
    /// Start another execution next to a running one.
    Allow,
    /// Skip the slot while one runs (recorded as missed).
    Forbid,
    /// Cancel the running one and start the new one.
    Replace,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Allow => "allow",
            Concurrency::Forbid => "forbid",
            Concurrency::Replace => "replace",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// The schedule of a scheduled task in one environment.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
    /// Run Now / Run with Arguments: start an execution of the deployed release.
    Run {
        #[command(flatten)]
        target: TaskTarget,
        /// Arguments appended after the image's ENTRYPOINT and CMD, split like a shell does
        /// (quotes group, no expansion): --args "a 'b c'" gives ["a", "b c"].
        #[arg(long, allow_hyphen_values = true)]
        args: Option<String>,
        /// One more argument, exactly as given (no splitting); repeatable, after --args.
        #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
        arg: Vec<String>,
        /// An environment variable for this run only: KEY=VALUE (repeatable; never stored).
        #[arg(long = "env-var", value_name = "KEY=VALUE")]
        env_var: Vec<String>,
        /// Wait for the end, print the logs and exit with the task's exit code.
        #[arg(long)]
        wait: bool,
    },
    /// Executions of a task, newest first, with the counts of the last 30 days.
    Executions {
        #[arg(long)]
        project: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        env: Option<String>,
        /// running, succeeded, failed, timed-out, cancelled or missed.
        #[arg(long)]
        status: Option<String>,
        /// schedule, manual, api or ci.
        #[arg(long)]
        trigger: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One execution.
    Get { id: String },
    /// The logs of an execution (live while it runs).
    Logs { id: String },
    /// Cancel a running execution (its container is killed).
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Set (replace) the schedule; unset options take their defaults.
    Set {
        #[command(flatten)]
        target: TaskTarget,
        /// 5-field cron expression or @hourly/@daily/@weekly/@monthly/@yearly.
        #[arg(long = "cron", value_name = "EXPR")]
        cron: String,
        /// IANA time zone (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// What a slot does while an execution still runs (default forbid).
        #[arg(long, value_enum)]
        concurrency: Option<Concurrency>,
        /// Seconds a slot may start late (after a downtime); default: no limit.
        #[arg(long, allow_negative_numbers = true)]
        starting_deadline: Option<i64>,
        /// Seconds an execution may run before it is killed; default: no limit.
        #[arg(long, allow_negative_numbers = true)]
        active_deadline: Option<i64>,
        /// Successful executions kept (default 10).
        #[arg(long, allow_negative_numbers = true)]
        successful_history: Option<i64>,
        /// Unsuccessful executions kept (default 10).
        #[arg(long, allow_negative_numbers = true)]
        failed_history: Option<i64>,
        /// Save it suspended.
        #[arg(long)]
        suspended: bool,
    },
    Get {
        #[command(flatten)]
        target: TaskTarget,
    },
    /// Stop firing (slots while suspended are not run later).
    Suspend {
        #[command(flatten)]
        target: TaskTarget,
    },
    /// Fire again, from the next slot on.
    Resume {
        #[command(flatten)]
        target: TaskTarget,
    },
    Delete {
        #[command(flatten)]
        target: TaskTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum CronCmd {
    /// The next fire times of a schedule, RFC 3339 with the zone's offset; exit 1 when invalid.
    Next {
        /// 5-field cron expression or alias (quote it).
        expr: String,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Start after this instant (RFC 3339; default now).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

#[derive(Debug, Args)]
pub struct AutoDeployTarget {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub component: String,
}

#[derive(Debug, Subcommand)]
pub enum AutoDeployCmd {
    /// Set (replace) the policy; the first check runs within seconds.
    Set {
        #[command(flatten)]
        target: AutoDeployTarget,
        /// digest (the tracked tag moved), semver (highest tag in --range) or regex (greatest
        /// tag matching --regex in --sort order).
        #[arg(long, value_parser = |s: &str| s.parse::<berth_core::auto_deploy::PolicyKind>())]
        policy: berth_core::auto_deploy::PolicyKind,
        /// digest: the tag to track (default: the component's tag).
        #[arg(long)]
        tag: Option<String>,
        /// semver: the range, e.g. ^1.2, ~1.4, ">=1.0, <2".
        #[arg(long)]
        range: Option<String>,
        /// regex: the pattern a whole tag must match, e.g. 'build-(\d+)'.
        #[arg(long)]
        regex: Option<String>,
        /// regex: alphabetical (default) or numeric, on the first capture group.
        #[arg(long, value_parser = |s: &str| s.parse::<berth_core::auto_deploy::SortOrder>())]
        sort: Option<berth_core::auto_deploy::SortOrder>,
        /// Seconds between registry checks (default 60, at least 30).
        #[arg(long)]
        interval: Option<u32>,
        /// Store the policy without polling (`auto-deploy check` still works).
        #[arg(long)]
        disabled: bool,
    },
    Get {
        #[command(flatten)]
        target: AutoDeployTarget,
    },
    /// Turn auto-deploy off (removes the policy).
    Disable {
        #[command(flatten)]
        target: AutoDeployTarget,
    },
    /// Run one check now and print what it decided (deploy, none or error).
    Check {
        #[command(flatten)]
        target: AutoDeployTarget,
    },
    /// Create (or replace) the secret a registry sends with its push notifications, and print
    /// it once with the URL to configure as the registry's notification endpoint (admins).
    NotificationSecret {
        #[arg(long)]
        registry: String,
    },
}
