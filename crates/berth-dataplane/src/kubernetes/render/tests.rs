//! Golden tests: every component type and visibility, rendered. The snapshots under
//! `snapshots/` are also what `scripts/validate-manifests` checks against the Kubernetes schemas.

use std::time::Duration;

use berth_core::api::ConcurrencyPolicy;
use berth_core::endpoints::Visibility;

use super::*;
use crate::spec::{FileMount, Scaling, TaskSchedule};

fn key(component: &str) -> WorkloadKey {
    WorkloadKey {
        org: "acme".into(),
        project: "shop".into(),
        component: component.into(),
        env: "development".into(),
    }
}

const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

fn spec(component: &str, kind: WorkloadKind) -> WorkloadSpec {
    WorkloadSpec {
        key: key(component),
        release: "0193b7a4-5c1e-7d3a-9f00-1234567890ab".into(),
        image: format!("registry.example.com:5000/shop/{component}@{DIGEST}"),
        auth: None,
        pull_policy: PullPolicy::IfNotPresent,
        env: Vec::new(),
        files: Vec::new(),
        command: None,
        args: None,
        port: None,
        memory_bytes: None,
        cpu_millis: None,
        replicas: 1,
        readiness: None,
        liveness: None,
        ready_timeout: Duration::from_secs(120),
        drain: Duration::from_secs(10),
        kind,
        endpoints: Vec::new(),
        secret_env: Vec::new(),
        scaling: None,
    }
}

fn endpoint(name: &str, port: u16, context: &str, visibilities: &[Visibility]) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        port,
        http: true,
        context: context.into(),
        visibilities: visibilities.to_vec(),
    }
}

/// A service with every visibility, basic-auth pulls, plain and secret configs, probes,
/// limits and autoscaling.
fn full_service() -> WorkloadSpec {
    let mut s = spec("api", WorkloadKind::Service);
    s.auth = Some(PullAuth {
        username: "robot".into(),
        password: "hunter2-very-secret".into(),
        server: "registry.example.com:5000".into(),
    });
    s.env = vec![
        ("LOG_LEVEL".into(), "debug".into()),
        ("DATABASE_PASSWORD".into(), "s3cr3t-db-password".into()),
    ];
    s.secret_env = vec!["DATABASE_PASSWORD".into()];
    s.files = vec![
        FileMount {
            path: "/etc/api/config.yaml".into(),
            content: b"mode: strict\n".to_vec(),
            secret: false,
        },
        FileMount {
            path: "/etc/api/tls.key".into(),
            content: b"-----BEGIN PRIVATE KEY----- top secret".to_vec(),
            secret: true,
        },
    ];
    s.port = Some(8080);
    s.readiness = Some(Probe::http("/healthz", 8080));
    s.liveness = Some(Probe {
        action: ProbeAction::Tcp { port: 8080 },
        initial_delay: Duration::from_secs(5),
        period: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        failure_threshold: 3,
    });
    s.cpu_millis = Some(500);
    s.memory_bytes = Some(256 * 1024 * 1024);
    s.scaling = Some(Scaling {
        min_replicas: 2,
        max_replicas: 5,
        cpu_utilization: Some(80),
        memory_utilization: Some(75),
    });
    s.endpoints = vec![
        endpoint("public-api", 8080, "/api", &[Visibility::Public]),
        endpoint("org-api", 9090, "/internal", &[Visibility::Organization]),
        endpoint(
            "metrics",
            9100,
            "/",
            &[Visibility::Project, Visibility::Organization],
        ),
    ];
    s
}

fn yaml(objects: &[Value]) -> String {
    to_yaml(objects)
}

#[test]
fn namespace_and_its_policies() {
    insta::assert_snapshot!(yaml(&render_namespace(&key("api"))));
}

#[test]
fn service_with_every_visibility() {
    let out = render_workload(&full_service(), &RenderOptions::default()).unwrap();
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn service_public_only_without_configs() {
    // What a service without an endpoints file gets: one Public endpoint at `/`.
    let mut s = spec("web", WorkloadKind::Service);
    s.port = Some(8080);
    s.readiness = Some(Probe::http("/", 8080));
    s.endpoints = vec![endpoint("default", 8080, "/", &[Visibility::Public])];
    let out = render_workload(&s, &RenderOptions::default()).unwrap();
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn service_project_only() {
    // Project visibility: reachable in its namespace only, so no route and no extra policy.
    let mut s = spec("db-proxy", WorkloadKind::Service);
    s.port = Some(5432);
    s.endpoints = vec![EndpointSpec {
        http: false,
        ..endpoint("pg", 5432, "/", &[Visibility::Project])
    }];
    s.replicas = 2;
    let out = render_workload(&s, &RenderOptions::default()).unwrap();
    let kinds: Vec<&str> = out.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn organization_only_service() {
    let mut s = spec("ledger", WorkloadKind::Service);
    s.port = Some(8080);
    s.endpoints = vec![endpoint("ledger", 8080, "/v1", &[Visibility::Organization])];
    let out = render_workload(&s, &RenderOptions::default()).unwrap();
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn web_app() {
    let mut s = spec("storefront", WorkloadKind::WebApp);
    s.port = Some(3000);
    s.readiness = Some(Probe::http("/", 3000));
    s.env = vec![("API_URL".into(), "http://api".into())];
    let opts = RenderOptions {
        web_app_domain: "apps.example.com".into(),
        ..RenderOptions::default()
    };
    let out = render_workload(&s, &opts).unwrap();
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn ingress_instead_of_gateway_api() {
    let opts = RenderOptions {
        routing: Routing::Ingress {
            external_class: "nginx".into(),
            internal_class: "nginx-internal".into(),
        },
        ..RenderOptions::default()
    };
    let mut out = render_workload(&full_service(), &opts).unwrap();
    out.retain(|o| o["kind"] == "Ingress");
    assert_eq!(out.len(), 2, "a public and an organization Ingress");
    let mut web = spec("storefront", WorkloadKind::WebApp);
    web.port = Some(3000);
    out.extend(
        render_workload(&web, &opts)
            .unwrap()
            .into_iter()
            .filter(|o| o["kind"] == "Ingress"),
    );
    insta::assert_snapshot!(yaml(&out));
}

fn schedule() -> TaskSchedule {
    TaskSchedule {
        expr: "30 2 * * 1-5".into(),
        zone: "Europe/Berlin".into(),
        concurrency: ConcurrencyPolicy::Forbid,
        starting_deadline_seconds: Some(300),
        active_deadline_seconds: Some(3600),
        suspended: false,
        successful_history_limit: 3,
        failed_history_limit: 1,
    }
}

#[test]
fn scheduled_task() {
    let mut s = spec("report", WorkloadKind::ScheduledTask(Some(schedule())));
    s.auth = Some(PullAuth {
        username: "u".into(),
        password: "p".into(),
        server: "docker.io".into(),
    });
    s.env = vec![("REPORT_TOKEN".into(), "tok-123".into())];
    s.secret_env = vec!["REPORT_TOKEN".into()];
    s.args = Some(vec!["--format".into(), "csv".into()]);
    let out = render_workload(&s, &RenderOptions::default()).unwrap();
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn scheduled_task_policies() {
    for (policy, expected) in [
        (ConcurrencyPolicy::Allow, "Allow"),
        (ConcurrencyPolicy::Forbid, "Forbid"),
        (ConcurrencyPolicy::Replace, "Replace"),
    ] {
        let mut sched = schedule();
        sched.concurrency = policy;
        sched.starting_deadline_seconds = None;
        sched.suspended = true;
        let s = spec("report", WorkloadKind::ScheduledTask(Some(sched)));
        let out = render_workload(&s, &RenderOptions::default()).unwrap();
        let cron = out.iter().find(|o| o["kind"] == "CronJob").unwrap();
        assert_eq!(cron["spec"]["concurrencyPolicy"], expected);
        assert_eq!(cron["spec"]["suspend"], true);
        assert!(cron["spec"].get("startingDeadlineSeconds").is_none());
    }
    // No schedule yet: nothing runs by itself.
    let s = spec("report", WorkloadKind::ScheduledTask(None));
    assert!(
        render_workload(&s, &RenderOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn manual_task_run() {
    let mut s = spec("migrate", WorkloadKind::ManualTask);
    assert!(
        render_workload(&s, &RenderOptions::default())
            .unwrap()
            .is_empty(),
        "a manual task has no objects until it runs"
    );
    s.env = vec![("DRY_RUN".into(), "false".into())];
    let task = TaskSpec {
        workload: s,
        execution: "0193b7a4-6d2f-7e4b-8a11-abcdefabcdef".into(),
        extra_args: vec!["--to".into(), "42".into()],
        active_deadline: Some(Duration::from_secs(600)),
        log_limit: 1 << 20,
    };
    let out = render_job(&task, &RenderOptions::default()).unwrap();
    let job = out.iter().find(|o| o["kind"] == "Job").unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--to", "42"])
    );
    insta::assert_snapshot!(yaml(&out));
}

#[test]
fn run_arguments_follow_the_spec_arguments() {
    let mut s = spec("migrate", WorkloadKind::ManualTask);
    s.args = Some(vec!["migrate".into()]);
    let task = TaskSpec {
        workload: s,
        execution: "x1".into(),
        extra_args: vec!["--to".into(), "42".into()],
        active_deadline: None,
        log_limit: 1,
    };
    let out = render_job(&task, &RenderOptions::default()).unwrap();
    let job = out.iter().find(|o| o["kind"] == "Job").unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["migrate", "--to", "42"])
    );
    assert!(job["spec"].get("activeDeadlineSeconds").is_none());
}

#[test]
fn whole_environment() {
    let mut web = spec("web", WorkloadKind::Service);
    web.port = Some(8080);
    web.auth = full_service().auth;
    web.endpoints = vec![endpoint("default", 8080, "/", &[Visibility::Public])];
    let out = render_all(&[full_service(), web], &RenderOptions::default()).unwrap();
    let secrets = out
        .iter()
        .filter(|o| o["metadata"]["labels"][PULL_SECRET_LABEL] == "true")
        .count();
    assert_eq!(secrets, 1, "one pull Secret per registry and namespace");
    let namespaces = out.iter().filter(|o| o["kind"] == "Namespace").count();
    assert_eq!(namespaces, 1);
}

#[test]
fn secrets_are_redacted_unless_revealed() {
    let s = full_service();
    let text = yaml(&render_workload(&s, &RenderOptions::default()).unwrap());
    let encoded = |v: &str| BASE64.encode(v);
    for secret in ["hunter2-very-secret", "s3cr3t-db-password", "top secret"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    assert!(!text.contains(&encoded("s3cr3t-db-password")));
    assert!(text.contains(&encoded(REDACTED)));
    // Plain configs are not secrets: they stay readable.
    assert!(text.contains("mode: strict"));
    let opts = RenderOptions {
        reveal_secrets: true,
        ..RenderOptions::default()
    };
    let out = render_workload(&s, &opts).unwrap();
    let text = yaml(&out);
    assert!(text.contains(&encoded("s3cr3t-db-password")));
    assert!(!text.contains(REDACTED_ANNOTATION));
    let pull = out
        .iter()
        .find(|o| o["type"] == "kubernetes.io/dockerconfigjson")
        .unwrap();
    let config = BASE64
        .decode(pull["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    let auth = &config["auths"]["registry.example.com:5000"];
    assert_eq!(auth["password"], "hunter2-very-secret");
    assert_eq!(auth["auth"], encoded("robot:hunter2-very-secret"));
}

#[test]
fn implicit_auth_has_no_pull_secret() {
    let mut s = full_service();
    s.auth = None;
    let out = render_workload(&s, &RenderOptions::default()).unwrap();
    assert!(
        !out.iter()
            .any(|o| o["type"] == "kubernetes.io/dockerconfigjson")
    );
    let d = out.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert!(
        d["spec"]["template"]["spec"]
            .get("imagePullSecrets")
            .is_none()
    );
}

#[test]
fn invalid_specs_are_refused() {
    let mut s = full_service();
    s.image = "registry.example.com/shop/api:latest".into();
    assert!(matches!(
        render_workload(&s, &RenderOptions::default()),
        Err(Error::Invalid(m)) if m.contains("digest")
    ));
    let mut s = full_service();
    s.scaling = Some(Scaling {
        min_replicas: 3,
        max_replicas: 2,
        cpu_utilization: None,
        memory_utilization: None,
    });
    assert!(render_workload(&s, &RenderOptions::default()).is_err());
    let mut s = full_service();
    s.files[0].path = "relative.txt".into();
    assert!(render_workload(&s, &RenderOptions::default()).is_err());
}

#[test]
fn long_names_fit_dns_labels() {
    let long = "a".repeat(40);
    let k = WorkloadKey {
        org: long.clone(),
        project: long.clone(),
        component: long.clone(),
        env: long.clone(),
    };
    let ns = namespace_name(&k);
    assert!(ns.len() <= 63, "{ns}");
    let mut other = k.clone();
    other.env = format!("{}b", &long[..39]);
    assert_ne!(ns, namespace_name(&other), "distinct inputs stay distinct");
    assert_eq!(namespace_name(&key("x")), "berth-acme-shop-development");
    assert!(job_name(&k, "0193b7a4-6d2f-7e4b-8a11-abcdefabcdef").len() <= 63);
    assert_eq!(
        pull_secret_name("127.0.0.1:5000"),
        "registry-127-0-0-1-5000"
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = render_workload(&full_service(), &RenderOptions::default()).unwrap();
    let b = render_workload(&full_service(), &RenderOptions::default()).unwrap();
    assert_eq!(a, b);
}
