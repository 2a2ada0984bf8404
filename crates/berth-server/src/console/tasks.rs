//! Tasks: the schedule editor of a scheduled task (with the next fire times, previewed as you
//! type), Run Now / Run with Arguments, and the execution history with each execution's logs
//! and exit code — all through the API's task handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::Secret;
use berth_core::api::{
    ConcurrencyPolicy, EnvOverride, Environment, Execution, ExecutionCounts, ExecutionStatus,
    ExecutionTrigger, PutSchedule, RunRequest, TaskSchedule,
};
use berth_core::cron::{Schedule, format_time};
use serde::Deserialize;

use super::components::{ComponentPath, Head, base_url, head};
use super::{Chrome, Console, Form, PageError, PageResult, Problem, non_empty, render, see_other};
use crate::AppState;
use crate::api::tasks::ExecutionsQuery;
use crate::extract::{Json, Path, Query};

/// Fire times previewed (the API's schedule shows as many).
const UPCOMING: usize = 5;
/// Executions listed.
const HISTORY: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct TasksQuery {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// The schedule form as typed (or as stored).
pub struct ScheduleView {
    schedule: String,
    time_zone: String,
    concurrency: String,
    starting_deadline: String,
    active_deadline: String,
    suspended: bool,
    successful_history: String,
    failed_history: String,
}

impl Default for ScheduleView {
    fn default() -> Self {
        Self {
            schedule: String::new(),
            time_zone: "UTC".into(),
            concurrency: "forbid".into(),
            starting_deadline: String::new(),
            active_deadline: String::new(),
            suspended: false,
            successful_history: "10".into(),
            failed_history: "10".into(),
        }
    }
}

impl From<&TaskSchedule> for ScheduleView {
    fn from(s: &TaskSchedule) -> Self {
        let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        Self {
            schedule: s.schedule.clone(),
            time_zone: s.time_zone.clone(),
            concurrency: s.concurrency_policy.as_str().to_owned(),
            starting_deadline: opt(s.starting_deadline_seconds),
            active_deadline: opt(s.active_deadline_seconds),
            suspended: s.suspended,
            successful_history: s.successful_history_limit.to_string(),
            failed_history: s.failed_history_limit.to_string(),
        }
    }
}

/// The run form as typed (override values are never sent back).
#[derive(Default)]
pub struct RunView {
    args: String,
    overrides: String,
}

/// The next fire times of a schedule being edited, or why it does not parse.
#[derive(Default)]
pub struct PreviewView {
    times: Vec<String>,
    error: Option<String>,
    suspended: bool,
}

#[derive(Template)]
#[template(path = "console/schedule_preview.html")]
struct PreviewFragment {
    preview: PreviewView,
}

pub struct ExecutionRow {
    x: Execution,
    short_id: String,
}

#[derive(Template)]
#[template(path = "console/tasks.html")]
struct TasksPage {
    chrome: Chrome,
    csrf: String,
    head: Head,
    envs: Vec<Environment>,
    env: String,
    env_display: String,
    scheduled: bool,
    schedule: Option<TaskSchedule>,
    schedule_form: ScheduleView,
    preview: PreviewView,
    schedule_problem: Problem,
    run_form: RunView,
    run_problem: Problem,
    executions: Vec<ExecutionRow>,
    counts: ExecutionCounts,
    running: bool,
    deployed: bool,
    notice: Option<&'static str>,
}

#[derive(Default)]
struct Extras {
    status: StatusCode,
    schedule_form: Option<ScheduleView>,
    schedule_problem: Problem,
    run_form: RunView,
    run_problem: Problem,
    notice: Option<&'static str>,
}

fn preview_of(expr: &str, zone: &str, now: chrono::DateTime<chrono::Utc>) -> PreviewView {
    if expr.trim().is_empty() {
        return PreviewView::default();
    }
    match Schedule::parse(expr, zone.trim()) {
        Ok(s) => PreviewView {
            times: s.upcoming(now, UPCOMING).iter().map(format_time).collect(),
            error: None,
            suspended: false,
        },
        Err(e) => PreviewView {
            times: Vec::new(),
            error: Some(e.to_string()),
            suspended: false,
        },
    }
}

async fn tasks_page(
    state: &AppState,
    c: &Console,
    names: (&str, &str, &str),
    env: Option<String>,
    extras: Extras,
) -> PageResult {
    let head = head(state, c, names, "tasks").await?;
    if !head.is_task() {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{} is a {}; only scheduled and manual tasks have runs.",
                head.component.name,
                head.component.kind.as_str()
            ),
        ));
    }
    let envs = state.store().list_environments(&head.org.name).await?;
    let env = env
        .filter(|e| envs.iter().any(|x| &x.name == e))
        .or_else(|| envs.first().map(|e| e.name.clone()))
        .unwrap_or_default();
    let env_display = envs
        .iter()
        .find(|e| e.name == env)
        .map_or_else(|| env.clone(), |e| e.display_name.clone());
    let path = || {
        Path((
            head.org.name.clone(),
            head.project.name.clone(),
            head.component.name.clone(),
        ))
    };
    let scheduled = head.component.kind == berth_core::api::ComponentType::ScheduledTask;
    let schedule = if scheduled {
        crate::api::tasks::get_schedule(
            State(state.clone()),
            c.auth(),
            Path((
                head.org.name.clone(),
                head.project.name.clone(),
                head.component.name.clone(),
                env.clone(),
            )),
        )
        .await
        .ok()
        .map(|Json(s)| s)
    } else {
        None
    };
    let schedule_form = extras
        .schedule_form
        .or_else(|| schedule.as_ref().map(ScheduleView::from))
        .unwrap_or_default();
    let preview = match &schedule {
        // What the API computed for the stored schedule, unless the form shows something else.
        Some(s)
            if s.schedule == schedule_form.schedule && s.time_zone == schedule_form.time_zone =>
        {
            PreviewView {
                times: s.upcoming.clone(),
                error: None,
                suspended: s.suspended,
            }
        }
        _ => preview_of(
            &schedule_form.schedule,
            &schedule_form.time_zone,
            state.tasks().now(),
        ),
    };
    let Json(list) = crate::api::tasks::list_executions(
        State(state.clone()),
        c.auth(),
        path(),
        crate::extract::Query(ExecutionsQuery {
            env: Some(env.clone()),
            status: None,
            trigger: None,
            limit: Some(HISTORY),
            cursor: None,
        }),
    )
    .await?;
    let running = list
        .items
        .iter()
        .any(|x| x.status == ExecutionStatus::Running);
    let Json(states) =
        crate::api::components::environments(State(state.clone()), c.auth(), path()).await?;
    let deployed = states
        .items
        .iter()
        .any(|s| s.environment == env && s.current.is_some());
    let page = TasksPage {
        chrome: c.chrome(
            &head.org.name,
            "overview",
            format!("Runs · {}", head.component.display_name),
        ),
        csrf: c.csrf.clone(),
        head,
        envs,
        env,
        env_display,
        scheduled,
        schedule,
        schedule_form,
        preview,
        schedule_problem: extras.schedule_problem,
        run_form: extras.run_form,
        run_problem: extras.run_problem,
        executions: list
            .items
            .into_iter()
            .map(|x| ExecutionRow {
                // Ids start with the time (UUIDv7): the end tells runs apart.
                short_id: {
                    let n = x.id.chars().count();
                    x.id.chars().skip(n.saturating_sub(12)).collect()
                },
                x,
            })
            .collect(),
        counts: list.counts,
        running,
        deployed,
        notice: extras.notice,
    };
    super::render_status(extras.status, &page)
}

/// `GET …/tasks?env=…`.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(q): Query<TasksQuery>,
) -> PageResult {
    let notice = match q.done.as_deref() {
        Some("schedule") => Some("Schedule saved."),
        Some("schedule-deleted") => Some("Schedule deleted: no more scheduled runs here."),
        _ => None,
    };
    tasks_page(
        &state,
        &c,
        (&org, &project, &name),
        q.env,
        Extras {
            notice,
            ..Extras::default()
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    schedule: String,
    #[serde(default, rename = "timeZone")]
    time_zone: String,
}

/// `GET …/schedule-preview?schedule=…&timeZone=…` (htmx, as you type): the next fire times,
/// computed by the same cron rules the scheduler uses.
pub async fn preview(
    State(state): State<AppState>,
    _c: Console,
    Query(q): Query<PreviewQuery>,
) -> PageResult {
    let zone = if q.time_zone.trim().is_empty() {
        berth_core::cron::DEFAULT_ZONE
    } else {
        q.time_zone.as_str()
    };
    render(&PreviewFragment {
        preview: preview_of(&q.schedule, zone, state.tasks().now()),
    })
}

#[derive(Debug, Deserialize)]
pub struct ScheduleForm {
    #[serde(default)]
    env: String,
    #[serde(default)]
    schedule: String,
    #[serde(default, rename = "timeZone")]
    time_zone: String,
    #[serde(default, rename = "concurrencyPolicy")]
    concurrency: String,
    #[serde(default, rename = "startingDeadlineSeconds")]
    starting_deadline: String,
    #[serde(default, rename = "activeDeadlineSeconds")]
    active_deadline: String,
    #[serde(default)]
    suspended: Option<String>,
    #[serde(default, rename = "successfulHistoryLimit")]
    successful_history: String,
    #[serde(default, rename = "failedHistoryLimit")]
    failed_history: String,
}

impl ScheduleForm {
    fn view(&self) -> ScheduleView {
        ScheduleView {
            schedule: self.schedule.clone(),
            time_zone: self.time_zone.clone(),
            concurrency: self.concurrency.clone(),
            starting_deadline: self.starting_deadline.clone(),
            active_deadline: self.active_deadline.clone(),
            suspended: self.suspended.is_some(),
            successful_history: self.successful_history.clone(),
            failed_history: self.failed_history.clone(),
        }
    }

    /// The API's request; a number field that is no number is the console's own refusal.
    fn body(&self) -> Result<PutSchedule, Problem> {
        let number = |field: &str, v: &str| -> Result<Option<i64>, Problem> {
            match non_empty(v) {
                None => Ok(None),
                Some(t) => t
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| Problem::field(field, "must be a whole number")),
            }
        };
        Ok(PutSchedule {
            schedule: self.schedule.trim().to_owned(),
            time_zone: non_empty(&self.time_zone),
            concurrency_policy: non_empty(&self.concurrency).map(|p| ConcurrencyPolicy::parse(&p)),
            starting_deadline_seconds: number("startingDeadlineSeconds", &self.starting_deadline)?,
            active_deadline_seconds: number("activeDeadlineSeconds", &self.active_deadline)?,
            suspended: Some(self.suspended.is_some()),
            successful_history_limit: number("successfulHistoryLimit", &self.successful_history)?,
            failed_history_limit: number("failedHistoryLimit", &self.failed_history)?,
        })
    }
}

/// `POST …/schedule`: the API's `PUT …/environments/{env}/schedule`.
pub async fn save_schedule(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<ScheduleForm>,
) -> PageResult {
    let names = (org.as_str(), project.as_str(), name.as_str());
    let refused = |status: StatusCode, problem: Problem, form: &ScheduleForm| Extras {
        status,
        schedule_form: Some(form.view()),
        schedule_problem: problem,
        ..Extras::default()
    };
    let body = match form.body() {
        Ok(b) => b,
        Err(p) => {
            return tasks_page(
                &state,
                &c,
                names,
                Some(form.env.clone()),
                refused(StatusCode::UNPROCESSABLE_ENTITY, p, &form),
            )
            .await;
        }
    };
    match crate::api::tasks::put_schedule(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), form.env.clone())),
        Json(body),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}/tasks?env={}&done=schedule",
            base_url(&org, &project, &name),
            form.env
        ))),
        Err(e) => {
            tasks_page(
                &state,
                &c,
                names,
                Some(form.env.clone()),
                refused(e.status, Problem::from_api(&e), &form),
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct EnvForm {
    #[serde(default)]
    env: String,
}

/// `POST …/schedule/delete`: the API's `DELETE …/schedule`.
pub async fn delete_schedule(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<EnvForm>,
) -> PageResult {
    match crate::api::tasks::delete_schedule(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), form.env.clone())),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}/tasks?env={}&done=schedule-deleted",
            base_url(&org, &project, &name),
            form.env
        ))),
        Err(e) => {
            tasks_page(
                &state,
                &c,
                (&org, &project, &name),
                Some(form.env),
                Extras {
                    status: e.status,
                    schedule_problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RunForm {
    #[serde(default)]
    env: String,
    #[serde(default)]
    args: String,
    #[serde(default, rename = "envOverrides")]
    overrides: String,
}

/// `NAME=value` lines (blank lines skipped) → the API's overrides.
fn parse_overrides(text: &str) -> Result<Vec<EnvOverride>, Problem> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(Problem::field(
                "envOverrides",
                format!("line {}: expected NAME=value", i + 1),
            ));
        };
        out.push(EnvOverride {
            name: name.trim().to_owned(),
            value: Secret::new(value),
        });
    }
    Ok(out)
}

/// `POST …/runs`: Run Now (no arguments) or Run with Arguments, through the API's run; the
/// arguments are split like the CLI's `--args` (berth-core's `split_args`).
pub async fn run(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<RunForm>,
) -> PageResult {
    let names = (org.as_str(), project.as_str(), name.as_str());
    let refused = |status: StatusCode, problem: Problem, form: &RunForm| Extras {
        status,
        run_form: RunView {
            args: form.args.clone(),
            // Override values are for one run and never shown again; keep only the names.
            overrides: form
                .overrides
                .lines()
                .filter_map(|l| l.split_once('=').map(|(n, _)| format!("{n}=")))
                .collect::<Vec<_>>()
                .join("\n"),
        },
        run_problem: problem,
        ..Extras::default()
    };
    let parsed = berth_core::task::split_args("args", &form.args)
        .map_err(|e| Problem::field(&e.field, e.message))
        .and_then(|args| Ok((args, parse_overrides(&form.overrides)?)));
    let (args, env_overrides) = match parsed {
        Ok(p) => p,
        Err(p) => {
            return tasks_page(
                &state,
                &c,
                names,
                Some(form.env.clone()),
                refused(StatusCode::UNPROCESSABLE_ENTITY, p, &form),
            )
            .await;
        }
    };
    match crate::api::tasks::run(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone())),
        Json(RunRequest {
            env: non_empty(&form.env),
            args,
            env_overrides,
            trigger: Some(ExecutionTrigger::Manual),
        }),
    )
    .await
    {
        Ok((_, Json(x))) => Ok(see_other(&format!(
            "{}/executions/{}",
            base_url(&org, &project, &name),
            x.id
        ))),
        Err(e) => {
            tasks_page(
                &state,
                &c,
                names,
                Some(form.env.clone()),
                refused(e.status, Problem::from_api(&e), &form),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One execution

pub struct ExecutionView {
    x: Execution,
    logs: String,
    live: bool,
    base: String,
    csrf: String,
    /// Arguments as one line, each quoted when it needs to be.
    args_line: String,
}

#[derive(Template)]
#[template(path = "console/execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    head: Head,
    view: ExecutionView,
    notice: Option<&'static str>,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "console/execution_live.html")]
struct ExecutionFragment {
    view: ExecutionView,
}

/// Shows arguments the way a shell would need them typed.
fn quote_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn execution_view(
    state: &AppState,
    c: &Console,
    (org, project, name): (&str, &str, &str),
    id: &str,
) -> PageResult<ExecutionView> {
    let Json(x) =
        crate::api::tasks::get_execution(State(state.clone()), c.auth(), Path(id.to_owned()))
            .await?;
    // Execution ids are global: only show it under the component it belongs to.
    if x.org != org || x.project != project || x.component != name {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!("Execution {id:?} is not a run of {name:?}."),
        ));
    }
    let Json(logs) =
        crate::api::tasks::execution_logs(State(state.clone()), c.auth(), Path(id.to_owned()))
            .await?;
    // The logs were read last: their status is the freshest.
    let x = Execution {
        status: logs.status,
        ..x
    };
    let x = if x.status.is_final() && x.ended_at.is_none() {
        // It ended between the two reads: take the final record.
        crate::api::tasks::get_execution(State(state.clone()), c.auth(), Path(id.to_owned()))
            .await?
            .0
    } else {
        x
    };
    Ok(ExecutionView {
        args_line: quote_args(&x.args),
        x,
        logs: logs.logs,
        live: logs.live,
        base: base_url(org, project, name),
        csrf: c.csrf.clone(),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET …/executions/{id}`: one run with its logs and exit code; refreshes while it runs.
pub async fn execution_page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name, id)): Path<(String, String, String, String)>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let head = head(&state, &c, (&org, &project, &name), "tasks").await?;
    let view = execution_view(&state, &c, (&org, &project, &name), &id).await?;
    let notice = match q.done.as_deref() {
        Some("cancelled") => Some("Cancelled."),
        _ => None,
    };
    render(&ExecutionPage {
        chrome: c.chrome(
            &head.org.name,
            "overview",
            format!(
                "Run {} · {}",
                id.chars().take(8).collect::<String>(),
                head.component.display_name
            ),
        ),
        head,
        view,
        notice,
        problem: None,
    })
}

/// `GET …/executions/{id}/logs` (htmx, every second while it runs): status, exit code, logs.
pub async fn execution_fragment(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name, id)): Path<(String, String, String, String)>,
) -> PageResult {
    let view = execution_view(&state, &c, (&org, &project, &name), &id).await?;
    render(&ExecutionFragment { view })
}

/// `POST …/executions/{id}/cancel`: the API's cancel.
pub async fn cancel(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name, id)): Path<(String, String, String, String)>,
) -> PageResult {
    // Checks that the execution is this component's before acting on it.
    execution_view(&state, &c, (&org, &project, &name), &id).await?;
    match crate::api::tasks::cancel_execution(State(state.clone()), c.auth(), Path(id.clone()))
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}/executions/{id}?done=cancelled",
            base_url(&org, &project, &name)
        ))),
        Err(e) => {
            let head = head(&state, &c, (&org, &project, &name), "tasks").await?;
            let view = execution_view(&state, &c, (&org, &project, &name), &id).await?;
            super::render_status(
                e.status,
                &ExecutionPage {
                    chrome: c.chrome(&head.org.name, "overview", "Run"),
                    head,
                    view,
                    notice: None,
                    problem: Some(e.message),
                },
            )
        }
    }
}
