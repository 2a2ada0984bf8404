//! Wire models of the HTTP API (`/api/v1`), shared by the server (which encodes them and
//! generates the OpenAPI document from them) and the CLI (which decodes them).
//!
//! JSON field names are camelCase. Request bodies reject unknown fields so a typo is a 422
//! naming the field, not a silently ignored setting.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Role;

mod render;
mod tasks;
pub use render::*;
pub use tasks::*;

/// The error envelope of every non-2xx answer: `{"error":{"code","message","field"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`.
    pub code: String,
    /// Human-readable explanation of what was wrong and what was expected.
    pub message: String,
    /// The offending input field (JSON path like `endpoints[3].port`), when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id (also in the `x-request-id` response header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every problem, when there are several (e.g. all errors of an endpoints file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetail>>,
}

/// One of several problems of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Where, e.g. `endpoints[3].port`; empty for the whole input.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// `/readyz`: whether the store and the data plane answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not-ready`.
    pub status: String,
    pub store: Probe,
    pub engine: Probe,
    /// `leader` when this server runs the reconciler, the deploy runners and the scheduler
    /// (always so with SQLite), `follower` while another server on the same PostgreSQL
    /// database does. Both serve the API and the gateway.
    #[serde(default)]
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Probe {
    pub ok: bool,
    /// What was checked and, when not ok, why.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrg {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Partial update: absent fields stay as they are. Names are immutable.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub name: String,
    pub display_name: String,
    /// 0-based place in the promotion order; deploys land in position 0.
    pub position: i64,
}

/// A new environment of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// 0-based place in the promotion order; the environments from there on move one down.
    /// Default: last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
}

/// The new promotion order: every environment of the organization, each once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentOrder {
    pub order: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub org: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Partial update: absent fields stay as they are. Names are immutable.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub role: Role,
}

/// An API token as listed: never the secret, only its recognizable prefix.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: String,
    pub user: String,
    pub name: String,
    /// The first characters of the token, enough to recognise it.
    pub prefix: String,
    pub role: Role,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiToken {
    /// The user the token acts as.
    pub user: String,
    /// A label for the token, unique per user (e.g. `laptop`, `ci`).
    pub name: String,
    /// Days until the token expires (1–3650); absent = never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// The answer to a token creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The bearer token. Shown once; berth keeps only its SHA-256 hash.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub user: String,
    pub role: Role,
    pub token: String,
}

/// One row of the audit log: who did what, when, with which result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// `user/token-name`, or `anonymous` when authentication failed.
    pub actor: String,
    pub method: String,
    pub path: String,
    /// HTTP status of the answer.
    pub status: i64,
    pub request_id: String,
    pub source: String,
}

/// A list, or one page of a list that grows without bound.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Where the next page starts: pass it back as the `cursor` query parameter (an opaque
    /// string, valid for the same list only). Absent on the last page.
    #[serde(
        default,
        rename = "nextCursor",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A whole list (no further page).
    pub fn new(items: Vec<T>) -> Self {
        List {
            items,
            next_cursor: None,
        }
    }
}

/// How berth authenticates to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryAuthType {
    /// No credentials (public images).
    Anonymous,
    /// Username + password or access token.
    Basic,
    /// A Docker config JSON with exactly one `auths` entry (inline credentials only).
    DockerConfig,
    /// Vendor-managed access: the data plane already can pull (e.g. cloud IAM); berth sends no
    /// credentials.
    Implicit,
}

impl RegistryAuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryAuthType::Anonymous => "anonymous",
            RegistryAuthType::Basic => "basic",
            RegistryAuthType::DockerConfig => "docker-config",
            RegistryAuthType::Implicit => "implicit",
        }
    }
}

impl std::str::FromStr for RegistryAuthType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "anonymous" => Ok(Self::Anonymous),
            "basic" => Ok(Self::Basic),
            "docker-config" => Ok(Self::DockerConfig),
            "implicit" => Ok(Self::Implicit),
            other => Err(format!(
                "unknown auth type {other:?}; expected one of anonymous, basic, docker-config, implicit"
            )),
        }
    }
}

/// A registered container registry. Credentials are write-only: only whether one is set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub org: String,
    pub name: String,
    pub display_name: String,
    /// Canonical host[:port]; Docker Hub's aliases are stored as `docker.io`.
    pub host: String,
    pub auth_type: RegistryAuthType,
    pub username: Option<String>,
    /// Whether a password/token is stored (it is never returned).
    pub password_set: bool,
    /// Extra trusted CA certificate(s), PEM (public data).
    pub ca_certificate: Option<String>,
    /// Plain HTTP allowed for a non-loopback host.
    pub insecure: bool,
    /// Platform deployments need, e.g. `linux/amd64`.
    pub platform: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Registers a registry. `host` may be omitted for `docker-config` (taken from its entry).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRegistry {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    pub auth_type: RegistryAuthType,
    #[serde(default)]
    pub username: Option<String>,
    /// Password or access token (`basic`). Write-only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<crate::Secret>,
    /// Docker config JSON text (`docker-config`). Write-only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub docker_config: Option<crate::Secret>,
    #[serde(default)]
    pub ca_certificate: Option<String>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub platform: Option<String>,
}

/// Changes a registry; absent fields keep their value. `caCertificate: ""` removes the CA.
/// Changing `authType` needs the new type's credentials in the same request.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRegistry {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub auth_type: Option<RegistryAuthType>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<crate::Secret>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub docker_config: Option<crate::Secret>,
    #[serde(default)]
    pub ca_certificate: Option<String>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRegistry {
    /// Also resolve this image: `repo:tag`, `repo@digest`, or a full reference on this host.
    #[serde(default)]
    pub image: Option<String>,
}

/// The result of a connection test: each step in order; the first failure ends it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryTestReport {
    pub ok: bool,
    pub steps: Vec<RegistryTestStep>,
    /// The digest `image` resolved to.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryTestStep {
    /// `dns`, `connect`, `tls`, `auth`, `manifest`.
    pub step: String,
    pub ok: bool,
    pub detail: String,
}

/// Tags of a repository.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tags {
    pub repository: String,
    pub tags: Vec<String>,
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    Service,
    WebApp,
    ScheduledTask,
    ManualTask,
}

impl ComponentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentType::Service => "service",
            ComponentType::WebApp => "web-app",
            ComponentType::ScheduledTask => "scheduled-task",
            ComponentType::ManualTask => "manual-task",
        }
    }

    /// Services and web apps serve; tasks run to completion.
    pub fn is_task(self) -> bool {
        matches!(
            self,
            ComponentType::ScheduledTask | ComponentType::ManualTask
        )
    }
}

impl std::str::FromStr for ComponentType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "service" => Ok(Self::Service),
            "web-app" => Ok(Self::WebApp),
            "scheduled-task" => Ok(Self::ScheduledTask),
            "manual-task" => Ok(Self::ManualTask),
            other => Err(format!(
                "unknown component type {other:?}; expected one of service, web-app, scheduled-task, manual-task"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub org: String,
    pub project: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: ComponentType,
    /// The registry the image comes from.
    pub registry: String,
    /// Image URL, normalized (`docker.io/library/` applied), with its tag.
    pub image: String,
    /// Container port the service listens on.
    pub port: Option<u16>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateComponent {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: ComponentType,
    /// Name of a registry of the organization serving the image's host.
    pub registry: String,
    /// Full image URL `host/repo/name:tag`.
    pub image: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// Skip resolving the tag at creation (`--no-verify`).
    #[serde(default)]
    pub no_verify: bool,
}

/// Partial update; the name is immutable and the image changes only by deploying.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateComponent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Deploy to the first environment. At most one of `tag`, `image`, `previous`; none =
/// re-resolve the current tag (a no-op when the digest is unchanged, unless `force`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    /// Update Image Tag: same repository, another tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Update Image URL: any repository on a registered registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Previous Images: a digest (`sha256:…`) or a release id deployed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    pub from: String,
    pub to: String,
}

/// Status of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    Pending,
    Pulling,
    Starting,
    Ready,
    Failed,
    RolledBack,
    Superseded,
    #[serde(other)]
    Unknown,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Pulling => "pulling",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::Superseded => "superseded",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the deployment has finished (successfully or not).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Ready | Self::Failed | Self::RolledBack | Self::Superseded
        )
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "pulling" => Self::Pulling,
            "starting" => Self::Starting,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            "rolled-back" => Self::RolledBack,
            "superseded" => Self::Superseded,
            _ => Self::Unknown,
        }
    }
}

/// Where an unfinished rollout is, finer than its status: the console shows it as progress, and
/// the fault tests kill the server in each one. `null` before the rollout starts and once the
/// deployment has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentPhase {
    /// The engine pulls the image.
    Pulling,
    /// The new instances start and are probed until ready.
    Starting,
    /// The new instances are ready; the gateway switches traffic to them.
    Switching,
    /// Traffic goes to the new instances; the old ones finish in-flight requests, then stop.
    Draining,
    #[serde(other)]
    Unknown,
}

impl DeploymentPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pulling => "pulling",
            Self::Starting => "starting",
            Self::Switching => "switching",
            Self::Draining => "draining",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "pulling" => Self::Pulling,
            "starting" => Self::Starting,
            "switching" => Self::Switching,
            "draining" => Self::Draining,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub org: String,
    pub project: String,
    pub component: String,
    pub environment: String,
    pub release: String,
    /// Pinned image: `repository@digest`.
    pub image: String,
    pub tag: Option<String>,
    pub digest: String,
    pub status: DeploymentStatus,
    /// The rollout's phase while it runs (see [`DeploymentPhase`]); absent when finished.
    #[serde(default)]
    pub phase: Option<DeploymentPhase>,
    pub reason: Option<String>,
    /// `user`, `ci`, `auto`, `promote`.
    pub trigger: String,
    pub actor: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to a deploy or promote request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployAccepted {
    pub deployment_id: String,
    pub environment: String,
    pub image: String,
    pub digest: String,
    /// False when nothing changed (same digest already deployed): `deploymentId` is the
    /// existing deployment.
    pub created: bool,
    pub status_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEvent {
    pub id: i64,
    pub at: String,
    pub message: String,
}

/// One image a component ran: for Previous Images.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousImage {
    pub digest: String,
    pub image: String,
    pub tag: Option<String>,
    /// The newest release with this digest (deploy it with `previous`).
    pub release: String,
    pub first_deployed_at: String,
    pub last_deployed_at: String,
    pub trigger: String,
    pub actor: String,
}

/// What runs in one environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentState {
    pub environment: String,
    /// The newest deployment there (any status).
    pub latest: Option<Deployment>,
    /// The deployment serving traffic (newest `ready`).
    pub current: Option<Deployment>,
    /// `http://…` where the component answers through the gateway, when it serves.
    pub url: Option<String>,
}

/// What a config entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigKind {
    /// Environment variable.
    Env,
    /// Environment variable whose value is write-only and encrypted at rest.
    SecretEnv,
    /// File mounted read-only at `name` (an absolute path).
    File,
    /// File mounted read-only from a 0600 directory; content write-only, encrypted at rest.
    SecretFile,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::Env => "env",
            ConfigKind::SecretEnv => "secret-env",
            ConfigKind::File => "file",
            ConfigKind::SecretFile => "secret-file",
        }
    }
    pub fn is_secret(self) -> bool {
        matches!(self, ConfigKind::SecretEnv | ConfigKind::SecretFile)
    }
    pub fn is_file(self) -> bool {
        matches!(self, ConfigKind::File | ConfigKind::SecretFile)
    }
}

impl std::str::FromStr for ConfigKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "env" => Ok(Self::Env),
            "secret-env" => Ok(Self::SecretEnv),
            "file" => Ok(Self::File),
            "secret-file" => Ok(Self::SecretFile),
            other => Err(format!(
                "unknown config kind {other:?}; expected env, secret-env, file or secret-file"
            )),
        }
    }
}

/// A config entry as listed: secret values are never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEntry {
    pub kind: ConfigKind,
    /// Variable name or mount path.
    pub name: String,
    /// The value (plain kinds only); `null` for secrets.
    pub value: Option<String>,
    pub updated_at: String,
}

/// One entry to set.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSet {
    pub kind: ConfigKind,
    pub name: String,
    #[schema(value_type = String)]
    pub value: crate::Secret,
}

/// One entry to remove (by class: `env` names or `file` paths).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigUnset {
    /// `env` (either env kind) or `file` (either file kind).
    pub class: String,
    pub name: String,
}

/// Changes a component's configs in one environment, all or nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigChange {
    #[serde(default)]
    pub set: Vec<ConfigSet>,
    #[serde(default)]
    pub unset: Vec<ConfigUnset>,
    /// Roll the running release out again with the new configs (default true).
    #[serde(default = "yes")]
    pub apply: bool,
}

fn yes() -> bool {
    true
}

/// The answer to a config change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    pub items: Vec<ConfigEntry>,
    /// The deployment that applies them, when one was started.
    pub deployment: Option<DeployAccepted>,
}

/// Uploads a component's endpoints file (`endpoints.yaml`, `component.yaml` or
/// `component-config.yaml`). It is validated with Choreo's rules and becomes part of the next
/// release.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutEndpoints {
    pub file_name: String,
    pub content: String,
}

/// An endpoint with its URL per environment (`null` where it has no route there).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    #[serde(flatten)]
    pub endpoint: crate::endpoints::Endpoint,
    pub urls: std::collections::BTreeMap<String, Option<String>>,
}

/// A component's endpoints file, its endpoints and warnings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsState {
    pub file_name: Option<String>,
    pub content: Option<String>,
    pub endpoints: Vec<EndpointView>,
    pub warnings: Vec<crate::endpoints::Issue>,
    pub schemas: Vec<String>,
}

/// A CI token as listed: never the secret, only its recognizable prefix. Bound to one
/// component: it reaches only that component's deploy webhook and the status of its deployments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiToken {
    pub id: String,
    pub org: String,
    pub project: String,
    pub component: String,
    /// Unique per component (e.g. `github`, `gitlab`).
    pub name: String,
    /// The first characters of the token (`berth_ci_` + 8), enough to recognise it.
    pub prefix: String,
    pub created_at: String,
    /// `user/token` of who created it.
    pub created_by: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCiToken {
    /// A label, unique per component.
    pub name: String,
    /// Days until the token expires (1–3650); absent = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The answer to a CI token creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCiToken {
    #[serde(flatten)]
    pub token: CiToken,
    /// The bearer token (`berth_ci_…`). Shown once; berth keeps only its SHA-256 hash.
    pub secret: String,
}

/// The body of the deploy webhook (`POST /api/v1/hooks/deploy`): exactly one of `image`,
/// `tag` and `digest`, all in the component's repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiDeployRequest {
    /// A full reference in the component's repository: `host/repo:tag`, `host/repo@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A tag of the component's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A manifest digest (`sha256:…`) in the component's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Retries with the same key (same token, within 24 hours) get the first answer again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A ready-to-paste CI snippet.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiSnippet {
    pub kind: crate::ci::SnippetKind,
    /// Where the snippet posts: the server's deploy webhook.
    pub webhook_url: String,
    pub text: String,
}
