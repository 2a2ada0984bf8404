//! Task schedules, executions (with their logs) and per-day execution counts.
//!
//! Times are passed in by the caller (the scheduler has its own clock) and stored as RFC 3339
//! UTC with milliseconds, which sort as text.

use berth_core::api::{
    ConcurrencyPolicy, Execution, ExecutionCounts, ExecutionStatus, ExecutionTrigger,
};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

use crate::{ComponentRef, Error, Result, Store, new_id};

/// `2026-01-01T00:00:00.000Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Io(format!("stored time {s:?} does not parse: {e}")))
}

/// A schedule as stored, with the names of what it belongs to.
#[derive(Debug, Clone)]
pub struct StoredSchedule {
    pub component_id: String,
    pub environment_id: String,
    pub org: String,
    pub project: String,
    pub component: String,
    pub environment: String,
    pub settings: ScheduleSettings,
    /// The next slot not yet handled.
    pub next_fire_at: Option<DateTime<Utc>>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a user sets on a schedule (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub expr: String,
    pub zone: String,
    pub concurrency: ConcurrencyPolicy,
    pub starting_deadline_seconds: Option<i64>,
    pub active_deadline_seconds: Option<i64>,
    pub suspended: bool,
    pub successful_history_limit: i64,
    pub failed_history_limit: i64,
}

/// An execution to record.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    pub component_id: &'a str,
    pub environment_id: &'a str,
    /// The deployment whose release runs (`None` when nothing is deployed).
    pub deployment_id: Option<&'a str>,
    pub release_id: Option<&'a str>,
    pub image: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub trigger: ExecutionTrigger,
    pub actor: &'a str,
    pub args: &'a [String],
    pub env_names: &'a [String],
    pub slot: Option<DateTime<Utc>>,
    /// `running` (it starts now) or `missed` (it never will).
    pub status: ExecutionStatus,
    pub reason: Option<&'a str>,
    pub active_deadline_seconds: Option<i64>,
    pub at: DateTime<Utc>,
}

/// An execution with what the scheduler needs besides its wire form.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub execution: Execution,
    pub component_id: String,
    pub environment_id: String,
    pub deployment_id: Option<String>,
    pub active_deadline_seconds: Option<i64>,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct ExecutionEnd<'a> {
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<&'a str>,
    /// `None` keeps what is stored.
    pub logs: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Filters of an execution listing.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter<'a> {
    pub env: Option<&'a str>,
    pub status: Option<ExecutionStatus>,
    pub trigger: Option<ExecutionTrigger>,
    /// Only executions older than this (created_at, id): the page after one that ended there.
    pub before: Option<(&'a str, &'a str)>,
    pub limit: u32,
}

const SCHEDULE_SELECT: &str = "SELECT s.component_id, s.environment_id, o.name AS org_name,
    p.name AS project_name, c.name AS component_name, e.name AS env_name, s.expr, s.zone,
    s.concurrency, s.starting_deadline_seconds, s.active_deadline_seconds, s.suspended,
    s.successful_history_limit, s.failed_history_limit, s.next_fire_at, s.created_at,
    s.updated_at
    FROM task_schedules s JOIN components c ON c.id = s.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN environments e ON e.id = s.environment_id";

const EXECUTION_SELECT: &str = "SELECT x.id, x.component_id, x.environment_id,
    o.name AS org_name, p.name AS project_name, c.name AS component_name, e.name AS env_name,
    x.deployment_id, x.release_id, x.image, x.digest, x.trigger, x.actor, x.args, x.env_names,
    x.slot, x.status, x.exit_code, x.reason, x.active_deadline_seconds, x.created_at,
    x.started_at, x.ended_at
    FROM task_executions x JOIN components c ON c.id = x.component_id
    JOIN projects p ON p.id = c.project_id JOIN orgs o ON o.id = p.org_id
    JOIN environments e ON e.id = x.environment_id";

/// The statuses counted against the failed history limit.
const UNSUCCESSFUL: &str = "('failed', 'timed-out', 'cancelled', 'missed')";

fn schedule_from_row(row: &sqlx::any::AnyRow) -> Result<StoredSchedule> {
    let next: Option<String> = row.try_get("next_fire_at")?;
    let concurrency: String = row.try_get("concurrency")?;
    let suspended: i64 = row.try_get("suspended")?;
    Ok(StoredSchedule {
        component_id: row.try_get("component_id")?,
        environment_id: row.try_get("environment_id")?,
        org: row.try_get("org_name")?,
        project: row.try_get("project_name")?,
        component: row.try_get("component_name")?,
        environment: row.try_get("env_name")?,
        settings: ScheduleSettings {
            expr: row.try_get("expr")?,
            zone: row.try_get("zone")?,
            concurrency: ConcurrencyPolicy::parse(&concurrency),
            starting_deadline_seconds: row.try_get("starting_deadline_seconds")?,
            active_deadline_seconds: row.try_get("active_deadline_seconds")?,
            suspended: suspended != 0,
            successful_history_limit: row.try_get("successful_history_limit")?,
            failed_history_limit: row.try_get("failed_history_limit")?,
        },
        next_fire_at: next.as_deref().map(parse_time).transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn execution_from_row(row: &sqlx::any::AnyRow) -> Result<ExecutionRecord> {
    let trigger: String = row.try_get("trigger")?;
    let status: String = row.try_get("status")?;
    let args: String = row.try_get("args")?;
    let env_names: String = row.try_get("env_names")?;
    let started_at: Option<String> = row.try_get("started_at")?;
    let ended_at: Option<String> = row.try_get("ended_at")?;
    let duration_ms = match (&started_at, &ended_at) {
        (Some(s), Some(e)) => Some((parse_time(e)? - parse_time(s)?).num_milliseconds()),
        _ => None,
    };
    Ok(ExecutionRecord {
        execution: Execution {
            id: row.try_get("id")?,
            org: row.try_get("org_name")?,
            project: row.try_get("project_name")?,
            component: row.try_get("component_name")?,
            environment: row.try_get("env_name")?,
            release: row.try_get("release_id")?,
            image: row.try_get("image")?,
            digest: row.try_get("digest")?,
            trigger: ExecutionTrigger::parse(&trigger),
            actor: row.try_get("actor")?,
            args: json_list(&args),
            env_overrides: json_list(&env_names),
            slot: row.try_get("slot")?,
            status: ExecutionStatus::parse(&status),
            exit_code: row.try_get("exit_code")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
            started_at,
            ended_at,
            duration_ms,
        },
        component_id: row.try_get("component_id")?,
        environment_id: row.try_get("environment_id")?,
        deployment_id: row.try_get("deployment_id")?,
        active_deadline_seconds: row.try_get("active_deadline_seconds")?,
    })
}

/// Adds one to the day's count of `status` (inside the caller's transaction).
async fn count_day(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    component_id: &str,
    environment_id: &str,
    status: ExecutionStatus,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_execution_days (component_id, environment_id, day, status, count)
         VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (component_id, environment_id, day, status) DO UPDATE SET count = task_execution_days.count + 1",
    )
    .bind(component_id)
    .bind(environment_id)
    .bind(at.format("%Y-%m-%d").to_string())
    .bind(status.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_execution_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    x: &NewExecution<'_>,
) -> Result<Option<String>> {
    let id = new_id();
    let at = format_time(x.at);
    let running = x.status == ExecutionStatus::Running;
    let done = sqlx::query(
        "INSERT INTO task_executions (id, component_id, environment_id, deployment_id, release_id,
           image, digest, trigger, actor, args, env_names, slot, status, reason,
           active_deadline_seconds, created_at, started_at, ended_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (component_id, environment_id, slot) DO NOTHING",
    )
    .bind(&id)
    .bind(x.component_id)
    .bind(x.environment_id)
    .bind(x.deployment_id)
    .bind(x.release_id)
    .bind(x.image)
    .bind(x.digest)
    .bind(x.trigger.as_str())
    .bind(x.actor)
    .bind(serde_json::to_string(x.args).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(x.env_names).unwrap_or_else(|_| "[]".into()))
    .bind(x.slot.map(format_time))
    .bind(x.status.as_str())
    .bind(x.reason)
    .bind(x.active_deadline_seconds)
    .bind(&at)
    .bind(running.then_some(&at))
    .bind((!running).then_some(&at))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    if !running {
        count_day(tx, x.component_id, x.environment_id, x.status, x.at).await?;
    }
    Ok(Some(id))
}

impl Store {
    /// Ids of a component and an environment of its organization.
    pub async fn component_env_id(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<(String, String)> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let org_id = self.org_id(target.org).await?;
        let env_id: String =
            sqlx::query_scalar("SELECT id FROM environments WHERE org_id = $1 AND name = $2")
                .bind(&org_id)
                .bind(env)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| Error::not_found("environment", env))?;
        Ok((component_id, env_id))
    }

    /// Creates or replaces the schedule of (component, env); `next_fire_at` is its first slot.
    pub async fn put_schedule(
        &self,
        target: ComponentRef<'_>,
        env: &str,
        s: &ScheduleSettings,
        next_fire_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<StoredSchedule> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let at = format_time(at);
        sqlx::query(
            "INSERT INTO task_schedules (component_id, environment_id, expr, zone, concurrency,
               starting_deadline_seconds, active_deadline_seconds, suspended,
               successful_history_limit, failed_history_limit, next_fire_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
             ON CONFLICT (component_id, environment_id) DO UPDATE SET
               expr = excluded.expr, zone = excluded.zone, concurrency = excluded.concurrency,
               starting_deadline_seconds = excluded.starting_deadline_seconds,
               active_deadline_seconds = excluded.active_deadline_seconds,
               suspended = excluded.suspended,
               successful_history_limit = excluded.successful_history_limit,
               failed_history_limit = excluded.failed_history_limit,
               next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at",
        )
        .bind(&component_id)
        .bind(&env_id)
        .bind(&s.expr)
        .bind(&s.zone)
        .bind(s.concurrency.as_str())
        .bind(s.starting_deadline_seconds)
        .bind(s.active_deadline_seconds)
        .bind(i64::from(s.suspended))
        .bind(s.successful_history_limit)
        .bind(s.failed_history_limit)
        .bind(next_fire_at.map(format_time))
        .bind(&at)
        .execute(self.pool())
        .await?;
        self.get_schedule(target, env)
            .await?
            .ok_or_else(|| Error::not_found("schedule", env))
    }

    pub async fn get_schedule(
        &self,
        target: ComponentRef<'_>,
        env: &str,
    ) -> Result<Option<StoredSchedule>> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SCHEDULE_SELECT} WHERE s.component_id = $1 AND s.environment_id = $2"
        )))
        .bind(&component_id)
        .bind(&env_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    /// Removes a schedule; false when there was none.
    pub async fn delete_schedule(&self, target: ComponentRef<'_>, env: &str) -> Result<bool> {
        let (component_id, env_id) = self.component_env_id(target, env).await?;
        let done = sqlx::query(
            "DELETE FROM task_schedules WHERE component_id = $1 AND environment_id = $2",
        )
        .bind(&component_id)
        .bind(&env_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every schedule (the scheduler's work list).
    pub async fn list_schedules(&self) -> Result<Vec<StoredSchedule>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SCHEDULE_SELECT} ORDER BY s.next_fire_at"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    /// Moves a schedule's next slot from `expected` to `next` unless someone else moved it
    /// first; true when this call did.
    pub async fn advance_schedule(
        &self,
        component_id: &str,
        environment_id: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE task_schedules SET next_fire_at = $1
             WHERE component_id = $2 AND environment_id = $3 AND next_fire_at IS NOT DISTINCT FROM $4",
        )
        .bind(next.map(format_time))
        .bind(component_id)
        .bind(environment_id)
        .bind(expected.map(format_time))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Handles one slot of a schedule in one transaction: moves the schedule's next slot from
    /// `expected` to `next` (compare-and-swap) and records the slot's execution. `None` when
    /// another scheduler got there first (the slot is someone else's) — so a slot never runs
    /// twice, even with several servers on one database.
    pub async fn claim_slot(
        &self,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
        x: &NewExecution<'_>,
    ) -> Result<Option<ExecutionRecord>> {
        let mut tx = self.begin().await?;
        let moved = sqlx::query(
            "UPDATE task_schedules SET next_fire_at = $1
             WHERE component_id = $2 AND environment_id = $3 AND next_fire_at IS NOT DISTINCT FROM $4",
        )
        .bind(next.map(format_time))
        .bind(x.component_id)
        .bind(x.environment_id)
        .bind(expected.map(format_time))
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let id = insert_execution_tx(&mut tx, x).await?;
        // Commit either way: the schedule has moved on even when the slot was recorded before.
        tx.commit().await?;
        match id {
            Some(id) => self.get_execution(&id).await,
            None => Ok(None),
        }
    }

    /// Records an execution outside any schedule (Run Now) and returns it.
    pub async fn insert_execution(&self, x: &NewExecution<'_>) -> Result<ExecutionRecord> {
        let mut tx = self.begin().await?;
        let id = insert_execution_tx(&mut tx, x)
            .await?
            .ok_or_else(|| Error::Conflict {
                message: "this slot already has an execution".into(),
                field: None,
            })?;
        tx.commit().await?;
        self.get_execution(&id)
            .await?
            .ok_or_else(|| Error::not_found("execution", id))
    }

    pub async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE x.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// Ends a running execution; false when it had ended already (the first ending wins, so a
    /// cancel and a normal exit racing each other record one outcome). A `None` reason keeps
    /// the stored one.
    pub async fn finish_execution(&self, id: &str, end: &ExecutionEnd<'_>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let ids: Option<(String, String)> = sqlx::query_as(
            "SELECT component_id, environment_id FROM task_executions
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((component_id, environment_id)) = ids else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE task_executions SET status = $1, exit_code = $2, reason = COALESCE($3, reason),
               logs = COALESCE($4, logs), ended_at = $5
             WHERE id = $6 AND status = 'running'",
        )
        .bind(end.status.as_str())
        .bind(end.exit_code)
        .bind(end.reason)
        .bind(end.logs)
        .bind(format_time(end.at))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        count_day(&mut tx, &component_id, &environment_id, end.status, end.at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets the reason of a running execution (a note such as an adoption); the end's reason,
    /// when it has one, replaces it.
    pub async fn note_execution(&self, id: &str, reason: &str) -> Result<()> {
        sqlx::query("UPDATE task_executions SET reason = $1 WHERE id = $2 AND status = 'running'")
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A page of a component's executions, newest first (by creation time, then id).
    pub async fn list_executions(
        &self,
        target: ComponentRef<'_>,
        filter: &ExecutionFilter<'_>,
    ) -> Result<crate::Page<Execution>> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE x.component_id = $1 AND ($2 IS NULL OR e.name = $2)
               AND ($3 IS NULL OR x.status = $3) AND ($4 IS NULL OR x.trigger = $4)
               AND ($6 IS NULL OR x.created_at < $6 OR (x.created_at = $6 AND x.id < $7))
             ORDER BY x.created_at DESC, x.id DESC LIMIT $5"
        )))
        .bind(&component_id)
        .bind(filter.env)
        .bind(filter.status.map(ExecutionStatus::as_str))
        .bind(filter.trigger.map(ExecutionTrigger::as_str))
        .bind(crate::page_limit(filter.limit))
        .bind(filter.before.map(|b| b.0))
        .bind(filter.before.map(|b| b.1))
        .fetch_all(self.pool())
        .await?;
        let items = rows
            .iter()
            .map(|r| execution_from_row(r).map(|x| x.execution))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::Page::of(items, filter.limit))
    }

    /// How many executions of a component ended per status on the UTC days from `since` on,
    /// plus those running now (pruned executions still count).
    pub async fn execution_counts(
        &self,
        target: ComponentRef<'_>,
        env: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<ExecutionCounts> {
        let component_id = self
            .component_id(target.org, target.project, target.component)
            .await?;
        let env_id = match env {
            Some(env) => Some(self.component_env_id(target, env).await?.1),
            None => None,
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, CAST(SUM(count) AS BIGINT) FROM task_execution_days
             WHERE component_id = $1 AND ($2 IS NULL OR environment_id = $2) AND day >= $3
             GROUP BY status",
        )
        .bind(&component_id)
        .bind(&env_id)
        .bind(since.format("%Y-%m-%d").to_string())
        .fetch_all(self.pool())
        .await?;
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM task_executions
             WHERE component_id = $1 AND ($2 IS NULL OR environment_id = $2) AND status = 'running'",
        )
        .bind(&component_id)
        .bind(&env_id)
        .fetch_one(self.pool())
        .await?;
        let mut c = ExecutionCounts {
            since: format_time(
                since
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .map_or(since, |d| d.and_utc()),
            ),
            running,
            ..Default::default()
        };
        for (status, n) in rows {
            match ExecutionStatus::parse(&status) {
                ExecutionStatus::Succeeded => c.succeeded += n,
                ExecutionStatus::Failed => c.failed += n,
                ExecutionStatus::TimedOut => c.timed_out += n,
                ExecutionStatus::Cancelled => c.cancelled += n,
                ExecutionStatus::Missed => c.missed += n,
                ExecutionStatus::Running | ExecutionStatus::Unknown => {}
            }
        }
        c.total = c.running + c.succeeded + c.failed + c.timed_out + c.cancelled + c.missed;
        Ok(c)
    }

    /// Every running execution (adopted or closed after a restart), oldest first.
    pub async fn running_executions(&self) -> Result<Vec<ExecutionRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE x.status = 'running' ORDER BY x.created_at, x.id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    /// The stored logs of an execution.
    pub async fn execution_logs(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT logs FROM task_executions WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Deletes the oldest finished executions of (component, env) beyond the limits: `keep_ok`
    /// successful and `keep_failed` unsuccessful ones. Returns how many went.
    pub async fn prune_executions(
        &self,
        component_id: &str,
        environment_id: &str,
        keep_ok: i64,
        keep_failed: i64,
    ) -> Result<u64> {
        let mut gone = 0;
        for (statuses, keep) in [("('succeeded')", keep_ok), (UNSUCCESSFUL, keep_failed)] {
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM task_executions WHERE id IN (
                   SELECT id FROM task_executions
                   WHERE component_id = $1 AND environment_id = $2 AND status IN {statuses}
                   ORDER BY created_at DESC, id DESC LIMIT 9223372036854775807 OFFSET $3)"
            )))
            .bind(component_id)
            .bind(environment_id)
            .bind(keep.max(0))
            .execute(self.pool())
            .await?;
            gone += done.rows_affected();
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewComponent, NewRelease, Origin, RegistrySettings, ReleaseChoice};
    use berth_core::api::{ComponentType, RegistryAuthType};

    const JOB: ComponentRef<'static> = ComponentRef {
        org: "default",
        project: "shop",
        component: "job",
    };

    async fn store() -> Store {
        let store = crate::test_store().await;
        store.bootstrap().await.unwrap();
        store
            .insert_project("default", "shop", "Shop", "")
            .await
            .unwrap();
        store
            .insert_registry(
                "default",
                "local",
                &RegistrySettings {
                    display_name: "Local".into(),
                    host: "127.0.0.1:5000".into(),
                    auth_type: RegistryAuthType::Anonymous,
                    username: None,
                    password: None,
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
        store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name: "job",
                    display_name: "Job",
                    description: "",
                    kind: ComponentType::ScheduledTask,
                    registry: "local",
                    image: "127.0.0.1:5000/test/task:latest",
                    port: None,
                },
            )
            .await
            .unwrap();
        store
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn settings() -> ScheduleSettings {
        ScheduleSettings {
            expr: "*/5 * * * *".into(),
            zone: "UTC".into(),
            concurrency: ConcurrencyPolicy::Forbid,
            starting_deadline_seconds: Some(60),
            active_deadline_seconds: None,
            suspended: false,
            successful_history_limit: 2,
            failed_history_limit: 1,
        }
    }

    #[tokio::test]
    async fn a_slot_is_claimed_once() {
        let store = store().await;
        let d = store
            .create_deployment(
                JOB,
                "development",
                ReleaseChoice::New(NewRelease {
                    registry: "local",
                    repository: "127.0.0.1:5000/test/task",
                    tag: Some("latest"),
                    digest: "sha256:abc",
                    port: None,
                    endpoints: "[]",
                    config: "{}",
                }),
                None,
                Origin {
                    trigger: "user",
                    actor: "admin/bootstrap",
                },
            )
            .await
            .unwrap();
        let slot = t("2026-01-01T00:05:00Z");
        let s = store
            .put_schedule(JOB, "development", &settings(), Some(slot), slot)
            .await
            .unwrap();
        assert_eq!(s.next_fire_at, Some(slot));
        assert_eq!(s.settings, settings());
        let args = vec!["a".to_owned(), "b c".to_owned()];
        let x = NewExecution {
            component_id: &s.component_id,
            environment_id: &s.environment_id,
            deployment_id: Some(&d.id),
            release_id: Some(&d.release),
            image: Some(&d.image),
            digest: Some(&d.digest),
            trigger: ExecutionTrigger::Schedule,
            actor: "scheduler",
            args: &args,
            env_names: &[],
            slot: Some(slot),
            status: ExecutionStatus::Running,
            reason: None,
            active_deadline_seconds: Some(30),
            at: slot,
        };
        let next = Some(t("2026-01-01T00:10:00Z"));
        let first = store
            .claim_slot(Some(slot), next, &x)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.execution.args, args);
        assert_eq!(first.execution.status, ExecutionStatus::Running);
        assert_eq!(first.deployment_id.as_deref(), Some(d.id.as_str()));
        // A second scheduler with the same view loses the compare-and-swap…
        assert!(
            store
                .claim_slot(Some(slot), next, &x)
                .await
                .unwrap()
                .is_none()
        );
        // …and even one that wins it cannot record the slot twice.
        store
            .advance_schedule(&s.component_id, &s.environment_id, next, Some(slot))
            .await
            .unwrap();
        assert!(
            store
                .claim_slot(Some(slot), next, &x)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.running_executions().await.unwrap().len(), 1);

        let end = ExecutionEnd {
            status: ExecutionStatus::Failed,
            exit_code: Some(3),
            reason: Some("exited with code 3"),
            logs: Some("task: exiting with 3\n"),
            at: t("2026-01-01T00:05:02.500Z"),
        };
        assert!(
            store
                .finish_execution(&first.execution.id, &end)
                .await
                .unwrap()
        );
        // The first ending wins.
        assert!(
            !store
                .finish_execution(&first.execution.id, &end)
                .await
                .unwrap()
        );
        let got = store
            .get_execution(&first.execution.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.execution.duration_ms, Some(2500));
        assert_eq!(got.execution.exit_code, Some(3));
        assert_eq!(
            store
                .execution_logs(&first.execution.id)
                .await
                .unwrap()
                .as_deref(),
            Some("task: exiting with 3\n")
        );
        let counts = store
            .execution_counts(JOB, None, t("2025-12-15T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!((counts.failed, counts.total), (1, 1));
    }

    #[tokio::test]
    async fn history_is_pruned_but_counted() {
        let store = store().await;
        let (cid, eid) = store.component_env_id(JOB, "development").await.unwrap();
        for (i, status) in [
            ExecutionStatus::Succeeded,
            ExecutionStatus::Missed,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Missed,
            ExecutionStatus::Succeeded,
        ]
        .into_iter()
        .enumerate()
        {
            let at = t("2026-01-01T00:00:00Z") + chrono::Duration::minutes(i as i64);
            let rec = store
                .insert_execution(&NewExecution {
                    component_id: &cid,
                    environment_id: &eid,
                    deployment_id: None,
                    release_id: None,
                    image: None,
                    digest: None,
                    trigger: ExecutionTrigger::Manual,
                    actor: "admin/bootstrap",
                    args: &[],
                    env_names: &["TOKEN".to_owned()],
                    slot: None,
                    status: if status == ExecutionStatus::Missed {
                        status
                    } else {
                        ExecutionStatus::Running
                    },
                    reason: None,
                    active_deadline_seconds: None,
                    at,
                })
                .await
                .unwrap();
            assert_eq!(rec.execution.env_overrides, ["TOKEN"]);
            if status == ExecutionStatus::Succeeded {
                store
                    .finish_execution(
                        &rec.execution.id,
                        &ExecutionEnd {
                            status,
                            exit_code: Some(0),
                            reason: None,
                            logs: None,
                            at,
                        },
                    )
                    .await
                    .unwrap();
            }
        }
        assert_eq!(store.prune_executions(&cid, &eid, 2, 1).await.unwrap(), 2);
        let all = store
            .list_executions(
                JOB,
                &ExecutionFilter {
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!all.more);
        let all = all.items;
        let statuses: Vec<_> = all.iter().map(|x| x.status).collect();
        assert_eq!(
            statuses,
            [
                ExecutionStatus::Succeeded,
                ExecutionStatus::Missed,
                ExecutionStatus::Succeeded
            ]
        );
        let only_missed = store
            .list_executions(
                JOB,
                &ExecutionFilter {
                    status: Some(ExecutionStatus::Missed),
                    trigger: Some(ExecutionTrigger::Manual),
                    env: Some("development"),
                    limit: 50,
                    before: None,
                },
            )
            .await
            .unwrap()
            .items;
        assert_eq!(only_missed.len(), 1);
        // Page by page (one each), the same executions in the same order.
        let mut walked = Vec::new();
        let mut before: Option<(String, String)> = None;
        loop {
            let page = store
                .list_executions(
                    JOB,
                    &ExecutionFilter {
                        limit: 1,
                        before: before.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            walked.extend(page.items.iter().map(|x| x.id.clone()));
            match page.next(|x| (x.created_at.clone(), x.id.clone())) {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, all.iter().map(|x| x.id.clone()).collect::<Vec<_>>());
        let counts = store
            .execution_counts(JOB, Some("development"), t("2025-12-15T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!((counts.succeeded, counts.missed, counts.total), (3, 2, 5));
        // The window ends: nothing counted from before `since`.
        let later = store
            .execution_counts(JOB, None, t("2026-01-02T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(later.total, 0);
        assert_eq!(later.since, "2026-01-02T00:00:00.000Z");
    }
}
