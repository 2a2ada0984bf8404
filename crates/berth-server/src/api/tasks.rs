//! Scheduled and manual tasks: schedules per environment, Run Now / Run with Arguments,
//! executions with their logs, cancelling.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    Component, ComponentType, ConcurrencyPolicy, Execution, ExecutionList, ExecutionLogs,
    ExecutionStatus, ExecutionTrigger, PutSchedule, RunRequest, TaskSchedule,
};
use berth_core::cron::{DEFAULT_ZONE, Schedule, format_time};
use berth_core::role::Action;
use berth_core::task::{ENV_OVERRIDES_MAX, validate_args, validate_env_override};
use berth_dataplane::WorkloadKey;
use berth_store::{ComponentRef, ExecutionFilter, NewExecution, ScheduleSettings, StoredSchedule};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::AppState;
use crate::api::components::component_or_404;
use crate::api::page::{Limits, ListScope, as_pair};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::tasks::{self, DEFAULT_HISTORY};

/// Longest deadline accepted (a year).
const DEADLINE_MAX: i64 = 365 * 24 * 3600;
/// Largest history limit.
const HISTORY_MAX: i64 = 1000;
/// Fire times shown with a schedule.
const UPCOMING: usize = 5;

/// The component, which must be a task (a scheduled one when `scheduled`).
async fn task_component(
    state: &AppState,
    org: &str,
    project: &str,
    name: &str,
    scheduled: bool,
) -> ApiResult<Component> {
    let c = component_or_404(state, org, project, name).await?;
    let ok = if scheduled {
        c.kind == ComponentType::ScheduledTask
    } else {
        c.kind.is_task()
    };
    if ok {
        return Ok(c);
    }
    let what = if scheduled {
        "only scheduled-task components have schedules (manual tasks run on demand)"
    } else {
        "only scheduled-task and manual-task components run to completion"
    };
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("component {name:?} is a {}; {what}", c.kind.as_str()),
    ))
}

fn env_list(envs: &[berth_core::api::Environment]) -> String {
    envs.iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An environment named in the path: 404 when unknown.
async fn env_in_path(state: &AppState, org: &str, env: &str) -> ApiResult<()> {
    let envs = state.store().list_environments(org).await?;
    if envs.iter().any(|e| e.name == env) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "environment {env:?} not found; the organization has {}",
            env_list(&envs)
        )))
    }
}

/// An environment named in a body or query (`None` = the first): 422 when unknown.
async fn env_or_first(state: &AppState, org: &str, env: Option<&str>) -> ApiResult<String> {
    let envs = state.store().list_environments(org).await?;
    match env {
        Some(e) if envs.iter().any(|x| x.name == e) => Ok(e.to_owned()),
        Some(e) => Err(ApiError::validation(
            "env",
            format!(
                "environment {e:?} not found; the organization has {}",
                env_list(&envs)
            ),
        )),
        None => envs.first().map(|e| e.name.clone()).ok_or_else(|| {
            ApiError::validation("env", format!("organization {org:?} has no environments"))
        }),
    }
}

fn in_zone(t: DateTime<Utc>, zone: &str) -> String {
    match berth_core::cron::parse_zone(zone) {
        Ok(tz) => format_time(&t.with_timezone(&tz)),
        Err(_) => format_time(&t),
    }
}

fn schedule_view(s: &StoredSchedule, now: DateTime<Utc>) -> TaskSchedule {
    let settings = &s.settings;
    let upcoming = if settings.suspended {
        Vec::new()
    } else {
        Schedule::parse(&settings.expr, &settings.zone)
            .map(|p| p.upcoming(now, UPCOMING).iter().map(format_time).collect())
            .unwrap_or_default()
    };
    TaskSchedule {
        org: s.org.clone(),
        project: s.project.clone(),
        component: s.component.clone(),
        environment: s.environment.clone(),
        schedule: settings.expr.clone(),
        time_zone: settings.zone.clone(),
        concurrency_policy: settings.concurrency,
        starting_deadline_seconds: settings.starting_deadline_seconds,
        active_deadline_seconds: settings.active_deadline_seconds,
        suspended: settings.suspended,
        successful_history_limit: settings.successful_history_limit,
        failed_history_limit: settings.failed_history_limit,
        next_fire_at: if settings.suspended {
            None
        } else {
            s.next_fire_at.map(|t| in_zone(t, &settings.zone))
        },
        upcoming,
        created_at: s.created_at.clone(),
        updated_at: s.updated_at.clone(),
    }
}

fn deadline(field: &str, value: Option<i64>) -> ApiResult<Option<i64>> {
    match value {
        Some(n) if n < 1 => Err(ApiError::validation(
            field,
            format!("must be a whole number of seconds, at least 1 (got {n})"),
        )),
        Some(n) if n > DEADLINE_MAX => Err(ApiError::validation(
            field,
            format!("must be at most {DEADLINE_MAX} seconds (a year) (got {n})"),
        )),
        other => Ok(other),
    }
}

fn history(field: &str, value: Option<i64>, default: i64) -> ApiResult<i64> {
    match value {
        None => Ok(default),
        Some(n) if (0..=HISTORY_MAX).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::validation(
            field,
            format!("must be between 0 and {HISTORY_MAX} (got {n})"),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/schedule",
    tag = "tasks", responses((status = 200, body = TaskSchedule), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name, env)): Path<(String, String, String, String)>,
) -> ApiResult<Json<TaskSchedule>> {
    component_or_404(&state, &org, &project, &name).await?;
    env_in_path(&state, &org, &env).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    let s = state
        .store()
        .get_schedule(target, &env)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{name:?} has no schedule in {env}; set one with PUT (berth task schedule set)"
            ))
        })?;
    Ok(Json(schedule_view(&s, state.tasks().now())))
}

/// Sets (replaces) the schedule of a scheduled task in one environment. The next slot is
/// computed from now: slots missed while suspended do not run on resume.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/schedule",
    tag = "tasks", request_body = PutSchedule,
    responses((status = 200, body = TaskSchedule), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn put_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name, env)): Path<(String, String, String, String)>,
    Json(body): Json<PutSchedule>,
) -> ApiResult<Json<TaskSchedule>> {
    auth.require(Action::Write)?;
    task_component(&state, &org, &project, &name, true).await?;
    env_in_path(&state, &org, &env).await?;
    let zone = body.time_zone.as_deref().unwrap_or(DEFAULT_ZONE).trim();
    let parsed = Schedule::parse(&body.schedule, zone)?;
    let concurrency = match body.concurrency_policy {
        None => ConcurrencyPolicy::Forbid,
        Some(ConcurrencyPolicy::Unknown) => {
            return Err(ApiError::validation(
                "concurrencyPolicy",
                "must be allow, forbid or replace",
            ));
        }
        Some(p) => p,
    };
    let settings = ScheduleSettings {
        expr: parsed.expr().to_owned(),
        zone: parsed.zone().name().to_owned(),
        concurrency,
        starting_deadline_seconds: deadline(
            "startingDeadlineSeconds",
            body.starting_deadline_seconds,
        )?,
        active_deadline_seconds: deadline("activeDeadlineSeconds", body.active_deadline_seconds)?,
        suspended: body.suspended.unwrap_or(false),
        successful_history_limit: history(
            "successfulHistoryLimit",
            body.successful_history_limit,
            DEFAULT_HISTORY.0,
        )?,
        failed_history_limit: history(
            "failedHistoryLimit",
            body.failed_history_limit,
            DEFAULT_HISTORY.1,
        )?,
    };
    let now = state.tasks().now();
    let next = if settings.suspended {
        None
    } else {
        parsed.next_after(now).map(|t| t.with_timezone(&Utc))
    };
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    let s = state
        .store()
        .put_schedule(target, &env, &settings, next, now)
        .await?;
    state.tasks().wake();
    Ok(Json(schedule_view(&s, now)))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/schedule",
    tag = "tasks", responses((status = 204), (status = 404, body = berth_core::api::ApiError)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name, env)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Write)?;
    component_or_404(&state, &org, &project, &name).await?;
    env_in_path(&state, &org, &env).await?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    if state.store().delete_schedule(target, &env).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{name:?} has no schedule in {env}"
        )))
    }
}

/// Run Now / Run with Arguments: starts an execution of the release deployed to the
/// environment; `args` are appended after the image's ENTRYPOINT and CMD.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/runs",
    tag = "tasks", request_body = RunRequest,
    responses((status = 202, body = Execution), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn run(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Json(body): Json<RunRequest>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    auth.require(Action::Write)?;
    task_component(&state, &org, &project, &name, false).await?;
    let env = env_or_first(&state, &org, body.env.as_deref()).await?;
    validate_args("args", &body.args)?;
    if body.env_overrides.len() > ENV_OVERRIDES_MAX {
        return Err(ApiError::validation(
            "envOverrides",
            format!("at most {ENV_OVERRIDES_MAX} overrides per run"),
        ));
    }
    let mut overrides: Vec<(String, String)> = Vec::with_capacity(body.env_overrides.len());
    for (i, o) in body.env_overrides.iter().enumerate() {
        let field = format!("envOverrides[{i}]");
        validate_env_override(&field, &o.name, o.value.expose())?;
        if overrides.iter().any(|(n, _)| *n == o.name) {
            return Err(ApiError::validation(
                format!("{field}.name"),
                format!("{:?} is given twice", o.name),
            ));
        }
        overrides.push((o.name.clone(), o.value.expose().to_owned()));
    }
    let trigger = match body.trigger {
        None => ExecutionTrigger::Api,
        Some(t @ (ExecutionTrigger::Manual | ExecutionTrigger::Api | ExecutionTrigger::Ci)) => t,
        Some(_) => {
            return Err(ApiError::validation(
                "trigger",
                "must be manual, api or ci (schedule is the scheduler's)",
            ));
        }
    };
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    let work = tasks::current_release(&state, target, &env)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "nothing is deployed to {env}: deploy {name:?} first (berth deploy), then run it"
                ),
            )
        })?;
    let (component_id, environment_id) = state.store().component_env_id(target, &env).await?;
    // Runs of a scheduled task get the schedule's active deadline too.
    let active_deadline = state
        .store()
        .get_schedule(target, &env)
        .await?
        .and_then(|s| s.settings.active_deadline_seconds);
    let actor = auth.0.actor();
    let names: Vec<String> = overrides.iter().map(|(n, _)| n.clone()).collect();
    let d = &work.deployment;
    let record = state
        .store()
        .insert_execution(&NewExecution {
            component_id: &component_id,
            environment_id: &environment_id,
            deployment_id: Some(&d.id),
            release_id: Some(&d.release),
            image: Some(&d.image),
            digest: Some(&d.digest),
            trigger,
            actor: &actor,
            args: &body.args,
            env_names: &names,
            slot: None,
            status: ExecutionStatus::Running,
            reason: None,
            active_deadline_seconds: active_deadline,
            at: state.tasks().now(),
        })
        .await?;
    let execution = record.execution.clone();
    tasks::start_execution(&state, record, work, overrides);
    Ok((StatusCode::ACCEPTED, Json(execution)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExecutionsQuery {
    /// Only this environment.
    pub env: Option<String>,
    /// Only this status: running, succeeded, failed, timed-out, cancelled, missed.
    pub status: Option<String>,
    /// Only this trigger: schedule, manual, api, ci.
    pub trigger: Option<String>,
    /// At most this many, newest first (1–500, default 50).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page (with the same filters).
    pub cursor: Option<String>,
}

/// Page sizes of the executions list.
pub const EXECUTION_LIMITS: Limits = Limits {
    default: 50,
    max: 500,
};

/// Executions of a task, newest first, a page at a time, with the counts per status of the
/// last 30 days.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/executions",
    tag = "tasks", params(ExecutionsQuery),
    responses((status = 200, body = ExecutionList), (status = 422, body = berth_core::api::ApiError)))]
pub async fn list_executions(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Query(q): Query<ExecutionsQuery>,
) -> ApiResult<Json<ExecutionList>> {
    component_or_404(&state, &org, &project, &name).await?;
    if let Some(env) = &q.env {
        env_or_first(&state, &org, Some(env)).await?;
    }
    let limit = EXECUTION_LIMITS.pick(q.limit)?;
    let scope = ListScope::new(
        "executions",
        &[
            &org,
            &project,
            &name,
            q.env.as_deref().unwrap_or_default(),
            q.status.as_deref().unwrap_or_default(),
            q.trigger.as_deref().unwrap_or_default(),
        ],
    );
    let before = scope.pair(q.cursor.as_deref())?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => match ExecutionStatus::parse(s) {
            ExecutionStatus::Unknown => {
                return Err(ApiError::validation(
                    "status",
                    format!(
                        "unknown status {s:?}; one of running, succeeded, failed, timed-out, cancelled, missed"
                    ),
                ));
            }
            known => Some(known),
        },
    };
    let trigger = match q.trigger.as_deref() {
        None => None,
        Some(t) => match ExecutionTrigger::parse(t) {
            ExecutionTrigger::Unknown => {
                return Err(ApiError::validation(
                    "trigger",
                    format!("unknown trigger {t:?}; one of schedule, manual, api, ci"),
                ));
            }
            known => Some(known),
        },
    };
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    let filter = ExecutionFilter {
        env: q.env.as_deref(),
        status,
        trigger,
        before: as_pair(&before),
        limit,
    };
    let page = state.store().list_executions(target, &filter).await?;
    let since = state.tasks().now() - chrono::Duration::days(30);
    let counts = state
        .store()
        .execution_counts(target, q.env.as_deref(), since)
        .await?;
    Ok(Json(ExecutionList {
        next_cursor: page.next(|x| scope.cursor(&[&x.created_at, &x.id])),
        items: page.items,
        counts,
    }))
}

async fn execution_or_404(state: &AppState, id: &str) -> ApiResult<Execution> {
    state
        .store()
        .get_execution(id)
        .await?
        .map(|r| r.execution)
        .ok_or_else(|| ApiError::not_found(format!("execution {id:?} not found")))
}

#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "tasks",
    responses((status = 200, body = Execution), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_execution(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Execution>> {
    Ok(Json(execution_or_404(&state, &id).await?))
}

/// The output of an execution: live from the container while it runs, then as kept (the
/// newest 10 MB).
#[utoipa::path(get, path = "/api/v1/executions/{id}/logs", tag = "tasks",
    responses((status = 200, body = ExecutionLogs), (status = 404, body = berth_core::api::ApiError)))]
pub async fn execution_logs(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecutionLogs>> {
    let x = execution_or_404(&state, &id).await?;
    if x.status == ExecutionStatus::Running
        && let Ok(engine) = state.engine()
    {
        let name = WorkloadKey {
            org: x.org.clone(),
            project: x.project.clone(),
            component: x.component.clone(),
            env: x.environment.clone(),
        }
        .task_container_name(&x.id);
        if let Some(logs) = tasks::container_logs(engine, &name).await {
            return Ok(Json(ExecutionLogs {
                id: x.id,
                status: x.status,
                live: true,
                logs,
            }));
        }
    }
    // Read the status again: the execution may have ended while the container was read.
    let logs = state.store().execution_logs(&id).await?.unwrap_or_default();
    let x = execution_or_404(&state, &id).await?;
    Ok(Json(ExecutionLogs {
        id: x.id,
        status: x.status,
        live: false,
        logs,
    }))
}

/// Cancels a running execution: its container is killed, the logs so far are kept, and it is
/// recorded `cancelled`.
#[utoipa::path(post, path = "/api/v1/executions/{id}/cancel", tag = "tasks",
    responses((status = 200, body = Execution), (status = 404, body = berth_core::api::ApiError),
              (status = 409, body = berth_core::api::ApiError)))]
pub async fn cancel_execution(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Execution>> {
    auth.require(Action::Write)?;
    let x = execution_or_404(&state, &id).await?;
    if x.status != ExecutionStatus::Running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("execution {id} already ended ({})", x.status.as_str()),
        ));
    }
    let reason = format!("cancelled by {}", auth.0.actor());
    tasks::cancel(&state, &id, &reason).await?;
    Ok(Json(execution_or_404(&state, &id).await?))
}
