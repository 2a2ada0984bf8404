//! Scheduled and manual tasks on the real engine, driven without HTTP sockets: the API through
//! `router(state).oneshot(…)` and the scheduler through [`tasks::tick`] on a [`ManualClock`] —
//! slots fire when the test moves the clock, with no minute-long sleeps.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use berth_core::api::{ComponentType, ConfigKind, DeploymentStatus, RegistryAuthType};
use berth_dataplane::DataPlane;
use berth_dataplane::engine::Engine;
use berth_server::tasks::{self, ManualClock};
use berth_server::{AppState, RuntimeConfig, router};
use berth_store::keys::MasterKey;
use berth_store::{
    ComponentRef, NewComponent, NewRelease, Origin, RegistrySettings, ReleaseChoice, Store,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Removes the containers of the test's components, whatever happened.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for component in &self.0 {
            let out = Command::new("podman")
                .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
                .arg(format!("label=berth.component={component}"))
                .output();
            if let Ok(out) = out {
                for name in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = Command::new("podman").args(["rm", "-f", name]).output();
                }
            }
        }
    }
}

struct Fixture {
    state: AppState,
    clock: Arc<ManualClock>,
    token: String,
    _dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const T0: &str = "2030-01-01T00:00:00Z";

fn component_name(tag: &str) -> String {
    format!("berth-it-tk{tag}-{}", std::process::id())
}

impl Fixture {
    /// A store with project `shop`, registry `local` (the test registry) and the task
    /// components `names` (type, name), each with `test/task:latest` deployed and ready in
    /// development.
    async fn new(components: &[(ComponentType, &str)], deploy: bool) -> Option<Self> {
        let env = berth_testkit::env()?;
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(dir.path()).unwrap();
        let store = Store::open(dir.path()).await.unwrap().with_master_key(&key);
        let token = store.bootstrap().await.unwrap().unwrap().admin_token;
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
                    host: env.registry.clone(),
                    auth_type: RegistryAuthType::Basic,
                    username: Some(env.user.clone()),
                    password: Some(berth_core::Secret::new(env.password.clone())),
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
        let digest = env.skopeo_digest(&format!("{}/test/task:latest", env.registry));
        let repository = format!("{}/test/task", env.registry);
        for (kind, name) in components {
            store
                .insert_component(
                    "default",
                    "shop",
                    &NewComponent {
                        name,
                        display_name: name,
                        description: "",
                        kind: *kind,
                        registry: "local",
                        image: &format!("{repository}:latest"),
                        port: None,
                    },
                )
                .await
                .unwrap();
            if !deploy {
                continue;
            }
            let d = store
                .create_deployment(
                    ComponentRef {
                        org: "default",
                        project: "shop",
                        component: name,
                    },
                    "development",
                    ReleaseChoice::New(NewRelease {
                        registry: "local",
                        repository: &repository,
                        tag: Some("latest"),
                        digest: &digest,
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
            store
                .set_deployment_status(&d.id, DeploymentStatus::Ready, None)
                .await
                .unwrap();
        }
        let endpoint = env
            .docker_host
            .clone()
            .unwrap_or_else(|| "unix:///run/podman/podman.sock".into());
        let engine = Engine::connect(&endpoint)
            .unwrap()
            .with_data_root(dir.path().join("mounts"));
        let state = AppState::new(
            store,
            Ok(engine),
            RuntimeConfig {
                ssrf: berth_server::SsrfPolicy::default(),
                ready_timeout: Duration::from_secs(30),
                drain: Duration::from_millis(100),
                public_url: "http://127.0.0.1:1".into(),
                ci_rate_per_minute: 30,
                kubernetes: Default::default(),
            },
            Arc::new(berth_server::gateway::Gateway::new(
                "http://127.0.0.1:2".into(),
            )),
        );
        let clock = Arc::new(ManualClock::new(t(T0)));
        state.tasks().set_clock(clock.clone());
        Some(Self {
            state,
            clock,
            token,
            _dir: dir,
            _cleanup: Cleanup(components.iter().map(|(_, n)| (*n).to_owned()).collect()),
        })
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = router(self.state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn set_env(&self, component: &str, name: &str, value: &str) {
        self.state
            .store()
            .change_configs(
                ComponentRef {
                    org: "default",
                    project: "shop",
                    component,
                },
                "development",
                &[(ConfigKind::Env, name.into(), value.into())],
                &[],
            )
            .await
            .unwrap();
    }

    /// Moves the clock and runs one scheduler pass; returns the slots it handled.
    async fn tick_at(&self, at: &str) -> usize {
        self.clock.set(t(at));
        tasks::tick(&self.state).await
    }

    async fn executions(&self, component: &str, query: &str) -> Value {
        let (status, list) = self
            .api(
                Method::GET,
                &format!(
                    "/api/v1/orgs/default/projects/shop/components/{component}/executions{query}"
                ),
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        list
    }

    /// The newest execution of a component.
    async fn newest(&self, component: &str) -> Value {
        self.executions(component, "?limit=1").await["items"][0].clone()
    }

    async fn execution(&self, id: &str) -> Value {
        let (status, x) = self
            .api(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await;
        assert_eq!(status, 200, "{x}");
        x
    }

    /// Waits until the runner of `id` has recorded the end; returns the execution.
    async fn ended(&self, id: &str) -> Value {
        self.state
            .tasks()
            .wait_done(id, Duration::from_secs(120))
            .await;
        let x = self.execution(id).await;
        assert_ne!(x["status"], "running", "{x}");
        x
    }

    async fn logs(&self, id: &str) -> String {
        let (status, logs) = self
            .api(Method::GET, &format!("/api/v1/executions/{id}/logs"), None)
            .await;
        assert_eq!(status, 200, "{logs}");
        logs["logs"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the task's container prints something (it started).
    async fn started(&self, id: &str) {
        for _ in 0..600 {
            if self.logs(id).await.contains("task: argc") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("execution {id} never started");
    }

    async fn containers_of(&self, component: &str) -> Vec<String> {
        let engine = self.state.engine().unwrap();
        engine
            .list_managed()
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.key.component == component)
            .map(|i| i.name)
            .collect()
    }

    async fn put_schedule(&self, component: &str, body: Value) -> (u16, Value) {
        self.api(
            Method::PUT,
            &format!(
                "/api/v1/orgs/default/projects/shop/components/{component}/environments/development/schedule"
            ),
            Some(body),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_on_the_injected_clock() {
    let job = component_name("s");
    let manual = component_name("sm");
    let Some(fx) = Fixture::new(
        &[
            (ComponentType::ScheduledTask, &job),
            (ComponentType::ManualTask, &manual),
        ],
        true,
    )
    .await
    else {
        return;
    };

    // Bad input: 422 naming the field (and the cron position), 409 for a manual task.
    let bad: &[(Value, &str, &str)] = &[
        (
            json!({"schedule": "0 24 * * *"}),
            "schedule",
            "field 2 (hour): 24 is out of range 0-23",
        ),
        (json!({"schedule": "* * *"}), "schedule", "has 3 field(s)"),
        (
            json!({"schedule": "@daily", "timeZone": "Mars/Olympus"}),
            "timeZone",
            "unknown time zone",
        ),
        (
            json!({"schedule": "@daily", "startingDeadlineSeconds": -5}),
            "startingDeadlineSeconds",
            "at least 1",
        ),
        (
            json!({"schedule": "@daily", "activeDeadlineSeconds": -1}),
            "activeDeadlineSeconds",
            "at least 1",
        ),
        (
            json!({"schedule": "@daily", "failedHistoryLimit": -1}),
            "failedHistoryLimit",
            "between 0 and 1000",
        ),
        (
            json!({"schedule": "@daily", "concurrencyPolicy": "sometimes"}),
            "concurrencyPolicy",
            "allow, forbid or replace",
        ),
        (json!({"schedule": "@daily", "cron": "x"}), "cron", ""),
    ];
    for (body, field, message) in bad {
        let (status, err) = fx.put_schedule(&job, body.clone()).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], *field, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(message),
            "{body}: {err}"
        );
    }
    let (status, err) = fx
        .put_schedule(&manual, json!({"schedule": "@daily"}))
        .await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = fx
        .api(
            Method::PUT,
            &format!(
                "/api/v1/orgs/default/projects/shop/components/{job}/environments/staging/schedule"
            ),
            Some(json!({"schedule": "@daily"})),
        )
        .await;
    assert_eq!(status, 404);

    // Every 5 minutes: nothing at 00:00, one run at 00:05, once.
    let (status, s) = fx
        .put_schedule(&job, json!({"schedule": "*/5 * * * *"}))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["nextFireAt"], "2030-01-01T00:05:00+00:00");
    assert_eq!(s["concurrencyPolicy"], "forbid");
    assert_eq!(s["upcoming"].as_array().unwrap().len(), 5);
    assert_eq!(fx.tick_at("2030-01-01T00:04:59Z").await, 0);
    assert_eq!(fx.tick_at("2030-01-01T00:05:00Z").await, 1);
    assert_eq!(
        fx.tick_at("2030-01-01T00:05:00Z").await,
        0,
        "a slot runs once"
    );
    let first = fx.newest(&job).await;
    assert_eq!(first["trigger"], "schedule");
    assert_eq!(first["slot"], "2030-01-01T00:05:00.000Z");
    let first = fx.ended(first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["exitCode"], 0);
    assert!(
        fx.logs(first["id"].as_str().unwrap())
            .await
            .contains("task: exiting with 0")
    );
    assert!(
        fx.containers_of(&job).await.is_empty(),
        "the container is removed"
    );

    // Suspended: no slot fires; resumed: from the next slot on (00:10 is not run late).
    let (_, s) = fx
        .put_schedule(&job, json!({"schedule": "*/5 * * * *", "suspended": true}))
        .await;
    assert_eq!(s["nextFireAt"], Value::Null);
    assert_eq!(fx.tick_at("2030-01-01T00:10:00Z").await, 0);
    fx.clock.set(t("2030-01-01T00:12:00Z"));
    let (_, s) = fx
        .put_schedule(
            &job,
            json!({"schedule": "*/5 * * * *", "suspended": false, "startingDeadlineSeconds": 30,
                   "successfulHistoryLimit": 1}),
        )
        .await;
    assert_eq!(s["nextFireAt"], "2030-01-01T00:15:00+00:00");

    // A downtime: at 00:36 the latest slot (00:35) is 60 s late, past the 30 s starting
    // deadline: recorded missed, the earlier ones skipped.
    assert_eq!(fx.tick_at("2030-01-01T00:36:00Z").await, 1);
    let missed = fx.newest(&job).await;
    assert_eq!(missed["status"], "missed", "{missed}");
    assert_eq!(missed["slot"], "2030-01-01T00:35:00.000Z");
    let reason = missed["reason"].as_str().unwrap();
    assert!(
        reason.contains("past the starting deadline of 30 s"),
        "{reason}"
    );
    assert!(reason.contains("4 earlier slot(s)"), "{reason}");
    // Within the deadline it runs.
    assert_eq!(fx.tick_at("2030-01-01T00:40:20Z").await, 1);
    let late = fx.newest(&job).await;
    assert_eq!(late["slot"], "2030-01-01T00:40:00.000Z");
    let late = fx.ended(late["id"].as_str().unwrap()).await;
    assert_eq!(late["status"], "succeeded", "{late}");

    // History limit 1: the 00:05 run is pruned; the counts still know it.
    let list = fx.executions(&job, "").await;
    let items = list["items"].as_array().unwrap();
    let statuses: Vec<&str> = items
        .iter()
        .map(|x| x["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "missed"], "{list}");
    assert_eq!(list["counts"]["succeeded"], 2, "{list}");
    assert_eq!(list["counts"]["missed"], 1, "{list}");
    let only = fx.executions(&job, "?status=missed&trigger=schedule").await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);

    // New York time: 02:30 daily skips the spring-forward day (2030-03-10: 02:30 does not
    // exist there).
    fx.clock.set(t("2030-03-09T12:00:00Z"));
    let (status, s) = fx
        .put_schedule(
            &job,
            json!({"schedule": "30 2 * * *", "timeZone": "America/New_York"}),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["timeZone"], "America/New_York");
    assert_eq!(s["nextFireAt"], "2030-03-11T02:30:00-04:00", "{s}");

    // Deleting the schedule stops it.
    let (status, _) = fx
        .api(
            Method::DELETE,
            &format!("/api/v1/orgs/default/projects/shop/components/{job}/environments/development/schedule"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(fx.tick_at("2030-03-11T06:30:00Z").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_policies_cancel_and_timeouts() {
    let job = component_name("c");
    let Some(fx) = Fixture::new(&[(ComponentType::ScheduledTask, &job)], true).await else {
        return;
    };
    fx.set_env(&job, "SLEEP", "60").await;
    fx.put_schedule(
        &job,
        json!({"schedule": "* * * * *", "concurrencyPolicy": "forbid"}),
    )
    .await;

    // Forbid: while A runs, the next slot is skipped (recorded missed).
    assert_eq!(fx.tick_at("2030-01-01T00:01:00Z").await, 1);
    let a = fx.newest(&job).await["id"].as_str().unwrap().to_owned();
    fx.started(&a).await;
    assert_eq!(fx.tick_at("2030-01-01T00:02:00Z").await, 1);
    let skipped = fx.newest(&job).await;
    assert_eq!(skipped["status"], "missed", "{skipped}");
    let reason = skipped["reason"].as_str().unwrap();
    assert!(reason.contains(&a) && reason.contains("forbid"), "{reason}");
    assert_eq!(fx.execution(&a).await["status"], "running");

    // Replace: B starts, A is cancelled (its container killed).
    let (status, s) = fx
        .put_schedule(
            &job,
            json!({"schedule": "* * * * *", "concurrencyPolicy": "replace"}),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(fx.tick_at("2030-01-01T00:03:00Z").await, 1);
    let b = fx.newest(&job).await;
    assert_eq!(b["status"], "running", "{b}");
    let b = b["id"].as_str().unwrap().to_owned();
    let a_now = fx.ended(&a).await;
    assert_eq!(a_now["status"], "cancelled", "{a_now}");
    assert!(
        a_now["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("replaced by execution {b}")),
        "{a_now}"
    );
    assert!(fx.logs(&a).await.contains("task: argc=0"), "logs kept");

    // Cancel through the API: killed, recorded, and only once.
    fx.started(&b).await;
    let (status, x) = fx
        .api(
            Method::POST,
            &format!("/api/v1/executions/{b}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(x["status"], "cancelled", "{x}");
    assert!(
        x["reason"]
            .as_str()
            .unwrap()
            .starts_with("cancelled by admin/")
    );
    let (status, again) = fx
        .api(
            Method::POST,
            &format!("/api/v1/executions/{b}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(
        fx.containers_of(&job).await.is_empty(),
        "containers are gone"
    );

    // Active deadline: killed after 2 s, timed-out.
    fx.put_schedule(
        &job,
        json!({"schedule": "* * * * *", "activeDeadlineSeconds": 2}),
    )
    .await;
    assert_eq!(fx.tick_at("2030-01-01T00:04:00Z").await, 1);
    let c = fx.newest(&job).await["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let c = fx.ended(&c).await;
    assert!(started.elapsed() < Duration::from_secs(40), "killed early");
    assert_eq!(c["status"], "timed-out", "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("active deadline of 2 s"),
        "{c}"
    );
    assert_ne!(c["exitCode"], 0, "{c}");
    let list = fx.executions(&job, "").await;
    let counts = &list["counts"];
    assert_eq!(
        (
            counts["cancelled"].as_i64(),
            counts["missed"].as_i64(),
            counts["timedOut"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_with_arguments_and_env_overrides() {
    let job = component_name("m");
    let fresh = component_name("mf");
    let Some(fx) = Fixture::new(&[(ComponentType::ManualTask, &job)], true).await else {
        return;
    };
    let runs = format!("/api/v1/orgs/default/projects/shop/components/{job}/runs");

    // Bad input first.
    let bad: &[(Value, &str)] = &[
        (json!({"args": ["a\u{0}b"]}), "args[0]"),
        (
            json!({"envOverrides": [{"name": "1X", "value": "v"}]}),
            "envOverrides[0].name",
        ),
        (
            json!({"envOverrides": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
            "envOverrides[1].name",
        ),
        (json!({"trigger": "schedule"}), "trigger"),
        (json!({"env": "staging"}), "env"),
    ];
    for (body, field) in bad {
        let (status, err) = fx.api(Method::POST, &runs, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], *field, "{body}: {err}");
    }

    let (status, x) = fx
        .api(
            Method::POST,
            &runs,
            Some(json!({
                "args": ["first", "two words", "--flag=$HOME"],
                "envOverrides": [{"name": "EXIT_CODE", "value": "3"}],
                "trigger": "manual",
            })),
        )
        .await;
    assert_eq!(status, 202, "{x}");
    assert_eq!(x["status"], "running");
    assert_eq!(x["trigger"], "manual");
    assert_eq!(x["envOverrides"], json!(["EXIT_CODE"]));
    assert_eq!(x["environment"], "development");
    let id = x["id"].as_str().unwrap().to_owned();
    let x = fx.ended(&id).await;
    assert_eq!(x["status"], "failed", "{x}");
    assert_eq!(x["exitCode"], 3);
    assert_eq!(x["reason"], "exited with code 3");
    assert!(x["durationMs"].is_i64());
    let logs = fx.logs(&id).await;
    for line in [
        "task: argc=3",
        "task: arg[1]=first",
        "task: arg[2]=two words",
        "task: arg[3]=--flag=$HOME",
        "EXIT_CODE=3",
        "task: exiting with 3",
    ] {
        assert!(logs.contains(line), "{line:?} missing in:\n{logs}");
    }

    // Success, API trigger by default.
    let (_, x) = fx.api(Method::POST, &runs, Some(json!({}))).await;
    let x = fx.ended(x["id"].as_str().unwrap()).await;
    assert_eq!(
        (x["status"].as_str(), x["trigger"].as_str()),
        (Some("succeeded"), Some("api"))
    );

    let failed = fx.executions(&job, "?status=failed").await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["counts"]["failed"], 1);
    assert_eq!(failed["counts"]["succeeded"], 1);
    let (status, err) = fx
        .api(
            Method::GET,
            &format!("/api/v1/orgs/default/projects/shop/components/{job}/executions?status=bogus"),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("status"))
    );

    // Nothing deployed: 409 with the reason.
    fx.state
        .store()
        .insert_component(
            "default",
            "shop",
            &NewComponent {
                name: &fresh,
                display_name: "fresh",
                description: "",
                kind: ComponentType::ManualTask,
                registry: "local",
                image: "127.0.0.1:5000/test/task:latest",
                port: None,
            },
        )
        .await
        .unwrap();
    let (status, err) = fx
        .api(
            Method::POST,
            &format!("/api/v1/orgs/default/projects/shop/components/{fresh}/runs"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing is deployed")
    );
}
