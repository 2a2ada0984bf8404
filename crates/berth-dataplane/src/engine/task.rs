//! Run-to-completion tasks: one container per execution, waited for, logs collected, removed.

use std::time::Duration;

use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{
    KillContainerOptionsBuilder, LogsOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};

use super::workload::{Plan, base_labels};
use super::{Client, Engine, is_status, label, mounts};
use crate::{Error, Result, RolloutEvent, TaskOutcome, TaskSpec};

/// How long a killed task may take to be reported as stopped.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Task containers are done when removed: no grace needed.
const REMOVE_GRACE: Duration = Duration::from_secs(1);

/// `{container_prefix}-task-{execution}`.
fn task_name(task: &TaskSpec) -> String {
    task.workload.key.task_container_name(&task.execution)
}

/// See [`crate::DataPlane::run_task`]. Running the same execution again adopts its container
/// when it still runs (or has finished but was not collected), so a restarted server does not
/// start a task twice.
pub(crate) async fn run(
    engine: &Engine,
    task: &TaskSpec,
    events: &UnboundedSender<RolloutEvent>,
) -> Result<TaskOutcome> {
    let spec = &task.workload;
    if task.execution.is_empty() {
        return Err(Error::Invalid("no execution id".into()));
    }
    mounts::validate(&spec.files)?;
    let c = engine.client().await?;
    engine
        .pull_image(&spec.image, spec.auth.as_ref(), spec.pull_policy, events)
        .await?;
    engine.ensure_network_with(&c, &spec.key).await?;
    let name = task_name(task);

    let adopt = match engine.inspect(&c, &name).await {
        Ok(info) => {
            let status = info.state.as_ref().and_then(|s| s.status.as_ref());
            let same = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(label::EXECUTION))
                .is_some_and(|e| *e == task.execution);
            same && matches!(
                status,
                Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::EXITED)
            )
        }
        Err(e) if is_status(&e, 404) => false,
        Err(e) => return Err(engine.engine_error(e)),
    };
    if adopt {
        info!(container = %name, "adopting the running execution");
    } else {
        let mut labels = base_labels(spec, engine.owner());
        labels.insert(label::EXECUTION.to_owned(), task.execution.clone());
        let plan = Plan {
            name: name.clone(),
            labels,
            cmd: task_cmd(engine, &c, task).await?,
            alias: false,
            publish: false,
        };
        let _ = events.send(RolloutEvent::Starting {
            instance: name.clone(),
        });
        engine.create_and_start(&c, spec, &plan).await?;
    }

    let finished = match task.active_deadline {
        Some(deadline) => tokio::time::timeout(deadline, wait_exit(engine, &c, &name))
            .await
            .ok(),
        None => Some(wait_exit(engine, &c, &name).await),
    };
    let timed_out = match finished {
        Some(r) => {
            r?;
            false
        }
        None => {
            info!(container = %name, "active deadline passed; killing");
            let kill = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            if let Err(e) = c.docker.kill_container(&name, Some(kill)).await {
                debug!(container = %name, error = %e, "kill failed (exited meanwhile?)");
            }
            let _ = tokio::time::timeout(KILL_WAIT, wait_exit(engine, &c, &name)).await;
            true
        }
    };

    let info = engine
        .inspect(&c, &name)
        .await
        .map_err(|e| engine.engine_error(e))?;
    let exit_code = info.state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
    let logs = collect_logs(&c, &name, task.log_limit).await;
    engine.remove_container(&c, &name, REMOVE_GRACE).await?;
    let _ = events.send(RolloutEvent::Removed {
        instance: name.clone(),
    });
    info!(container = %name, exit_code, timed_out, "task finished");
    Ok(TaskOutcome {
        exit_code,
        timed_out,
        logs,
    })
}

/// CMD of the task container: `args` (or the image's CMD) followed by `extra_args`, so extra
/// arguments land after ENTRYPOINT and CMD. As with Docker, replacing the entrypoint drops the
/// image's CMD.
async fn task_cmd(engine: &Engine, c: &Client, task: &TaskSpec) -> Result<Option<Vec<String>>> {
    let spec = &task.workload;
    let mut cmd = match (&spec.args, &spec.command) {
        (Some(args), _) => args.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            if task.extra_args.is_empty() {
                return Ok(None);
            }
            c.docker
                .inspect_image(&spec.image)
                .await
                .map_err(|e| engine.engine_error(e))?
                .config
                .and_then(|c| c.cmd)
                .unwrap_or_default()
        }
    };
    cmd.extend(task.extra_args.iter().cloned());
    Ok((spec.args.is_some() || !cmd.is_empty()).then_some(cmd))
}

/// Waits until the container stops running.
async fn wait_exit(engine: &Engine, c: &Client, name: &str) -> Result<()> {
    use bollard::errors::Error as B;
    loop {
        let mut stream = c.docker.wait_container(name, None::<WaitContainerOptions>);
        match stream.next().await {
            // bollard reports non-zero exits as errors; the code is read from inspect later.
            Some(Ok(_)) | Some(Err(B::DockerContainerWaitError { .. })) | None => return Ok(()),
            Some(Err(e)) if is_status(&e, 404) => return Ok(()),
            // The client's response timeout: the engine has not answered yet, ask again.
            Some(Err(B::RequestTimeoutError)) => continue,
            Some(Err(e)) => return Err(engine.engine_error(e)),
        }
    }
}

/// All output of the container (stdout and stderr in order), keeping the last `limit` bytes.
async fn collect_logs(c: &Client, name: &str, limit: usize) -> String {
    if limit == 0 {
        return String::new();
    }
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut buf: Vec<u8> = Vec::new();
    let mut stream = c.docker.logs(name, Some(options));
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(frame) => {
                buf.extend_from_slice(frame.as_ref());
                // Trim now and then rather than per frame.
                if buf.len() > limit.saturating_mul(2).max(64 * 1024) {
                    buf.drain(..buf.len() - limit);
                }
            }
            Err(e) => {
                debug!(container = %name, error = %e, "reading task logs");
                break;
            }
        }
    }
    keep_tail(buf, limit)
}

/// The last `limit` bytes, starting at a character boundary.
fn keep_tail(mut buf: Vec<u8>, limit: usize) -> String {
    if buf.len() > limit {
        buf.drain(..buf.len() - limit);
        let start = buf
            .iter()
            .position(|b| (*b & 0xC0) != 0x80)
            .unwrap_or(buf.len());
        buf.drain(..start);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_cut_at_a_char_boundary() {
        assert_eq!(keep_tail(b"hello".to_vec(), 10), "hello");
        assert_eq!(keep_tail(b"hello".to_vec(), 3), "llo");
        // "é" is two bytes: cutting inside it drops the orphan continuation byte.
        assert_eq!(keep_tail("aé!".as_bytes().to_vec(), 2), "!");
        assert_eq!(keep_tail("aé!".as_bytes().to_vec(), 3), "é!");
    }
}
