//! Restart safety on the real engine: `kill -9` of the server in each phase of a rollout
//! (pulling, starting, switching, draining), then a restart converges — the deployment ends as
//! it must, exactly one instance runs, the gateway answers with the serving version. And an engine that is away: deployments wait and
//! resume when it returns.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProc, add_local_registry, get_body, http, json_out, ok, push_unique, stdout};
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

/// The deployment as the API returns it (the CLI takes too long to start for fast polling).
fn deployment(server: &ServerProc, id: &str) -> Value {
    http()
        .get(format!("{}/api/v1/deployments/{id}", server.url))
        .bearer_auth(server.admin_token())
        .timeout(Duration::from_secs(5))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Polls the deployment until the API reports it in `phase`; fails when it finishes first or
/// takes a minute (the phase was never observed, so a kill there would prove nothing).
fn wait_phase(server: &ServerProc, id: &str, phase: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = deployment(server, id);
        if d["phase"] == phase {
            return d;
        }
        assert!(
            !matches!(
                d["status"].as_str(),
                Some("ready" | "failed" | "rolled-back" | "superseded")
            ),
            "finished before phase {phase} was observed: {d}"
        );
        assert!(Instant::now() < deadline, "never in phase {phase}: {d}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The release labels of the component's containers (running or not).
fn releases(component: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--format",
            "{{index .Labels \"berth.release\"}}",
            "--filter",
        ])
        .arg(format!("label=berth.component={component}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// An image of its own pushed to the test registry as `repo:tag` (see `common::push_unique`):
/// a deploy of it has to pull (the cached test images are never pulled again, so their
/// pulling phase never happens).
fn push_unique_to_test_registry(
    env: &berth_testkit::TestEnv,
    base: &str,
    repo: &str,
    tag: &str,
) -> String {
    let image = format!("{}/{repo}:{tag}", env.registry);
    let creds = format!("{}:{}", env.user, env.password);
    push_unique(env, base, &image, &["--creds", &creds]);
    image
}

/// Removes the images of a repository from the engine (by id: pulled by digest they have no tag).
struct RemoveImages(String);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        let out = Command::new("podman")
            .args(["images", "--format", "{{.Repository}} {{.ID}}"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((repo, id)) = line.split_once(' ')
                && repo == self.0
            {
                let _ = Command::new("podman").args(["rmi", "-f", id]).output();
            }
        }
    }
}

/// How the deployment of a round must end after the restart.
struct Round {
    phase: &'static str,
    /// Server settings that make the phase last until the kill.
    hold: &'static [(&'static str, &'static str)],
    /// What to deploy: `--image REF`.
    deploy: Vec<String>,
    /// The deployment's final status after the restart.
    status: &'static str,
    /// The version the gateway serves afterwards.
    serves: &'static str,
}

/// `kill -9` of the server in each rollout phase — observed through the API, not guessed from
/// timing — then a restart converges: the deployment ends as it must (ready, or rolled back
/// with the reason), exactly one container of the component runs, of the release that serves,
/// and the gateway answers with that version; while the resumed rollout runs, the release
/// that served before the kill keeps serving.
#[test]
fn kill_9_in_each_rollout_phase_then_restart_converges() {
    let Some(env) = berth_testkit::env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let component = format!("berth-it-kill-{pid}");
    let _cleanup = Cleanup(component.clone());
    let repo = format!("test/berth-it-kill-{pid}");
    let _images = RemoveImages(format!("{}/{repo}", env.registry));
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let unique = push_unique_to_test_registry(&env, "test/web:v2", &repo, &nonce);
    let never_ready = format!("{}/test/never-ready:latest", env.registry);
    // By image: `--tag` would apply to the component's image, never-ready since round 2.
    let web = |tag: &str| format!("{}/test/web:{tag}", env.registry);

    let base = [("BERTH_READY_TIMEOUT", "20"), ("BERTH_DRAIN_MS", "300")];
    let mut server = ServerProc::start_with(dir.path(), &base);
    setup(&server, &env, &component);
    ok(server.cli(&[
        "deploy",
        "--project",
        "shop",
        "--component",
        &component,
        "--wait",
    ]));
    let url = format!("{}/default/shop/{component}/development/", server.gateway);
    assert_eq!(get_body(&url).1.trim(), "hello from v1");

    let rounds = [
        // Pulling is held at its start (a pull of a small image from a local registry is over
        // in milliseconds): the image is not in the engine yet and the restart pulls it.
        Round {
            phase: "pulling",
            hold: &[("BERTH_FAULT_HOLD", "pulling:120000")],
            deploy: vec!["--image".into(), unique],
            status: "ready",
            serves: "hello from v2",
        },
        // A release that never gets ready stays in starting until its ready timeout; resumed
        // after the restart it is rolled back with the reason, and v2 keeps serving.
        Round {
            phase: "starting",
            hold: &[("BERTH_READY_TIMEOUT", "120")],
            deploy: vec!["--image".into(), never_ready],
            status: "rolled-back",
            serves: "hello from v2",
        },
        // The switch itself is instantaneous: held between readiness and the route switch.
        Round {
            phase: "switching",
            hold: &[("BERTH_FAULT_HOLD", "switching:120000")],
            deploy: vec!["--image".into(), web("v1")],
            status: "ready",
            serves: "hello from v1",
        },
        // A long drain: the new release serves, the old one still runs.
        Round {
            phase: "draining",
            hold: &[("BERTH_DRAIN_MS", "120000")],
            deploy: vec!["--image".into(), web("v2")],
            status: "ready",
            serves: "hello from v2",
        },
    ];
    for round in rounds {
        let phase = round.phase;
        // The release serving before this round's deployment.
        let before = json_out(&ok(server.cli(&[
            "deployment",
            "list",
            "--project",
            "shop",
            "--component",
            &component,
            "-o",
            "json",
        ])));
        let serving_before = before
            .as_array()
            .or_else(|| before["items"].as_array())
            .unwrap()
            .iter()
            .find(|d| d["status"] == "ready")
            .unwrap_or_else(|| panic!("{phase}: nothing serves: {before}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let envs: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !round.hold.iter().any(|(h, _)| h == k))
            .chain(round.hold)
            .copied()
            .collect();
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        server = ServerProc::start_with(dir.path(), &envs);

        let mut args = vec![
            "deploy",
            "--project",
            "shop",
            "--component",
            component.as_str(),
        ];
        args.extend(round.deploy.iter().map(String::as_str));
        args.extend(["-o", "json"]);
        let accepted = json_out(&ok(server.cli(&args)));
        let id = accepted["deploymentId"].as_str().unwrap().to_owned();
        let seen = wait_phase(&server, &id, phase);
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();

        let short = [("BERTH_READY_TIMEOUT", "5"), ("BERTH_DRAIN_MS", "300")];
        server = ServerProc::start_with(dir.path(), &short);
        let url = format!("{}/default/shop/{component}/development/", server.gateway);
        // While the resumed rollout runs, what served before the kill answers: the release
        // that was ready, or (killed after the switch) the new one.
        let deadline = Instant::now() + Duration::from_secs(60);
        let d = loop {
            let d = deployment(&server, &id);
            if matches!(
                d["status"].as_str(),
                Some("ready" | "failed" | "rolled-back" | "superseded")
            ) {
                break d;
            }
            let (code, body) = get_body(&url);
            if !(code == 200 && body.starts_with("hello from v")) {
                panic!(
                    "{phase}: during the resumed rollout the gateway answered {code} {body:?} ({d}); server log:\n{}",
                    server.drain_logs().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "{phase}: never finished: {d}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(d["status"], round.status, "{phase}: {d} (killed at {seen})");
        assert!(d["phase"].is_null(), "{phase}: finished with a phase: {d}");
        let serving = if round.status == "ready" {
            id.clone()
        } else {
            let reason = d["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("did not get ready"),
                "{phase}: the reason says why: {d}"
            );
            serving_before.clone()
        };
        // No orphan, no duplicate: exactly the serving release's container is left (removals
        // of the old or failed instances are part of the rollout, so this settles quickly).
        let deadline = Instant::now() + Duration::from_secs(20);
        let left = loop {
            let left = releases(&component);
            if left == std::slice::from_ref(&serving) || Instant::now() > deadline {
                break left;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            left,
            std::slice::from_ref(&serving),
            "{phase}: containers left by release"
        );
        let (code, body) = get_body(&url);
        assert_eq!(
            (code, body.trim()),
            (200, round.serves),
            "{phase}: the gateway"
        );
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
