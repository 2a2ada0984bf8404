//! Restart safety on the real engine: `kill -9` of the server at several points of a rollout,
//! then a restart converges — the newest deployment finishes, exactly one instance runs, the
//! gateway answers with the new version. And an engine that is away: deployments wait and
//! resume when it returns.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProc, add_local_registry, http, json_out, ok, stdout};
use serde_json::Value;

fn containers(component: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}} {{.Labels}}", "--filter"])
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
        for line in containers(&self.0) {
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        }
    }
}

fn setup(server: &ServerProc, env: &berth_testkit::TestEnv, component: &str) {
    add_local_registry(server, env, None);
    ok(server.cli(&["project", "create", "shop"]));
    ok(server.cli(&[
        "component",
        "create",
        component,
        "--project",
        "shop",
        "--type",
        "service",
        "--registry",
        "local",
        "--image",
        &format!("{}/test/web:v1", env.registry),
        "--port",
        "8080",
    ]));
}

fn wait_status(server: &ServerProc, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let d = json_out(&ok(server.cli(&["deployment", "get", id, "-o", "json"])));
        if matches!(
            d["status"].as_str(),
            Some("ready" | "failed" | "rolled-back" | "superseded")
        ) || Instant::now() > deadline
        {
            return d;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kill_9_during_rollouts_then_restart_converges() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-kill-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let envs = [("BERTH_READY_TIMEOUT", "20"), ("BERTH_DRAIN_MS", "300")];
    let mut server = ServerProc::start_with(dir.path(), &envs);
    setup(&server, &env, &component);
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));

    // Kill at different moments of v1 → v2 → v1 … rollouts.
    let tags = ["v2", "v1", "v2"];
    for (round, (delay_ms, tag)) in [0u64, 120, 400].iter().zip(tags).enumerate() {
        let accepted = json_out(&ok(server.cli(&[
            "deploy",
            "--project",
            "shop",
            "--component",
            &component,
            "--tag",
            tag,
            "-o",
            "json",
        ])));
        let id = accepted["deploymentId"].as_str().unwrap().to_owned();
        std::thread::sleep(Duration::from_millis(*delay_ms));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();

        server = ServerProc::start_with(dir.path(), &envs);
        let d = wait_status(&server, &id, Duration::from_secs(60));
        assert_eq!(d["status"], "ready", "round {round}: {d}");
        // Give the reconciler's start-up sweep a moment, then count by label.
        let deadline = Instant::now() + Duration::from_secs(20);
        let running = loop {
            let c = containers(&component);
            if c.len() == 1 || Instant::now() > deadline {
                break c;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            running.len(),
            1,
            "round {round}: no duplicate, no orphan: {running:?}"
        );
        assert!(
            running[0].contains(d["id"].as_str().unwrap()),
            "round {round}: {running:?} vs {d}"
        );
        let url = format!("{}/default/shop/{component}/development/", server.gateway);
        let body = http().get(&url).send().unwrap().text().unwrap();
        assert_eq!(body.trim(), format!("hello from {tag}"), "round {round}");
    }
}

#[test]
fn engine_away_deployments_wait_and_resume() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-away-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    // The engine "socket" is a symlink that does not exist yet.
    let link = dir.path().join("engine.sock");
    let engine = format!("unix://{}", link.display());
    let server = ServerProc::start_with(dir.path(), &[("BERTH_ENGINE", engine.as_str())]);
    let ready: Value = http()
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["engine"]["ok"], false, "{ready}");
    setup(&server, &env, &component);
    let accepted = json_out(&ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "-o",
        "json",
    ])));
    let id = accepted["deploymentId"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let d = json_out(&ok(server.cli(&["deployment", "get", &id, "-o", "json"])));
    assert!(
        matches!(d["status"].as_str(), Some("pending" | "pulling")),
        "{d}"
    );
    let events = stdout(&ok(server.cli(&[
        "deployment",
        "events",
        &id,
        "-o",
        "json",
    ])));
    assert!(
        events.contains("unavailable") && events.contains("retrying"),
        "{events}"
    );

    // The engine comes back: the deployment resumes by itself.
    let real = env
        .docker_host
        .clone()
        .unwrap_or_else(|| "unix:///run/podman/podman.sock".into());
    std::os::unix::fs::symlink(real.trim_start_matches("unix://"), &link).unwrap();
    let d = wait_status(&server, &id, Duration::from_secs(90));
    assert_eq!(d["status"], "ready", "{d}");
    let ready: Value = http()
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["engine"]["ok"], true, "{ready}");
}

#[test]
fn a_dead_instance_is_started_again_with_an_event() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let component = format!("berth-it-live-{}", std::process::id());
    let _cleanup = Cleanup(component.clone());
    let server = ServerProc::start(dir.path());
    setup(&server, &env, &component);
    let d = json_out(&ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
        "-o",
        "json",
    ])));
    let before = containers(&component);
    assert_eq!(before.len(), 1, "{before:?}");
    let name = before[0].split_whitespace().next().unwrap().to_owned();
    // The process dies (as if crashed): the reconciler's liveness pass brings it back.
    ok(Command::new("podman")
        .args(["kill", &name])
        .output()
        .unwrap());
    let url = format!("{}/default/shop/{component}/development/", server.gateway);
    let id = d["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let events = stdout(&ok(server.cli(&[
            "deployment",
            "events",
            &id,
            "-o",
            "json",
        ])));
        let body = http()
            .get(&url)
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .unwrap_or_default();
        if events.contains("liveness") && body.contains("hello from v1") {
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {events} {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(containers(&component).len(), 1, "no duplicate");
}
