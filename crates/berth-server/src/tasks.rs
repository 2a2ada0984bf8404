//! Scheduled and manual tasks: the scheduler and the execution runner.
//!
//! A task component's deployment only marks its release ready; runs use the release of the
//! newest `ready` deployment of their environment. An execution is recorded `running` in the
//! store *before* its container starts, then one runner per execution asks the data plane to
//! run it to completion (`run_task`, container named after the execution id) and records the
//! outcome with the logs.
//!
//! The scheduler ticks every second on its [`Clock`] (tests inject a [`ManualClock`] and call
//! [`tick`] themselves). Each schedule stores its next unhandled slot; a tick that finds it due
//! handles the latest due slot in one transaction that moves the schedule on
//! (compare-and-swap) and records the slot's execution (UNIQUE per component, environment and
//! slot), so a slot never runs twice — not after a restart, not with two servers on one
//! database. Earlier slots missed during a downtime are skipped; the latest runs if it is still
//! within the starting deadline, else it is recorded `missed`.
//!
//! Restart safety: at start, every execution still `running` in the store is adopted when its
//! container exists (running it again with the same execution id waits for that container
//! instead of starting another) and closed as `failed` with the reason when it does not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::api::{ConcurrencyPolicy, DeploymentStatus, ExecutionStatus, ExecutionTrigger};
use berth_core::cron::Schedule;
use berth_core::task::LOG_LIMIT;
use berth_dataplane::Plane;
use berth_dataplane::{DataPlane, LogsOptions, RolloutEvent, TaskSpec, WorkloadKey};
use berth_store::{
    ComponentRef, DeploymentWork, ExecutionEnd, ExecutionRecord, NewExecution, StoredSchedule,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{AppState, deploy};

/// How often the scheduler looks for due slots.
const TICK: Duration = Duration::from_secs(1);
/// How long a cancel waits for the runner to record the outcome.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// Grace of a cancelled task container before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(1);
/// History kept per environment when it has no schedule (manual tasks): successful, failed.
pub const MANUAL_HISTORY: (i64, i64) = (100, 100);
/// Default history limits of a schedule: successful, failed.
pub const DEFAULT_HISTORY: (i64, i64) = (10, 10);
/// The actor of scheduled executions.
pub const SCHEDULER_ACTOR: &str = "scheduler";

/// Where the scheduler reads the time. The system clock in production; tests move a
/// [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An execution this server runs.
struct Active {
    /// Set to the reason to cancel it.
    cancel: watch::Sender<Option<String>>,
    /// Becomes true when the runner has recorded the outcome.
    done: watch::Receiver<bool>,
}

/// The scheduler's state inside [`AppState`].
pub struct Tasks {
    clock: std::sync::RwLock<Arc<dyn Clock>>,
    active: std::sync::Mutex<HashMap<String, Active>>,
    wake: tokio::sync::Notify,
    /// One tick at a time (the loop's and a test's).
    tick_lock: tokio::sync::Mutex<()>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            clock: std::sync::RwLock::new(Arc::new(SystemClock)),
            active: std::sync::Mutex::default(),
            wake: tokio::sync::Notify::new(),
            tick_lock: tokio::sync::Mutex::new(()),
        }
    }
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("active", &self.active_ids())
            .finish_non_exhaustive()
    }
}

impl Tasks {
    /// Replaces the clock (tests).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self
            .clock
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = clock;
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .now()
    }

    /// Makes the scheduler look at the schedules now (after a change).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids of the executions this server runs now.
    pub fn active_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.active().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Asks the runner of `id` to cancel; the receiver turns true when it recorded that.
    fn signal_cancel(&self, id: &str, reason: &str) -> Option<watch::Receiver<bool>> {
        let active = self.active();
        let a = active.get(id)?;
        let _ = a.cancel.send(Some(reason.to_owned()));
        Some(a.done.clone())
    }

    /// Waits until the runner of `id` (if this server runs it) has recorded its outcome.
    pub async fn wait_done(&self, id: &str, limit: Duration) {
        let done = self.active().get(id).map(|a| a.done.clone());
        if let Some(mut done) = done {
            let _ = tokio::time::timeout(limit, done.wait_for(|d| *d)).await;
        }
    }
}

/// Removes the execution from the active set and says it is done, also when the runner panics.
struct ActiveGuard {
    state: AppState,
    id: String,
    done: watch::Sender<bool>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.state.tasks().active().remove(&self.id);
        let _ = self.done.send(true);
    }
}

fn key_of(x: &berth_core::api::Execution) -> WorkloadKey {
    WorkloadKey {
        org: x.org.clone(),
        project: x.project.clone(),
        component: x.component.clone(),
        env: x.environment.clone(),
    }
}

/// The newest ready deployment of a task in `env`: the release runs use.
pub async fn current_release(
    state: &AppState,
    target: ComponentRef<'_>,
    env: &str,
) -> Result<Option<DeploymentWork>, berth_store::Error> {
    let ready = state
        .store()
        .list_deployments(target.org, target.project, target.component, Some(env), 50)
        .await?
        .into_iter()
        .find(|d| d.status == DeploymentStatus::Ready);
    match ready {
        Some(d) => state.store().get_deployment(&d.id).await,
        None => Ok(None),
    }
}

/// Deletes old finished executions of the execution's environment beyond its history limits.
async fn prune(state: &AppState, x: &ExecutionRecord) {
    let e = &x.execution;
    let target = ComponentRef {
        org: &e.org,
        project: &e.project,
        component: &e.component,
    };
    let (ok, failed) = match state.store().get_schedule(target, &e.environment).await {
        Ok(Some(s)) => (
            s.settings.successful_history_limit,
            s.settings.failed_history_limit,
        ),
        Ok(None) => MANUAL_HISTORY,
        Err(err) => {
            debug!(execution = %e.id, error = %err, "reading the schedule for pruning failed");
            return;
        }
    };
    match state
        .store()
        .prune_executions(&x.component_id, &x.environment_id, ok, failed)
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            debug!(component = %e.component, env = %e.environment, removed = n, "pruned executions")
        }
        Err(err) => warn!(error = %err, "pruning executions failed"),
    }
}

/// Records the end of an execution (unless it ended already) and prunes the history.
async fn finish(
    state: &AppState,
    x: &ExecutionRecord,
    status: ExecutionStatus,
    exit_code: Option<i64>,
    reason: Option<&str>,
    logs: Option<&str>,
) {
    let end = ExecutionEnd {
        status,
        exit_code,
        reason,
        logs,
        at: state.tasks().now(),
    };
    match state.store().finish_execution(&x.execution.id, &end).await {
        Ok(true) => {
            info!(execution = %x.execution.id, component = %x.execution.component,
                  env = %x.execution.environment, status = status.as_str(), ?exit_code, "execution ended");
        }
        Ok(false) => debug!(execution = %x.execution.id, "execution had ended already"),
        Err(e) => {
            error!(execution = %x.execution.id, error = %e, "recording the execution's end failed")
        }
    }
    prune(state, x).await;
}

/// All output of a task container (the newest [`LOG_LIMIT`] bytes), or `None` when it is gone.
pub async fn container_logs(engine: &Plane, name: &str) -> Option<String> {
    let options = LogsOptions {
        tail: None,
        since: None,
        follow: false,
    };
    let mut stream = engine.logs(name, &options).await.ok()?;
    let mut out = String::new();
    while let Some(line) = stream.next().await {
        match line {
            Ok(l) => {
                out.push_str(&l.text);
                out.push('\n');
                if out.len() > LOG_LIMIT.saturating_mul(2) {
                    out = keep_tail(&out, LOG_LIMIT);
                }
            }
            Err(_) => break,
        }
    }
    Some(keep_tail(&out, LOG_LIMIT))
}

/// The last `limit` bytes of `s`, starting at a character boundary.
fn keep_tail(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    let mut start = s.len() - limit;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

/// Starts the runner of a recorded `running` execution (once per id). `overrides` are the
/// run's environment variables (never stored).
pub fn start_execution(
    state: &AppState,
    record: ExecutionRecord,
    work: DeploymentWork,
    overrides: Vec<(String, String)>,
) {
    let id = record.execution.id.clone();
    let (cancel_tx, cancel_rx) = watch::channel(None::<String>);
    let (done_tx, done_rx) = watch::channel(false);
    {
        let mut active = state.tasks().active();
        if active.contains_key(&id) {
            return;
        }
        active.insert(
            id.clone(),
            Active {
                cancel: cancel_tx,
                done: done_rx,
            },
        );
    }
    let state = state.clone();
    tokio::spawn(async move {
        let _guard = ActiveGuard {
            state: state.clone(),
            id,
            done: done_tx,
        };
        run_execution(&state, &record, &work, overrides, cancel_rx).await;
    });
}

/// Resolves when a cancel reason arrives (never, when the sender is gone).
async fn cancelled(rx: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(reason) = rx.borrow_and_update().clone() {
            return reason;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn run_execution(
    state: &AppState,
    record: &ExecutionRecord,
    work: &DeploymentWork,
    overrides: Vec<(String, String)>,
    mut cancel: watch::Receiver<Option<String>>,
) {
    let x = &record.execution;
    let mut spec = match deploy::spec_for(state, work).await {
        Ok(s) => s,
        Err(reason) => {
            let reason = format!("cannot prepare the task: {reason}");
            finish(
                state,
                record,
                ExecutionStatus::Failed,
                None,
                Some(&reason),
                None,
            )
            .await;
            return;
        }
    };
    // Overrides win over the environment's configs of the same name.
    for (name, value) in overrides {
        spec.env.retain(|(n, _)| *n != name);
        spec.env.push((name, value));
    }
    let deadline = record.active_deadline_seconds.map(|secs| {
        // An adopted execution has already used part of its time.
        let used = x
            .started_at
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|s| (state.tasks().now() - s.with_timezone(&Utc)).num_milliseconds())
            .unwrap_or(0)
            .max(0);
        let left = (secs * 1000 - used).max(1000);
        Duration::from_millis(u64::try_from(left).unwrap_or(1000))
    });
    let task = TaskSpec {
        workload: spec,
        execution: x.id.clone(),
        extra_args: x.args.clone(),
        active_deadline: deadline,
        log_limit: LOG_LIMIT,
    };
    let engine = match state.engine() {
        Ok(e) => e,
        Err(reason) => {
            let reason = format!("no container engine: {reason}");
            finish(
                state,
                record,
                ExecutionStatus::Failed,
                None,
                Some(&reason),
                None,
            )
            .await;
            return;
        }
    };
    // Cancelled between being recorded and starting: do not start it.
    match state.store().get_execution(&x.id).await {
        Ok(Some(now)) if now.execution.status != ExecutionStatus::Running => return,
        Ok(None) => return,
        _ => {}
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RolloutEvent>();
    let id = x.id.clone();
    let events = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            debug!(execution = %id, %event, "task");
        }
    });
    info!(execution = %x.id, component = %x.component, env = %x.environment,
          trigger = x.trigger.as_str(), "execution starting");
    let outcome = tokio::select! {
        r = engine.run_task(&task, &tx) => Ok(r),
        reason = cancelled(&mut cancel) => Err(reason),
    };
    drop(tx);
    let _ = events.await;
    match outcome {
        Ok(Ok(out)) if out.timed_out => {
            let secs = record.active_deadline_seconds.unwrap_or_default();
            let reason = format!("killed: the active deadline of {secs} s passed");
            finish(
                state,
                record,
                ExecutionStatus::TimedOut,
                Some(out.exit_code),
                Some(&reason),
                Some(&out.logs),
            )
            .await;
        }
        Ok(Ok(out)) if out.exit_code == 0 => {
            finish(
                state,
                record,
                ExecutionStatus::Succeeded,
                Some(0),
                None,
                Some(&out.logs),
            )
            .await;
        }
        Ok(Ok(out)) => {
            let reason = format!("exited with code {}", out.exit_code);
            finish(
                state,
                record,
                ExecutionStatus::Failed,
                Some(out.exit_code),
                Some(&reason),
                Some(&out.logs),
            )
            .await;
        }
        Ok(Err(e)) => {
            let reason = e.to_string();
            finish(
                state,
                record,
                ExecutionStatus::Failed,
                None,
                Some(&reason),
                None,
            )
            .await;
        }
        Err(reason) => {
            // The runner stopped waiting; keep what the container printed, then kill it.
            let name = key_of(x).task_container_name(&x.id);
            let logs = container_logs(engine, &name).await;
            if let Err(e) = engine.remove_instance(&name, CANCEL_GRACE).await {
                warn!(execution = %x.id, error = %e, "removing the cancelled task container failed");
            }
            finish(
                state,
                record,
                ExecutionStatus::Cancelled,
                None,
                Some(&reason),
                logs.as_deref(),
            )
            .await;
        }
    }
}

/// Cancels a running execution: kills its container and records it `cancelled` with `reason`.
/// False when it was not running.
pub async fn cancel(state: &AppState, id: &str, reason: &str) -> Result<bool, berth_store::Error> {
    if let Some(mut done) = state.tasks().signal_cancel(id, reason) {
        let _ = tokio::time::timeout(CANCEL_WAIT, done.wait_for(|d| *d)).await;
        return Ok(true);
    }
    // Not run by this server (another server, or not adopted yet): end it from here.
    let Some(record) = state.store().get_execution(id).await? else {
        return Ok(false);
    };
    if record.execution.status != ExecutionStatus::Running {
        return Ok(false);
    }
    let name = key_of(&record.execution).task_container_name(id);
    let mut logs = None;
    if let Ok(engine) = state.engine() {
        logs = container_logs(engine, &name).await;
        if let Err(e) = engine.remove_instance(&name, CANCEL_GRACE).await {
            warn!(execution = %id, error = %e, "removing the cancelled task container failed");
        }
    }
    finish(
        state,
        &record,
        ExecutionStatus::Cancelled,
        None,
        Some(reason),
        logs.as_deref(),
    )
    .await;
    Ok(true)
}

/// One pass of the scheduler at the clock's time: handles every due slot. Returns how many
/// slots were handled (run or recorded as missed) by this call.
pub async fn tick(state: &AppState) -> usize {
    // On Kubernetes the schedules are CronJobs (applied by the deploy pipeline and the
    // reconciler): firing them here too would run every slot twice.
    if state.engine().is_ok_and(Plane::is_kubernetes) {
        return 0;
    }
    let _one = state.tasks().tick_lock.lock().await;
    let now = state.tasks().now();
    let schedules = match state.store().list_schedules().await {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "scheduler: reading the schedules failed");
            return 0;
        }
    };
    let mut handled = 0;
    for s in schedules {
        match handle_schedule(state, &s, now).await {
            Ok(true) => handled += 1,
            Ok(false) => {}
            Err(e) => warn!(component = %s.component, env = %s.environment, error = %e,
                            "scheduler: handling the schedule failed"),
        }
    }
    handled
}

async fn handle_schedule(
    state: &AppState,
    s: &StoredSchedule,
    now: DateTime<Utc>,
) -> Result<bool, String> {
    let settings = &s.settings;
    if settings.suspended {
        return Ok(false);
    }
    let store = state.store();
    let schedule = Schedule::parse(&settings.expr, &settings.zone).map_err(|e| e.to_string())?;
    let next_after_now = schedule.next_after(now).map(|t| t.with_timezone(&Utc));
    let Some(due) = s.next_fire_at else {
        store
            .advance_schedule(&s.component_id, &s.environment_id, None, next_after_now)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(false);
    };
    if due > now {
        return Ok(false);
    }
    // The latest due slot runs (or is missed); earlier ones of a downtime are skipped.
    let (slot, skipped) = schedule
        .latest_between(due - chrono::Duration::seconds(1), now)
        .unwrap_or((due, 0));
    let target = ComponentRef {
        org: &s.org,
        project: &s.project,
        component: &s.component,
    };
    let work = current_release(state, target, &s.environment)
        .await
        .map_err(|e| e.to_string())?;
    let running: Vec<ExecutionRecord> = store
        .running_executions()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.component_id == s.component_id && r.environment_id == s.environment_id)
        .collect();
    let late = (now - slot).num_seconds();
    let mut status = ExecutionStatus::Running;
    let mut reason: Option<String> = None;
    if let Some(deadline) = settings.starting_deadline_seconds
        && late > deadline
    {
        status = ExecutionStatus::Missed;
        reason = Some(format!(
            "not started: {late} s late, past the starting deadline of {deadline} s (the server \
             was down or busy)"
        ));
    } else if work.is_none() {
        status = ExecutionStatus::Missed;
        reason = Some(format!(
            "not started: nothing is deployed to {}",
            s.environment
        ));
    } else if settings.concurrency == ConcurrencyPolicy::Forbid && !running.is_empty() {
        status = ExecutionStatus::Missed;
        reason = Some(format!(
            "skipped: execution {} was still running (concurrency policy forbid)",
            running[0].execution.id
        ));
    }
    if skipped > 0 {
        let note = format!(
            "{skipped} earlier slot(s) from {} on were skipped (the server was down)",
            berth_store::tasks::format_time(due)
        );
        reason = Some(match reason {
            Some(r) => format!("{r}; {note}"),
            None => note,
        });
    }
    let d = work.as_ref().map(|w| &w.deployment);
    let new = NewExecution {
        component_id: &s.component_id,
        environment_id: &s.environment_id,
        deployment_id: d.map(|d| d.id.as_str()),
        release_id: d.map(|d| d.release.as_str()),
        image: d.map(|d| d.image.as_str()),
        digest: d.map(|d| d.digest.as_str()),
        trigger: ExecutionTrigger::Schedule,
        actor: SCHEDULER_ACTOR,
        args: &[],
        env_names: &[],
        slot: Some(slot),
        status,
        reason: reason.as_deref(),
        active_deadline_seconds: settings.active_deadline_seconds,
        at: now,
    };
    let Some(record) = store
        .claim_slot(Some(due), next_after_now, &new)
        .await
        .map_err(|e| e.to_string())?
    else {
        debug!(component = %s.component, env = %s.environment, "slot handled elsewhere");
        return Ok(false);
    };
    info!(component = %s.component, env = %s.environment, slot = %slot, status = status.as_str(),
          execution = %record.execution.id, "scheduled slot");
    match (status, work) {
        (ExecutionStatus::Running, Some(work)) => {
            if settings.concurrency == ConcurrencyPolicy::Replace {
                let why = format!(
                    "replaced by execution {} (concurrency policy replace)",
                    record.execution.id
                );
                for old in &running {
                    if let Err(e) = cancel(state, &old.execution.id, &why).await {
                        warn!(execution = %old.execution.id, error = %e, "replacing failed");
                    }
                }
            }
            start_execution(state, record, work, Vec::new());
        }
        _ => prune(state, &record).await,
    }
    Ok(true)
}

/// At start: adopt the executions the store says are running, or close them with the reason.
pub async fn recover(state: &AppState) {
    let running = match state.store().running_executions().await {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "reading running executions failed");
            return;
        }
    };
    if running.is_empty() {
        return;
    }
    let containers: Result<Vec<String>, String> = match state.engine() {
        Ok(engine) => engine
            .list_managed()
            .await
            .map(|all| all.into_iter().map(|i| i.name).collect())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_owned()),
    };
    for record in running {
        let x = &record.execution;
        if state.tasks().active().contains_key(&x.id) {
            continue;
        }
        let name = key_of(x).task_container_name(&x.id);
        let work = match &record.deployment_id {
            Some(d) => state.store().get_deployment(d).await.ok().flatten(),
            None => None,
        };
        let failed = match (&containers, work) {
            (Err(e), _) => Some(format!(
                "the server restarted and the container engine does not answer ({e}); the \
                 outcome is unknown"
            )),
            (Ok(names), _) if !names.contains(&name) => Some(
                "the server stopped while it ran and its container is gone; the outcome is \
                 unknown"
                    .to_owned(),
            ),
            (Ok(_), None) => Some("its deployment no longer exists".to_owned()),
            (Ok(_), Some(work)) => {
                info!(execution = %x.id, container = %name, "adopting a running execution after a restart");
                if let Err(e) = state
                    .store()
                    .note_execution(&x.id, "adopted after a server restart")
                    .await
                {
                    warn!(execution = %x.id, error = %e, "noting the adoption failed");
                }
                start_execution(state, record.clone(), work, Vec::new());
                None
            }
        };
        if let Some(reason) = failed {
            warn!(execution = %x.id, %reason, "closing an execution after a restart");
            finish(
                state,
                &record,
                ExecutionStatus::Failed,
                None,
                Some(&reason),
                None,
            )
            .await;
        }
    }
}

/// Runs when this server starts to lead (after the deploy runners): recovery, then a tick
/// every second, until the term ends.
pub fn start(state: AppState) {
    let s = state.clone();
    state.leadership().spawn_led(async move {
        let state = s;
        recover(&state).await;
        loop {
            tick(&state).await;
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = state.tasks().wake.notified() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cut_at_char_boundary() {
        assert_eq!(keep_tail("hello", 10), "hello");
        assert_eq!(keep_tail("hello", 2), "lo");
        assert_eq!(keep_tail("aé!", 2), "!");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::minutes(5));
        assert_eq!(c.now(), t0 + chrono::Duration::minutes(5));
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}
