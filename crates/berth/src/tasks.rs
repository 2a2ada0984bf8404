//! `berth task …` (schedules, runs, executions, logs) and the offline `berth cron next`.

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use berth_core::api::{
    Environment, Execution, ExecutionList, ExecutionLogs, ExecutionStatus, List, PutSchedule,
    TaskSchedule,
};
use berth_core::cron::{Schedule, format_time};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Reported;
use crate::cli::{CronCmd, Output, ScheduleCmd, TaskCmd, TaskTarget};
use crate::client::{Client, seg};
use crate::printer::{Columns, Printer};

const SCHEDULE_COLUMNS: Columns = &[
    ("ENV", "environment"),
    ("SCHEDULE", "schedule"),
    ("TIME ZONE", "timeZone"),
    ("CONCURRENCY", "concurrencyPolicy"),
    ("SUSPENDED", "suspended"),
    ("NEXT", "nextFireAt"),
];
const EXECUTION_COLUMNS: Columns = &[
    ("ID", "id"),
    ("ENV", "environment"),
    ("STATUS", "status"),
    ("TRIGGER", "trigger"),
    ("EXIT", "exitCode"),
    ("STARTED", "startedAt"),
    ("DURATION MS", "durationMs"),
    ("REASON", "reason"),
];

fn component_path(org: &str, project: &str, component: &str) -> String {
    format!(
        "/api/v1/orgs/{org}/projects/{}/components/{}",
        seg(project),
        seg(component)
    )
}

/// The environment given, or the organization's first.
async fn env_or_first(c: &Client, org: &str, env: Option<String>) -> anyhow::Result<String> {
    if let Some(e) = env {
        return Ok(e);
    }
    let envs: List<Environment> = c.get(&format!("/api/v1/orgs/{org}/environments")).await?;
    envs.items
        .into_iter()
        .next()
        .map(|e| e.name)
        .ok_or_else(|| anyhow!("organization {org:?} has no environments"))
}

async fn schedule_path(c: &Client, org: &str, t: TaskTarget) -> anyhow::Result<String> {
    let env = env_or_first(c, org, t.env).await?;
    Ok(format!(
        "{}/environments/{}/schedule",
        component_path(org, &t.project, &t.component),
        seg(&env)
    ))
}

async fn put_schedule(c: &Client, path: &str, body: &PutSchedule) -> anyhow::Result<TaskSchedule> {
    Ok(c.call(Method::PUT, path, Some(body)).await?)
}

/// The current schedule as a full PUT body (for suspend/resume).
fn as_put(s: &TaskSchedule) -> PutSchedule {
    PutSchedule {
        schedule: s.schedule.clone(),
        time_zone: Some(s.time_zone.clone()),
        concurrency_policy: Some(s.concurrency_policy),
        starting_deadline_seconds: s.starting_deadline_seconds,
        active_deadline_seconds: s.active_deadline_seconds,
        suspended: Some(s.suspended),
        successful_history_limit: Some(s.successful_history_limit),
        failed_history_limit: Some(s.failed_history_limit),
    }
}

pub async fn task(cmd: TaskCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        TaskCmd::Schedule(cmd) => schedule(cmd, c, org, printer).await,
        TaskCmd::Run {
            target,
            args,
            arg,
            env_var,
            wait,
        } => {
            let mut argv = match args {
                Some(line) => {
                    berth_core::task::split_args("--args", &line).map_err(|e| anyhow!("{}", e))?
                }
                None => Vec::new(),
            };
            argv.extend(arg);
            let mut overrides = Vec::new();
            for kv in env_var {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--env-var {kv:?}: expected KEY=VALUE"))?;
                overrides.push(json!({ "name": k, "value": v }));
            }
            let mut body = json!({ "args": argv, "envOverrides": overrides, "trigger": "manual" });
            if let Some(env) = &target.env {
                body["env"] = json!(env);
            }
            let path = format!(
                "{}/runs",
                component_path(org, &target.project, &target.component)
            );
            let started: Execution = c.post(&path, &body).await?;
            if !wait {
                return printer.print(&started, EXECUTION_COLUMNS);
            }
            printer.note(&format!(
                "execution {} started ({}); waiting for it to end",
                started.id, started.environment
            ));
            let done = wait_for(c, &started.id).await?;
            finish_run(c, done, printer).await
        }
        TaskCmd::Executions {
            project,
            component,
            env,
            status,
            trigger,
            limit,
        } => {
            let mut path = format!("{}/executions", component_path(org, &project, &component));
            let mut sep = '?';
            for (k, v) in [("env", env), ("status", status), ("trigger", trigger)] {
                if let Some(v) = v {
                    path.push_str(&format!("{sep}{k}={}", seg(&v)));
                    sep = '&';
                }
            }
            let pages = c
                .get_pages(&path, Some(limit as usize), crate::LARGEST_PAGE)
                .await?;
            let list: ExecutionList = serde_json::from_value(pages)
                .map_err(|e| anyhow::anyhow!("unexpected answer from {path}: {e}"))?;
            if printer.output == Output::Table {
                let n = &list.counts;
                printer.note(&format!(
                    "last 30 days: {} total, {} running, {} succeeded, {} failed, {} timed out, \
                     {} cancelled, {} missed",
                    n.total, n.running, n.succeeded, n.failed, n.timed_out, n.cancelled, n.missed
                ));
            }
            printer.print(&list, EXECUTION_COLUMNS)
        }
        TaskCmd::Get { id } => printer.print(
            &c.get::<Execution>(&format!("/api/v1/executions/{}", seg(&id)))
                .await?,
            EXECUTION_COLUMNS,
        ),
        TaskCmd::Logs { id } => {
            let logs: ExecutionLogs = c
                .get(&format!("/api/v1/executions/{}/logs", seg(&id)))
                .await?;
            match printer.output {
                Output::Table => {
                    print!("{}", logs.logs);
                    Ok(())
                }
                _ => printer.print(&logs, &[]),
            }
        }
        TaskCmd::Cancel { id } => {
            let x: Execution = c
                .post(
                    &format!("/api/v1/executions/{}/cancel", seg(&id)),
                    &json!({}),
                )
                .await?;
            printer.print(&x, EXECUTION_COLUMNS)
        }
    }
}

/// Polls an execution until it ends.
async fn wait_for(c: &Client, id: &str) -> anyhow::Result<Execution> {
    loop {
        let x: Execution = c.get(&format!("/api/v1/executions/{}", seg(id))).await?;
        if x.status.is_final() {
            return Ok(x);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The process exit code for an ended execution: its own exit code (mod 256, never 0 for an
/// unsuccessful one), else 1.
fn exit_code_of(x: &Execution) -> i32 {
    if x.status == ExecutionStatus::Succeeded {
        return 0;
    }
    match x.exit_code {
        Some(code) => match (code.rem_euclid(256)) as i32 {
            0 => 1,
            c => c,
        },
        None => 1,
    }
}

/// Prints the logs (table: raw on stdout; JSON/YAML: the execution with a `logs` field) and
/// exits with the task's exit code.
async fn finish_run(c: &Client, x: Execution, printer: Printer) -> anyhow::Result<()> {
    let logs: ExecutionLogs = c
        .get(&format!("/api/v1/executions/{}/logs", seg(&x.id)))
        .await?;
    match printer.output {
        Output::Table => {
            print!("{}", logs.logs);
            let secs = x.duration_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
            let mut line = format!("execution {} {} in {secs:.1} s", x.id, x.status.as_str());
            if let Some(code) = x.exit_code {
                line.push_str(&format!(" (exit code {code})"));
            }
            if let Some(r) = &x.reason {
                line.push_str(&format!(": {r}"));
            }
            printer.note(&line);
        }
        _ => {
            let mut v = serde_json::to_value(&x)?;
            v["logs"] = Value::String(logs.logs);
            printer.print(&v, &[])?;
        }
    }
    let code = exit_code_of(&x);
    if code != 0 {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code);
    }
    Ok(())
}

async fn schedule(cmd: ScheduleCmd, c: &Client, org: &str, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        ScheduleCmd::Set {
            target,
            cron,
            tz,
            concurrency,
            starting_deadline,
            active_deadline,
            successful_history,
            failed_history,
            suspended,
        } => {
            let path = schedule_path(c, org, target).await?;
            let body = PutSchedule {
                schedule: cron,
                time_zone: tz,
                concurrency_policy: concurrency
                    .map(|p| berth_core::api::ConcurrencyPolicy::parse(p.as_str())),
                starting_deadline_seconds: starting_deadline,
                active_deadline_seconds: active_deadline,
                suspended: Some(suspended),
                successful_history_limit: successful_history,
                failed_history_limit: failed_history,
            };
            let s = put_schedule(c, &path, &body).await?;
            print_schedule(&s, printer)
        }
        ScheduleCmd::Get { target } => {
            let path = schedule_path(c, org, target).await?;
            let s: TaskSchedule = c.get(&path).await?;
            print_schedule(&s, printer)
        }
        ScheduleCmd::Suspend { target } => set_suspended(c, org, target, true, printer).await,
        ScheduleCmd::Resume { target } => set_suspended(c, org, target, false, printer).await,
        ScheduleCmd::Delete { target } => {
            let path = schedule_path(c, org, target).await?;
            c.delete::<Value>(&path).await?;
            printer.done("deleted", "schedule", &path)
        }
    }
}

async fn set_suspended(
    c: &Client,
    org: &str,
    target: TaskTarget,
    suspended: bool,
    printer: Printer,
) -> anyhow::Result<()> {
    let path = schedule_path(c, org, target).await?;
    let current: TaskSchedule = c.get(&path).await?;
    let mut body = as_put(&current);
    body.suspended = Some(suspended);
    let s = put_schedule(c, &path, &body).await?;
    print_schedule(&s, printer)
}

fn print_schedule(s: &TaskSchedule, printer: Printer) -> anyhow::Result<()> {
    printer.print(s, SCHEDULE_COLUMNS)?;
    if printer.output == Output::Table && !s.upcoming.is_empty() {
        printer.note(&format!("upcoming: {}", s.upcoming.join(", ")));
    }
    Ok(())
}

/// `berth cron next`: offline.
pub fn cron(cmd: CronCmd, printer: Printer) -> anyhow::Result<()> {
    let CronCmd::Next {
        expr,
        tz,
        after,
        count,
    } = cmd;
    let fail = |field: &str, message: &str| {
        printer.error("validation_failed", message, Some(field));
        Err(Reported.into())
    };
    let schedule = match Schedule::parse(&expr, &tz) {
        Ok(s) => s,
        Err(e) => {
            let field = if e.field == berth_core::cron::ZONE_FIELD {
                "tz"
            } else {
                "expr"
            };
            return fail(field, &format!("{field}: {}", e.message));
        }
    };
    if !(1..=1000).contains(&count) {
        return fail("count", "count: must be between 1 and 1000");
    }
    let after = match after {
        None => chrono::Utc::now(),
        Some(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(t) => t.with_timezone(&chrono::Utc),
            Err(e) => {
                return fail(
                    "after",
                    &format!(
                        "after: {text:?} is not an RFC 3339 time such as 2026-03-08T00:00:00Z ({e})"
                    ),
                );
            }
        },
    };
    let next: Vec<String> = schedule
        .upcoming(after, count)
        .iter()
        .map(format_time)
        .collect();
    match printer.output {
        Output::Table => {
            for t in &next {
                println!("{t}");
            }
            Ok(())
        }
        _ => printer.print(
            &json!({
                "schedule": schedule.expr(),
                "timeZone": schedule.zone().name(),
                "after": format_time(&after),
                "next": next,
            }),
            &[],
        ),
    }
}
