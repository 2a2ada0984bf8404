//! Tasks end to end with the real binary, engine and registry: Run with Arguments through the
//! CLI (`--wait` exits with the task's exit code), cancelling, one real schedule firing at the
//! minute boundary, and `kill -9` of the server during runs (adopted, or closed as failed with
//! the reason; never two runs for one slot). The scheduler's finer behaviour (policies,
//! deadlines, missed slots, DST) is driven by an injected clock in
//! crates/berth-server/tests/tasks.rs.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProc, add_local_registry, json_out, ok, stderr, stdout};
use serde_json::Value;

/// Names of the containers of a component (all states).
fn containers(component: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=berth.component={component}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers(&self.0) {
            let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        }
    }
}

fn setup(server: &ServerProc, env: &berth_testkit::TestEnv, component: &str, kind: &str) {
    add_local_registry(server, env, None);
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
        "component",
        "create",
        component,
        "--project",
        "shop",
        "--type",
        kind,
        "--registry",
        "local",
        "--image",
        &format!("{}/test/task:latest", env.registry),
    ]));
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        component,
        "--wait",
    ]));
}

fn execution(server: &ServerProc, id: &str) -> Value {
    json_out(&ok(server.cli(&["task", "get", id, "-o", "json"])))
}

/// Waits until an execution is no longer running.
fn ended(server: &ServerProc, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let x = execution(server, id);
        if x["status"] != "running" {
            return x;
        }
        assert!(Instant::now() < deadline, "execution {id} did not end: {x}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the execution's container has printed its first line.
fn started(server: &ServerProc, id: &str) {
    for _ in 0..300 {
        let logs = stdout(&ok(server.cli(&["task", "logs", id])));
        if logs.contains("task: argc") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("execution {id} never started");
}

fn task_containers(component: &str) -> Vec<String> {
    containers(component)
        .into_iter()
        .filter(|n| n.contains("-task-"))
        .collect()
}

#[test]
fn run_with_arguments_exit_codes_and_cancel() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-task-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let server = ServerProc::start(dir.path());
    setup(&server, &env, &component, "manual-task");
    let base = ["--project", "shop", "--component", component.as_str()];
    let run = |extra: &[&str]| {
        let mut args = vec!["task", "run"];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        server.cli(&args)
    };

    // Run with Arguments: shell-like quoting, appended after the ENTRYPOINT; a non-zero exit
    // is the CLI's exit code.
    let out = run(&[
        "--args",
        "first 'two words' \"say \\\"hi\\\"\"",
        "--arg",
        "--verbatim=$HOME",
        "--env-var",
        "EXIT_CODE=3",
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let logs = stdout(&out);
    for line in [
        "task: argc=4",
        "task: arg[1]=first",
        "task: arg[2]=two words",
        "task: arg[3]=say \"hi\"",
        "task: arg[4]=--verbatim=$HOME",
        "task: exiting with 3",
    ] {
        assert!(logs.contains(line), "{line:?} missing in:\n{logs}");
    }
    assert!(stderr(&out).contains("failed"), "{}", stderr(&out));
    assert!(stderr(&out).contains("exit code 3"), "{}", stderr(&out));

    // Success: exit 0, JSON with the logs.
    let out = ok(run(&["--wait", "-o", "json"]));
    let x = json_out(&out);
    assert_eq!(x["status"], "succeeded", "{x}");
    assert_eq!(x["exitCode"], 0);
    assert_eq!(x["trigger"], "manual");
    assert!(x["logs"].as_str().unwrap().contains("task: argc=0"), "{x}");

    // Cancel a running execution: its container is killed, the logs so far are kept.
    let x = json_out(&ok(run(&["--env-var", "SLEEP=120", "-o", "json"])));
    let id = x["id"].as_str().unwrap().to_owned();
    assert_eq!(x["status"], "running");
    started(&server, &id);
    assert_eq!(task_containers(&component).len(), 1);
    let x = json_out(&ok(server.cli(&["task", "cancel", &id, "-o", "json"])));
    assert_eq!(x["status"], "cancelled", "{x}");
    assert!(task_containers(&component).is_empty(), "container killed");
    let logs = stdout(&ok(server.cli(&["task", "logs", &id])));
    assert!(logs.contains("task: argc=0"), "{logs}");
    let again = server.cli(&["task", "cancel", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already ended"),
        "{}",
        stderr(&again)
    );

    // History with filters and the counts of the last 30 days.
    let list = json_out(&ok(server.cli(&[
        "task",
        "executions",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    let statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "succeeded", "failed"], "{list}");
    assert_eq!(list["items"][2]["exitCode"], 3);
    assert_eq!(
        list["items"][2]["args"],
        serde_json::json!(["first", "two words", "say \"hi\"", "--verbatim=$HOME"])
    );
    assert_eq!(
        list["items"][2]["envOverrides"],
        serde_json::json!(["EXIT_CODE"])
    );
    assert_eq!(list["counts"]["total"], 3, "{list}");
    let failed = json_out(&ok(server.cli(&[
        "task",
        "executions",
        "--project",
        "shop",
        "--component",
        &component,
        "--status",
        "failed",
        "-o",
        "json",
    ])));
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);

    // Documented in the OpenAPI document.
    let doc: Value = common::http()
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in [
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/environments/{env}/schedule",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/runs",
        "/api/v1/orgs/{org}/projects/{project}/components/{component}/executions",
        "/api/v1/executions/{id}",
        "/api/v1/executions/{id}/logs",
        "/api/v1/executions/{id}/cancel",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    for schema in [
        "Execution",
        "ExecutionList",
        "TaskSchedule",
        "PutSchedule",
        "RunRequest",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} documented"
        );
    }

    // Bad input.
    let out = run(&["--args", "a 'b"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unterminated single quote"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&[
        "task",
        "schedule",
        "set",
        "--project",
        "shop",
        "--component",
        &component,
        "--cron",
        "@daily",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only scheduled-task"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schedule_fires_for_real_and_kill_9_is_survived() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-sched-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let mut server = ServerProc::start(dir.path());
    setup(&server, &env, &component, "scheduled-task");
    let target = ["--project", "shop", "--component", component.as_str()];
    let with = |head: &[&str], tail: &[&str]| {
        let mut v: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        v.extend(target.iter().map(|s| s.to_string()));
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    };
    let cli = |server: &ServerProc, args: Vec<String>| {
        server.cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    ok(cli(
        &server,
        with(
            &["config", "set"],
            &["--env", "development", "SLEEP=8", "--no-apply"],
        ),
    ));

    // Bad schedules: 422 naming the field.
    for (extra, field, message) in [
        (
            &["--cron", "0 24 * * *"][..],
            "schedule",
            "field 2 (hour): 24 is out of range 0-23",
        ),
        (
            &["--cron", "@daily", "--tz", "Nowhere/Special"][..],
            "timeZone",
            "unknown time zone",
        ),
        (
            &["--cron", "@daily", "--starting-deadline", "-5"][..],
            "startingDeadlineSeconds",
            "at least 1",
        ),
    ] {
        let mut tail = extra.to_vec();
        tail.extend(["-o", "json"]);
        let out = cli(&server, with(&["task", "schedule", "set"], &tail));
        assert!(!out.status.success());
        let err = json_out(&out);
        assert_eq!(err["error"]["field"], field, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(message),
            "{err}"
        );
    }

    // Every minute: the next boundary is at most 60 s away.
    let s = json_out(&ok(cli(
        &server,
        with(
            &["task", "schedule", "set"],
            &["--cron", "* * * * *", "--tz", "Asia/Kolkata", "-o", "json"],
        ),
    )));
    assert_eq!(s["timeZone"], "Asia/Kolkata");
    assert!(s["nextFireAt"].as_str().unwrap().ends_with("+05:30"), "{s}");
    let deadline = Instant::now() + Duration::from_secs(75);
    let scheduled = loop {
        let list = json_out(&ok(cli(
            &server,
            with(
                &["task", "executions"],
                &["--trigger", "schedule", "-o", "json"],
            ),
        )));
        if let Some(x) = list["items"].as_array().unwrap().first() {
            break x.clone();
        }
        assert!(Instant::now() < deadline, "no scheduled run within 75 s");
        std::thread::sleep(Duration::from_millis(250));
    };
    let id = scheduled["id"].as_str().unwrap().to_owned();
    let slot = scheduled["slot"].as_str().unwrap().to_owned();
    assert!(slot.ends_with(":00.000Z"), "{slot}");
    started(&server, &id);

    // kill -9 while it runs, then restart: the execution is adopted and finishes.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(
        task_containers(&component).len(),
        1,
        "the task outlives the server"
    );
    let server = ServerProc::start(dir.path());
    ok(cli(&server, with(&["task", "schedule", "suspend"], &[])));
    let x = ended(&server, &id, Duration::from_secs(60));
    assert_eq!(x["status"], "succeeded", "{x}");
    assert_eq!(x["reason"], "adopted after a server restart", "{x}");
    let logs = stdout(&ok(server.cli(&["task", "logs", &id])));
    assert!(logs.contains("task: exiting with 0"), "{logs}");
    let all = json_out(&ok(cli(
        &server,
        with(&["task", "executions"], &["-o", "json"]),
    )));
    let same_slot = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["slot"] == slot.as_str())
        .count();
    assert_eq!(same_slot, 1, "one run per slot: {all}");

    // kill -9, and the container disappears meanwhile: closed as failed with the reason.
    let x = json_out(&ok(cli(
        &server,
        with(&["task", "run"], &["--env-var", "SLEEP=120", "-o", "json"]),
    )));
    let lost = x["id"].as_str().unwrap().to_owned();
    started(&server, &lost);
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for name in task_containers(&component) {
        ok(Command::new("podman")
            .args(["rm", "-f", &name])
            .output()
            .unwrap());
    }
    let server = ServerProc::start(dir.path());
    let x = ended(&server, &lost, Duration::from_secs(30));
    assert_eq!(x["status"], "failed", "{x}");
    assert!(
        x["reason"]
            .as_str()
            .unwrap()
            .contains("its container is gone"),
        "{x}"
    );

    let s = json_out(&ok(cli(
        &server,
        with(&["task", "schedule", "get"], &["-o", "json"]),
    )));
    assert_eq!(s["suspended"], true);
    ok(cli(&server, with(&["task", "schedule", "delete"], &[])));
}
