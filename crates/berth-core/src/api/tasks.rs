//! Wire models of scheduled and manual tasks: schedules, runs and executions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happens when a slot comes while an earlier execution still runs (scheduled runs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyPolicy {
    /// Start another execution next to the running one.
    Allow,
    /// Skip the slot (recorded as `missed` with the reason).
    Forbid,
    /// Cancel the running execution(s), then start the new one.
    Replace,
    /// A policy this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Forbid => "forbid",
            Self::Replace => "replace",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Self::Allow,
            "forbid" => Self::Forbid,
            "replace" => Self::Replace,
            _ => Self::Unknown,
        }
    }
}

/// Status of a task execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutionStatus {
    Running,
    /// Exited with code 0.
    Succeeded,
    /// Exited with another code, or could not run (the reason says why).
    Failed,
    /// Killed when its active deadline passed.
    TimedOut,
    /// Cancelled by a user or replaced (concurrency policy `replace`).
    Cancelled,
    /// A slot that did not run: past its starting deadline, skipped by `forbid`, or nothing
    /// deployed.
    Missed,
    #[serde(other)]
    Unknown,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 6] = [
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed-out",
            Self::Cancelled => "cancelled",
            Self::Missed => "missed",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .unwrap_or(Self::Unknown)
    }

    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Running)
    }

    /// Counts against the successful history limit (the others against the failed one).
    pub fn is_success(self) -> bool {
        matches!(self, Self::Succeeded)
    }
}

/// What started an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutionTrigger {
    /// The schedule of the environment.
    Schedule,
    /// A person: Run Now / Run with Arguments (console, CLI).
    Manual,
    /// A program through the API.
    Api,
    /// A CI pipeline.
    Ci,
    #[serde(other)]
    Unknown,
}

impl ExecutionTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
            Self::Api => "api",
            Self::Ci => "ci",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "schedule" => Self::Schedule,
            "manual" => Self::Manual,
            "api" => Self::Api,
            "ci" => Self::Ci,
            _ => Self::Unknown,
        }
    }
}

/// The schedule of a scheduled task in one environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSchedule {
    pub org: String,
    pub project: String,
    pub component: String,
    pub environment: String,
    /// 5-field cron expression or alias (`@hourly`, `@daily`, …).
    pub schedule: String,
    /// IANA time zone the expression is read in.
    pub time_zone: String,
    pub concurrency_policy: ConcurrencyPolicy,
    /// A slot may start at most this late (after a downtime); `null` = no limit.
    pub starting_deadline_seconds: Option<i64>,
    /// An execution is killed after this long (`timed-out`); `null` = no limit.
    pub active_deadline_seconds: Option<i64>,
    pub suspended: bool,
    /// Finished successful executions kept.
    pub successful_history_limit: i64,
    /// Finished unsuccessful executions (failed, timed-out, cancelled, missed) kept.
    pub failed_history_limit: i64,
    /// The next slot, RFC 3339 with the zone's offset; `null` while suspended.
    pub next_fire_at: Option<String>,
    /// The next few fire times (RFC 3339 with the zone's offset).
    pub upcoming: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Sets (replaces) the schedule of an environment. Absent fields take their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutSchedule {
    /// 5-field cron expression or alias.
    pub schedule: String,
    /// IANA time zone (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Default `forbid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Seconds ≥ 1; absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// Seconds ≥ 1; absent = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    /// 0–1000, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_history_limit: Option<i64>,
    /// 0–1000, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_history_limit: Option<i64>,
}

/// One environment variable for one run; its value is used for that run only and never stored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvOverride {
    pub name: String,
    #[schema(value_type = String)]
    pub value: crate::Secret,
}

/// Run Now / Run with Arguments.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// Environment (default: the first).
    #[serde(default)]
    pub env: Option<String>,
    /// Appended after the image's ENTRYPOINT and CMD, one argv entry each.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables for this run, over the environment's configs.
    #[serde(default)]
    pub env_overrides: Vec<EnvOverride>,
    /// `manual` (a person), `api` (default) or `ci`.
    #[serde(default)]
    pub trigger: Option<ExecutionTrigger>,
}

/// One run of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    pub org: String,
    pub project: String,
    pub component: String,
    pub environment: String,
    /// The release it ran (`null` when nothing was deployed).
    pub release: Option<String>,
    /// Pinned image `repository@digest`.
    pub image: Option<String>,
    pub digest: Option<String>,
    pub trigger: ExecutionTrigger,
    /// `user/token`, or `scheduler`.
    pub actor: String,
    /// Arguments appended after ENTRYPOINT and CMD.
    pub args: Vec<String>,
    /// Names of the environment overrides (values are never shown).
    pub env_overrides: Vec<String>,
    /// The scheduled time it belongs to (scheduled runs), RFC 3339 UTC.
    pub slot: Option<String>,
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// `endedAt - startedAt` in milliseconds.
    pub duration_ms: Option<i64>,
}

/// How many executions ended (or run) per status since `since`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionCounts {
    /// Start of the window (30 days back), RFC 3339 UTC.
    pub since: String,
    pub total: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub timed_out: i64,
    pub cancelled: i64,
    pub missed: i64,
}

/// Executions, newest first, with the counts of the last 30 days.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionList {
    pub items: Vec<Execution>,
    pub counts: ExecutionCounts,
    /// Where the next page starts (the `cursor` query parameter); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The output of an execution (stdout and stderr interleaved), at most 10 MB (the newest).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionLogs {
    pub id: String,
    pub status: ExecutionStatus,
    /// True when read from the still-running container (it grows).
    pub live: bool,
    pub logs: String,
}
