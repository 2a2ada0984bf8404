//! The engine driver against the real engine and registry of `scripts/test-env`.
//!
//! Every object is named `berth-it-…` (org `it`), lives in a project unique to the test and
//! process, and is removed by a drop guard. Without the environment the tests skip, unless
//! `BERTH_REQUIRE_ENGINE=1`.
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_dataplane::engine::{Engine, label};
use berth_dataplane::{
    DataPlane, Error, FileMount, Instance, InstanceState, LogStream, LogsOptions, Probe,
    ProbeAction, PullAuth, PullPolicy, RolloutEvent, RouteSwitch, TaskSpec, WorkloadKey,
    WorkloadSpec,
};
use berth_testkit::TestEnv;
use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

const ORG: &str = "it";
const ENV: &str = "dev";

/// One test's engine, projects and data root; removes everything it made when dropped.
struct Fixture {
    env: TestEnv,
    engine: Engine,
    docker: Docker,
    projects: Vec<String>,
    data: tempfile::TempDir,
}

fn fixture(name: &str, projects: usize) -> Option<Fixture> {
    let env = berth_testkit::env()?;
    let endpoint = env
        .docker_host
        .clone()
        .unwrap_or_else(|| "unix:///run/podman/podman.sock".into());
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::connect(&endpoint)
        .unwrap()
        .with_data_root(data.path().join("mounts"));
    let socket = endpoint.trim_start_matches("unix://").to_owned();
    let docker = Docker::connect_with_unix(&socket, 60, bollard::API_DEFAULT_VERSION).unwrap();
    let pid = std::process::id();
    let projects = (0..projects)
        .map(|i| format!("{name}{}-{pid}", (b'a' + i as u8) as char))
        .collect();
    Some(Fixture {
        env,
        engine,
        docker,
        projects,
        data,
    })
}

impl Fixture {
    fn key(&self, project: usize, component: &str) -> WorkloadKey {
        WorkloadKey {
            org: ORG.into(),
            project: self.projects[project].clone(),
            component: component.into(),
            env: ENV.into(),
        }
    }

    fn auth(&self) -> PullAuth {
        PullAuth {
            username: self.env.user.clone(),
            password: self.env.password.clone(),
            server: self.env.registry.clone(),
        }
    }

    /// `127.0.0.1:5000/test/web@sha256:…` for `test/web:v1`, from the environment's list.
    fn image(&self, tagged: &str) -> String {
        let list = std::fs::read_to_string(self.env.dir.join("images.txt")).unwrap();
        let wanted = format!("{}/{tagged}", self.env.registry);
        let digest = list
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(wanted.as_str())).then(|| f.next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("{wanted} not in images.txt"));
        let repo = wanted.rsplit_once(':').unwrap().0;
        format!("{repo}@{digest}")
    }

    /// A web service: port 8080, HTTP readiness on `/`, fast probes and a short drain.
    fn web(&self, key: WorkloadKey, release: &str, tagged: &str) -> WorkloadSpec {
        WorkloadSpec {
            key,
            release: release.into(),
            image: self.image(tagged),
            auth: Some(self.auth()),
            pull_policy: PullPolicy::IfNotPresent,
            env: vec![],
            files: vec![],
            command: None,
            args: None,
            port: Some(8080),
            memory_bytes: None,
            cpu_millis: None,
            replicas: 1,
            readiness: Some(Probe {
                period: Duration::from_millis(200),
                timeout: Duration::from_secs(1),
                ..Probe::http("/", 8080)
            }),
            liveness: None,
            ready_timeout: Duration::from_secs(20),
            drain: Duration::from_millis(200),
            kind: Default::default(),
            endpoints: vec![],
            secret_env: vec![],
            scaling: None,
        }
    }

    fn task(&self, key: WorkloadKey, execution: &str) -> TaskSpec {
        TaskSpec {
            workload: WorkloadSpec {
                port: None,
                readiness: None,
                ..self.web(key, "task-release", "test/task:latest")
            },
            execution: execution.into(),
            extra_args: vec![],
            active_deadline: None,
            log_limit: 64 * 1024,
        }
    }

    /// Names of the containers carrying all of `labels`, straight from the engine.
    async fn containers_with(&self, labels: &[(&str, &str)]) -> Vec<String> {
        list_containers(&self.docker, labels)
            .await
            .into_iter()
            .filter_map(|c| c.names?.first().cloned())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let docker = self.docker.clone();
        let projects = self.projects.clone();
        // A fresh runtime on its own thread: drop may run inside the test's runtime.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for project in &projects {
                    let labels = [(label::ORG, ORG), (label::PROJECT, project.as_str())];
                    let network = format!("berth-{ORG}-{project}-{ENV}");
                    for _ in 0..20 {
                        for c in list_containers(&docker, &labels).await {
                            let id = c.id.unwrap_or_default();
                            let force =
                                RemoveContainerOptionsBuilder::default().force(true).build();
                            let _ = docker.remove_container(&id, Some(force)).await;
                        }
                        match docker.remove_network(&network).await {
                            Ok(()) => break,
                            Err(bollard::errors::Error::DockerResponseServerError {
                                status_code: 404,
                                ..
                            }) => break,
                            // Still in use by a container being removed: again.
                            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                        }
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Containers carrying all of `labels` (checked again here), asking again while Podman
/// reports a state bollard cannot read (`stopped`, briefly, after an exit).
async fn list_containers(docker: &Docker, labels: &[(&str, &str)]) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label",
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let mut attempt = 0;
    let all = loop {
        match docker.list_containers(Some(options.clone())).await {
            Ok(all) => break all,
            Err(e) if attempt < 50 => {
                attempt += 1;
                eprintln!("listing containers: {e}; again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("listing containers: {e}"),
        }
    };
    all.into_iter()
        .filter(|c| {
            labels.iter().all(|(k, v)| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(*k))
                    .map(String::as_str)
                    == Some(v)
            })
        })
        .collect()
}

/// A `RouteSwitch` that keeps the current backends where a test client can read them.
#[derive(Default)]
struct Routes {
    current: Mutex<Vec<SocketAddr>>,
    history: Mutex<Vec<Vec<SocketAddr>>>,
}

impl RouteSwitch for Routes {
    fn switch(&self, _: &WorkloadKey, backends: &[SocketAddr]) {
        *self.current.lock().unwrap() = backends.to_vec();
        self.history.lock().unwrap().push(backends.to_vec());
    }
}

impl Routes {
    fn current(&self) -> Vec<SocketAddr> {
        self.current.lock().unwrap().clone()
    }
    fn switches(&self) -> usize {
        self.history.lock().unwrap().len()
    }
}

fn channel() -> (
    UnboundedSender<RolloutEvent>,
    UnboundedReceiver<RolloutEvent>,
) {
    unbounded_channel()
}

fn drain_events(rx: &mut UnboundedReceiver<RolloutEvent>) -> Vec<RolloutEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

/// `GET path` over HTTP/1.0: status and body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}

/// Status and body, or why there was none.
type Answer = Result<(u16, String), String>;

fn addresses(instances: &[Instance]) -> Vec<SocketAddr> {
    instances.iter().map(|i| i.address.unwrap()).collect()
}

#[tokio::test]
async fn private_pull_needs_the_right_credentials() {
    let Some(fx) = fixture("pull", 1) else { return };
    let image = fx.image("test/task:latest");
    let (tx, mut rx) = channel();
    fx.engine
        .pull_image(&image, Some(&fx.auth()), PullPolicy::Always, &tx)
        .await
        .expect("pull with the right credentials");
    let events = drain_events(&mut rx);
    assert!(
        matches!(events.first(), Some(RolloutEvent::Pulling { .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(RolloutEvent::Pulled { .. })),
        "{events:?}"
    );
    let statuses: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::PullProgress { status } => Some(status),
            _ => None,
        })
        .collect();
    let distinct: std::collections::HashSet<_> = statuses.iter().collect();
    assert_eq!(
        distinct.len(),
        statuses.len(),
        "progress is deduplicated: {statuses:?}"
    );

    let wrong = PullAuth {
        password: "wrong-password".into(),
        ..fx.auth()
    };
    for (what, auth) in [("wrong password", Some(&wrong)), ("no credentials", None)] {
        let err = fx
            .engine
            .pull_image(&image, auth, PullPolicy::Always, &tx)
            .await
            .expect_err(what);
        let text = err.to_string();
        assert!(matches!(err, Error::Pull { .. }), "{what}: {err:?}");
        assert!(!err.is_transient(), "{what}");
        assert!(
            text.contains("unauthorized") || text.contains("401"),
            "{what}: {text}"
        );
        assert!(
            !text.contains("wrong-password"),
            "{what}: the password leaked: {text}"
        );
    }

    // IfNotPresent with the image present does not ask the registry (no credentials needed).
    let (tx, mut rx) = channel();
    fx.engine
        .pull_image(&image, None, PullPolicy::IfNotPresent, &tx)
        .await
        .unwrap();
    assert!(drain_events(&mut rx).is_empty());

    // A rollout with wrong credentials fails with the pull error and starts nothing.
    let mut spec = fx.web(fx.key(0, "web"), "r-badauth", "test/web:v2");
    spec.auth = Some(wrong);
    spec.pull_policy = PullPolicy::Always;
    let err = fx
        .engine
        .rollout(&spec, &Routes::default(), &tx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Pull { .. }), "{err:?}");
    assert!(fx.engine.instances(&spec.key).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_switches_traffic_without_dropping_a_request() {
    let Some(fx) = fixture("zdt", 1) else { return };
    let key = fx.key(0, "web");
    let routes = Arc::new(Routes::default());
    let (tx, mut rx) = channel();

    let mut v1 = fx.web(key.clone(), "release-v1", "test/web:v1");
    v1.replicas = 2;
    let first = fx.engine.rollout(&v1, routes.as_ref(), &tx).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(routes.current(), addresses(&first));
    for i in &first {
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.release, "release-v1");
        let (status, body) = get(i.address.unwrap(), "/").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "hello from v1\n"));
    }
    let listed = fx.engine.instances(&key).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        addresses(&listed).len(),
        2,
        "listing finds the published ports"
    );
    let events = drain_events(&mut rx);
    assert!(
        events.contains(&RolloutEvent::Switched { backends: 2 }),
        "{events:?}"
    );

    // A client hammering whatever the routes say while v2 rolls out.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let routes = routes.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut results: Vec<(Instant, Answer)> = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let backends = routes.current();
                let addr = backends[n % backends.len()];
                n += 1;
                let r = get(addr, "/").await.map_err(|e| format!("{addr}: {e}"));
                results.push((Instant::now(), r));
            }
            results
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut v2 = fx.web(key.clone(), "release-v2", "test/web:v2");
    v2.replicas = 2;
    let second = fx.engine.rollout(&v2, routes.as_ref(), &tx).await.unwrap();
    let done = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let results = client.await.unwrap();

    let failures: Vec<_> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok((200, _))))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        results.len()
    );
    let bodies: Vec<&str> = results
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().1.as_str())
        .collect();
    assert!(bodies.contains(&"hello from v1\n") && bodies.contains(&"hello from v2\n"));
    let first_v2 = bodies.iter().position(|b| *b == "hello from v2\n").unwrap();
    assert!(
        bodies[first_v2..].iter().all(|b| *b == "hello from v2\n"),
        "v1 answered after the switch"
    );
    assert!(
        results.iter().filter(|(t, _)| *t > done).count() > 0,
        "requests after the rollout"
    );
    eprintln!("zero-downtime: {} requests, all 200", results.len());

    assert_eq!(routes.current(), addresses(&second));
    let now = fx.engine.instances(&key).await.unwrap();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|i| i.release == "release-v2"));
    let project = key.project.as_str();
    assert!(
        fx.containers_with(&[(label::PROJECT, project), (label::RELEASE, "release-v1")])
            .await
            .is_empty()
    );
    assert_eq!(
        fx.containers_with(&[(label::PROJECT, project), (label::RELEASE, "release-v2")])
            .await
            .len(),
        2
    );
    let events = drain_events(&mut rx);
    let removed = events
        .iter()
        .filter(|e| matches!(e, RolloutEvent::Removed { .. }))
        .count();
    let draining = events
        .iter()
        .filter(|e| matches!(e, RolloutEvent::Draining { .. }))
        .count();
    assert_eq!((draining, removed), (2, 2), "{events:?}");
    let order: Vec<usize> = ["Ready", "Switched", "Draining", "Removed"]
        .iter()
        .map(|k| {
            events
                .iter()
                .position(|e| format!("{e:?}").starts_with(k))
                .unwrap()
        })
        .collect();
    assert!(order.is_sorted(), "{events:?}");
}

#[tokio::test]
async fn failed_rollouts_keep_the_old_release_serving() {
    let Some(fx) = fixture("fail", 1) else { return };
    let key = fx.key(0, "web");
    let routes = Routes::default();
    let (tx, mut rx) = channel();
    let v1 = fx.web(key.clone(), "good", "test/web:v1");
    let good = fx.engine.rollout(&v1, &routes, &tx).await.unwrap();
    drain_events(&mut rx);

    // Answers, but 404 where the probe wants 200.
    let mut never = fx.web(key.clone(), "never-ready", "test/never-ready:latest");
    never.readiness = Some(Probe {
        action: ProbeAction::Http {
            path: "/".into(),
            port: 8080,
            statuses: 200..=200,
        },
        period: Duration::from_millis(200),
        timeout: Duration::from_secs(1),
        ..Probe::http("/", 8080)
    });
    never.ready_timeout = Duration::from_secs(5);
    let started = Instant::now();
    let err = fx.engine.rollout(&never, &routes, &tx).await.unwrap_err();
    let took = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::NotReady(_)), "{err:?}");
    assert!(
        text.contains("readiness probe failed") && text.contains("HTTP 404"),
        "{text}"
    );
    // The last log lines are quoted (here: busybox httpd logging the probe's requests).
    assert!(
        text.contains("last log lines:\n") && text.contains("response:404"),
        "{text}"
    );
    assert!(took < Duration::from_secs(12), "gave up after {took:?}");
    let events = drain_events(&mut rx);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RolloutEvent::ProbeFailed { .. })),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RolloutEvent::RolledBack { .. })),
        "{events:?}"
    );

    // Exits at once: fails at once, with the exit code.
    let crash = fx.web(key.clone(), "crash", "test/crash:latest");
    let started = Instant::now();
    let err = fx.engine.rollout(&crash, &routes, &tx).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotReady(_)), "{err:?}");
    assert!(text.contains("exited with code 1"), "{text}");
    assert!(text.contains("crash: exiting with code 1"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // The good release still serves, untouched, and nothing of the failures is left.
    assert_eq!(routes.switches(), 1, "failed rollouts never switch");
    let now = fx.engine.instances(&key).await.unwrap();
    assert_eq!(now, good);
    let (status, body) = get(good[0].address.unwrap(), "/").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "hello from v1\n"));
    for release in ["never-ready", "crash"] {
        assert!(
            fx.containers_with(&[
                (label::PROJECT, key.project.as_str()),
                (label::RELEASE, release)
            ])
            .await
            .is_empty(),
            "{release} left containers"
        );
    }
}

#[tokio::test]
async fn rolling_out_the_running_release_again_is_a_noop() {
    let Some(fx) = fixture("noop", 1) else { return };
    let key = fx.key(0, "web");
    let routes = Routes::default();
    let (tx, mut rx) = channel();
    let mut spec = fx.web(key.clone(), "same", "test/web:v1");
    spec.replicas = 2;
    let first = fx.engine.rollout(&spec, &routes, &tx).await.unwrap();
    drain_events(&mut rx);
    let second = fx.engine.rollout(&spec, &routes, &tx).await.unwrap();
    assert_eq!(first, second);
    let events = drain_events(&mut rx);
    assert_eq!(events, vec![RolloutEvent::Switched { backends: 2 }]);
    assert_eq!(routes.switches(), 2);

    // One replica crashed (killed): the next rollout replaces just that one.
    let victim = &first[1];
    fx.docker
        .kill_container(
            &victim.id,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let third = fx.engine.rollout(&spec, &routes, &tx).await.unwrap();
    assert_eq!(third[0].id, first[0].id);
    assert_ne!(third[1].id, first[1].id);
    assert_eq!(third[1].name, first[1].name);
    assert_eq!(fx.engine.instances(&key).await.unwrap().len(), 2);
}

/// The reconciler's check of a serving workload (`Engine::keep_serving`): the fast path keeps
/// what runs without touching it; a check that read the workload before a deploy started, and
/// waited for that deploy's rollout lock, stands down instead of rolling the older release
/// back out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_check_that_lost_the_race_to_a_deploy_stands_down() {
    let Some(fx) = fixture("stale", 1) else {
        return;
    };
    let key = fx.key(0, "web");
    let routes = Routes::default();
    let (tx, _rx) = channel();
    let v1 = fx.web(key.clone(), "r1", "test/web:v1");
    let first = fx.engine.rollout(&v1, &routes, &tx).await.unwrap();
    let listed = fx.engine.list_managed().await.unwrap();

    // Nothing changed: the fast path answers from the listing, the same instance serves.
    let kept = fx
        .engine
        .keep_serving(&v1, &routes, &listed, &tx, || false)
        .await
        .expect("not superseded")
        .unwrap();
    assert_eq!(kept, first);
    assert_eq!(routes.current(), addresses(&first));

    // A deploy of r2 starts (its runner is recorded first, then it takes the workload's lock)
    // after the check read r1 and the listing; the check then waits for the lock.
    let deploying = AtomicBool::new(false);
    let v2 = fx.web(key.clone(), "r2", "test/web:v2");
    let deploy = async {
        deploying.store(true, Ordering::SeqCst);
        fx.engine.rollout(&v2, &routes, &tx).await
    };
    let check = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        fx.engine
            .keep_serving(&v1, &routes, &listed, &tx, || {
                deploying.load(Ordering::SeqCst)
            })
            .await
    };
    let (second, check) = tokio::join!(deploy, check);
    let second = second.unwrap();
    assert!(check.is_none(), "the stale check acted: {check:?}");
    // r2 serves, and only r2 runs.
    assert_eq!(routes.current(), addresses(&second));
    let now = fx.engine.instances(&key).await.unwrap();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].release, "r2");
    let (status, body) = get(routes.current()[0], "/").await.unwrap();
    assert_eq!((status, body.trim()), (200, "hello from v2"));
}

#[tokio::test]
async fn env_files_and_limits_reach_the_container() {
    let Some(fx) = fixture("cfg", 1) else { return };
    let (tx, _rx) = channel();
    let mut task = fx.task(fx.key(0, "job"), "exec-cfg");
    task.workload.env = vec![("GREETING".into(), "hello berth".into())];
    task.workload.files = vec![
        FileMount {
            path: "/etc/berth/app.conf".into(),
            content: b"mode=test\n".to_vec(),
            secret: false,
        },
        FileMount {
            path: "/run/secrets/token".into(),
            content: b"s3cr3t-token\n".to_vec(),
            secret: true,
        },
    ];
    task.workload.command = Some(vec![
        "/bin/sh".into(),
        "-c".into(),
        "cat /etc/berth/app.conf; cat /run/secrets/token; echo \"greeting=$GREETING\"; \
         if echo x 2>/dev/null > /etc/berth/app.conf; then echo writable; else echo read-only; fi"
            .into(),
    ]);
    let out = fx.engine.run_task(&task, &tx).await.unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    for want in [
        "mode=test",
        "s3cr3t-token",
        "greeting=hello berth",
        "read-only",
    ] {
        assert!(out.logs.contains(want), "{want} missing in {:?}", out.logs);
    }
    // The task's mount files are gone with its container.
    let mounts = fx.data.path().join("mounts");
    assert_eq!(
        std::fs::read_dir(&mounts).map(|d| d.count()).unwrap_or(0),
        0
    );

    // Limits, and the secret's host file modes, on a running service.
    let mut spec = fx.web(fx.key(0, "web"), "limits", "test/web:v1");
    spec.memory_bytes = Some(64 * 1024 * 1024);
    spec.cpu_millis = Some(250);
    spec.files = vec![FileMount {
        path: "/run/secrets/key".into(),
        content: b"k".to_vec(),
        secret: true,
    }];
    let instances = fx.engine.rollout(&spec, &routes_none(), &tx).await.unwrap();
    let info = fx
        .docker
        .inspect_container(&instances[0].id, None)
        .await
        .unwrap();
    let hc = info.host_config.unwrap();
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    assert_eq!(hc.nano_cpus, Some(250_000_000));
    let labels = info.config.unwrap().labels.unwrap();
    assert_eq!(labels[label::MANAGED], "true");
    assert_eq!(labels[label::REPLICA], "0");
    assert_eq!(labels[label::RELEASE], "limits");
    use std::os::unix::fs::PermissionsExt;
    let dir = mounts.join(&instances[0].name).join("secrets");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("0-key")), 0o600);
    fx.engine.remove_workload(&spec.key).await.unwrap();
    assert!(
        !mounts.join(&instances[0].name).exists(),
        "mounts removed with the instance"
    );
}

fn routes_none() -> berth_dataplane::NoRoutes {
    berth_dataplane::NoRoutes
}

#[tokio::test]
async fn tasks_append_args_report_exit_codes_and_time_out() {
    let Some(fx) = fixture("task", 1) else { return };
    let (tx, _rx) = channel();
    let key = fx.key(0, "report");
    let mut task = fx.task(key.clone(), "exec-1");
    task.extra_args = vec!["first".into(), "two words".into()];
    task.workload.env = vec![("EXIT_CODE".into(), "3".into())];
    let out = fx.engine.run_task(&task, &tx).await.unwrap();
    assert_eq!(out.exit_code, 3, "{}", out.logs);
    assert!(!out.timed_out);
    for want in [
        "task: argc=2",
        "task: arg[1]=first",
        "task: arg[2]=two words",
        "task: exiting with 3",
    ] {
        assert!(out.logs.contains(want), "{want} missing in {}", out.logs);
    }
    assert!(
        fx.containers_with(&[(label::EXECUTION, "exec-1")])
            .await
            .is_empty()
    );

    // Logs are capped to the tail.
    task.log_limit = 40;
    task.execution = "exec-2".into();
    let out = fx.engine.run_task(&task, &tx).await.unwrap();
    assert!(out.logs.len() <= 40, "{:?}", out.logs);
    assert!(
        out.logs.ends_with("task: exiting with 3\n"),
        "{:?}",
        out.logs
    );

    // Killed at the deadline.
    let mut slow = fx.task(key, "exec-3");
    slow.workload.env = vec![("SLEEP".into(), "30".into())];
    slow.active_deadline = Some(Duration::from_secs(1));
    let started = Instant::now();
    let out = fx.engine.run_task(&slow, &tx).await.unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_ne!(out.exit_code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        fx.containers_with(&[(label::EXECUTION, "exec-3")])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let Some(fx) = fixture("logs", 1) else { return };
    let (tx, _rx) = channel();
    let spec = fx.web(fx.key(0, "web"), "logs", "test/web:v1");
    let instance = fx
        .engine
        .rollout(&spec, &routes_none(), &tx)
        .await
        .unwrap()
        .remove(0);
    // The readiness probe's requests are logged too: make sure there is more than one line.
    get(instance.address.unwrap(), "/").await.unwrap();
    let tail = |n| LogsOptions {
        tail: Some(n),
        ..Default::default()
    };
    let all: Vec<_> = fx
        .engine
        .logs(&instance.id, &LogsOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(all.len() >= 2, "{all:?}");
    assert!(
        all.iter()
            .any(|l| l.as_ref().unwrap().text == "web v1 listening on :8080"),
        "{all:?}"
    );
    let last: Vec<_> = fx
        .engine
        .logs(&instance.id, &tail(1))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(
        last[0].as_ref().unwrap(),
        all.last().unwrap().as_ref().unwrap()
    );

    let mut follow = fx
        .engine
        .logs(
            &instance.id,
            &LogsOptions {
                tail: Some(0),
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The stream asks the engine when first polled: read it from now on.
    let reader = tokio::spawn(async move { follow.next().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    get(instance.address.unwrap(), "/").await.unwrap();
    // `httpd -v` logs "[client]:port: response:200"; no probe runs after the rollout, so the
    // first new line is this request's.
    let line = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the access-log line arrives while following")
        .unwrap()
        .expect("stream ended")
        .unwrap();
    assert!(line.text.ends_with("response:200"), "{line:?}");
    // busybox httpd logs to stderr.
    assert_eq!(line.stream, LogStream::Stderr);

    let err = fx
        .engine
        .logs("berth-it-no-such-container", &tail(1))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no instance"), "{err}");
}

#[tokio::test]
async fn projects_are_isolated_and_siblings_reach_each_other() {
    let Some(fx) = fixture("iso", 2) else { return };
    let (tx, _rx) = channel();
    let a = fx.web(fx.key(0, "web"), "iso", "test/web:v1");
    let web = fx
        .engine
        .rollout(&a, &routes_none(), &tx)
        .await
        .unwrap()
        .remove(0);
    let info = fx.docker.inspect_container(&web.id, None).await.unwrap();
    let ip = info.network_settings.unwrap().networks.unwrap()[&a.key.network_name()]
        .ip_address
        .clone()
        .unwrap();

    // busybox wget's own -T timeout crashes this busybox build (SIGSEGV): use `timeout`.
    let fetch = |fx: &Fixture, key: WorkloadKey, execution: &str, url: &str| {
        let mut task = fx.task(key, execution);
        task.workload.command = Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            // A compound command keeps `sh` as PID 1: as PID 1 itself, wget would ignore the
            // SIGTERM of `timeout` and hang in connect() when the destination drops packets.
            format!("timeout 3 wget -q -O- {url}; exit $?"),
        ]);
        task
    };
    let sibling = fx
        .engine
        .run_task(
            &fetch(&fx, fx.key(0, "probe"), "iso-1", "http://web:8080/"),
            &tx,
        )
        .await
        .unwrap();
    assert_eq!(
        (sibling.exit_code, sibling.logs.as_str()),
        (0, "hello from v1\n")
    );

    let by_name = fx
        .engine
        .run_task(
            &fetch(&fx, fx.key(1, "probe"), "iso-2", "http://web:8080/"),
            &tx,
        )
        .await
        .unwrap();
    assert_ne!(by_name.exit_code, 0, "{by_name:?}");
    assert!(by_name.logs.contains("bad address"), "{by_name:?}");

    let by_ip = fx
        .engine
        .run_task(
            &fetch(
                &fx,
                fx.key(1, "probe"),
                "iso-3",
                &format!("http://{ip}:8080/"),
            ),
            &tx,
        )
        .await
        .unwrap();
    // netavark 1.4 does not isolate by IP itself; berth's BERTH_ISOLATION chain does.
    assert_ne!(
        by_ip.exit_code, 0,
        "project B reached project A's container by IP: {by_ip:?}"
    );
}

#[tokio::test]
async fn remove_workload_leaves_nothing_and_is_idempotent() {
    let Some(fx) = fixture("rm", 1) else { return };
    let (tx, _rx) = channel();
    let key = fx.key(0, "web");
    let mut spec = fx.web(key.clone(), "rm", "test/web:v1");
    spec.replicas = 2;
    let instances = fx.engine.rollout(&spec, &routes_none(), &tx).await.unwrap();
    let managed = fx.engine.list_managed().await.unwrap();
    assert!(instances.iter().all(|i| managed.contains(i)));

    fx.engine.remove_workload(&key).await.unwrap();
    let labels = [
        (label::ORG, ORG),
        (label::PROJECT, key.project.as_str()),
        (label::COMPONENT, "web"),
        (label::ENV, ENV),
    ];
    assert!(fx.containers_with(&labels).await.is_empty());
    assert!(fx.engine.instances(&key).await.unwrap().is_empty());
    fx.engine.remove_workload(&key).await.unwrap();
    fx.engine
        .remove_instance(&instances[0].id, Duration::from_secs(1))
        .await
        .unwrap();
    fx.engine.ensure_network(&key).await.unwrap();
    fx.engine.ensure_network(&key).await.unwrap();
    fx.engine.remove_network(&key).await.unwrap();
    fx.engine.remove_network(&key).await.unwrap();
}
