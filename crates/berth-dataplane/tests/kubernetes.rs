//! The Kubernetes driver against an in-process API stub (a tiny fake API server on loopback
//! that stores what is applied, lists it with label selectors and records every request), and
//! against a real cluster when `KUBECONFIG` is set.
#![cfg(feature = "kubernetes")]

use std::time::Duration;

use axum::http::Method;
use berth_core::endpoints::Visibility;
use berth_dataplane::kubernetes::{Kubernetes, RenderOptions};
use berth_dataplane::{
    DataPlane, EndpointSpec, Error, FileMount, LogsOptions, NoRoutes, Probe, PullAuth, PullPolicy,
    RolloutEvent, TaskSpec, WorkloadKey, WorkloadKind, WorkloadSpec,
};
use berth_testkit::kube_stub::{Request, Stub, kubeconfig, query_param};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn driver(stub: &Stub) -> Kubernetes {
    let url = stub.start().await;
    // A kubeconfig pointing at the stub, read the way `KUBECONFIG` is.
    Kubernetes::from_kubeconfig(&kubeconfig(&url), RenderOptions::default())
        .await
        .unwrap()
}

fn key(component: &str) -> WorkloadKey {
    WorkloadKey {
        org: "acme".into(),
        project: "shop".into(),
        component: component.into(),
        env: "development".into(),
    }
}

const NS: &str = "berth-acme-shop-development";
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

fn spec(release: &str) -> WorkloadSpec {
    WorkloadSpec {
        key: key("api"),
        release: release.into(),
        image: format!("registry.example.com/shop/api@{DIGEST}"),
        auth: Some(PullAuth {
            username: "robot".into(),
            password: "pull-password".into(),
            server: "registry.example.com".into(),
        }),
        pull_policy: PullPolicy::IfNotPresent,
        env: vec![
            ("MODE".into(), "fast".into()),
            ("TOKEN".into(), "env-secret-value".into()),
        ],
        files: vec![FileMount {
            path: "/etc/api/key".into(),
            content: b"file-secret".to_vec(),
            secret: true,
        }],
        command: None,
        args: None,
        port: Some(8080),
        memory_bytes: None,
        cpu_millis: None,
        replicas: 2,
        readiness: Some(Probe::http("/", 8080)),
        liveness: None,
        ready_timeout: Duration::from_secs(10),
        drain: Duration::from_secs(5),
        kind: WorkloadKind::Service,
        endpoints: vec![EndpointSpec {
            name: "api".into(),
            port: 8080,
            http: true,
            context: "/api".into(),
            visibilities: vec![Visibility::Public, Visibility::Organization],
        }],
        secret_env: vec!["TOKEN".into()],
        scaling: None,
    }
}

fn berth_labels(component: &str) -> Value {
    json!({ "berth.managed": "true", "berth.component": component, "berth.org": "acme",
            "berth.project": "shop", "berth.env": "development" })
}

#[tokio::test]
async fn rollout_applies_server_side_and_prunes() {
    let stub = Stub::default();
    // Left over from an earlier release: berth's, for this component, no longer rendered.
    let stale_cm = format!("/api/v1/namespaces/{NS}/configmaps/api-config-000000000001");
    stub.insert(
        &stale_cm,
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "api-config-000000000001", "namespace": NS, "labels": berth_labels("api") } }),
    );
    let stale_route =
        format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/api-old");
    stub.insert(
        &stale_route,
        json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": { "name": "api-old", "namespace": NS, "labels": berth_labels("api") } }),
    );
    // Another component's object and an object berth does not manage: never touched.
    let other = format!("/api/v1/namespaces/{NS}/configmaps/web-config-000000000001");
    stub.insert(
        &other,
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "web-config-000000000001", "namespace": NS, "labels": berth_labels("web") } }),
    );
    let foreign = format!("/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt");
    stub.insert(
        &foreign,
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "kube-root-ca.crt", "namespace": NS } }),
    );
    // A pull Secret of a registry nobody uses any more.
    let old_pull = format!("/api/v1/namespaces/{NS}/secrets/registry-old-example-com");
    stub.insert(
        &old_pull,
        json!({ "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "registry-old-example-com", "namespace": NS,
                    "labels": { "berth.managed": "true", "berth.pull-secret": "true" } } }),
    );
    let k8s = driver(&stub).await;
    let info = k8s.ping().await.unwrap();
    assert_eq!(info.version, "v1.33.1");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let instances = k8s
        .rollout(
            &spec("0193b7a4-5c1e-7d3a-9f00-aaaaaaaaaaaa"),
            &NoRoutes,
            &tx,
        )
        .await
        .unwrap();
    assert_eq!(
        instances.len(),
        1,
        "the fake controller runs one pod per Deployment"
    );
    assert_eq!(instances[0].id, format!("{NS}/api-pod"));
    assert_eq!(instances[0].key, key("api"));
    drop(tx);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RolloutEvent::Pulled { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RolloutEvent::Switched { backends: 1 }))
    );

    let requests = stub.requests();
    let patches: Vec<&Request> = requests
        .iter()
        .filter(|r| r.method == Method::PATCH)
        .collect();
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{}", p.path);
        assert_eq!(
            query_param(&p.query, "fieldManager").as_deref(),
            Some("berth")
        );
        assert_eq!(query_param(&p.query, "force").as_deref(), Some("true"));
    }
    let applied: Vec<&str> = patches.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        format!("/api/v1/namespaces/{NS}"),
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/berth-default-deny"),
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/api-public"),
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/api-organization"),
        format!("/api/v1/namespaces/{NS}/secrets/registry-registry-example-com"),
        format!("/api/v1/namespaces/{NS}/secrets/api-config-aaaaaaaaaaaa"),
        format!("/api/v1/namespaces/{NS}/configmaps/api-config-aaaaaaaaaaaa"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/api"),
        format!("/api/v1/namespaces/{NS}/services/api"),
        format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/api-public"),
        format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/api-organization"),
    ] {
        assert!(
            applied.contains(&expected.as_str()),
            "{expected} not applied: {applied:#?}"
        );
    }
    // The objects' shapes.
    let body = |suffix: &str| {
        patches
            .iter()
            .find(|p| p.path.ends_with(suffix))
            .and_then(|p| p.body.clone())
            .unwrap()
    };
    let d = body("/deployments/api");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        format!("registry.example.com/shop/api@{DIGEST}")
    );
    assert_eq!(
        pod["imagePullSecrets"][0]["name"],
        "registry-registry-example-com"
    );
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["port"],
        8080
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["berth.release"],
        "0193b7a4-5c1e-7d3a-9f00-aaaaaaaaaaaa"
    );
    let secret = body("/secrets/api-config-aaaaaaaaaaaa");
    // What is applied carries the real values (base64), not the redaction.
    assert_eq!(secret["data"]["TOKEN"], "ZW52LXNlY3JldC12YWx1ZQ==");
    assert!(secret["metadata"].get("annotations").is_none());
    let route = body("/httproutes/api-public");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "berth-external");
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/acme/shop/api/development/api"
    );

    // Pruning: berth's own leftovers of this component go, nothing else does.
    let deleted: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path.as_str())
        .collect();
    assert!(deleted.contains(&stale_cm.as_str()), "{deleted:?}");
    assert!(deleted.contains(&stale_route.as_str()), "{deleted:?}");
    assert!(deleted.contains(&old_pull.as_str()), "{deleted:?}");
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    assert!(stub.has(&other) && stub.has(&foreign));
    // Listing for pruning uses berth's ownership labels.
    assert!(requests.iter().any(|r| r.method == Method::GET
        && r.path.ends_with("/configmaps")
        && query_param(&r.query, "labelSelector").as_deref()
            == Some("berth.managed=true,berth.component=api")));

    // The reconciler's sweep sees the workload.
    assert_eq!(k8s.managed_keys().await.unwrap(), [key("api")]);

    // Rolling out the same release again changes nothing and deletes nothing.
    let before = stub.requests().len();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    k8s.rollout(
        &spec("0193b7a4-5c1e-7d3a-9f00-aaaaaaaaaaaa"),
        &NoRoutes,
        &tx,
    )
    .await
    .unwrap();
    assert!(
        !stub.requests()[before..]
            .iter()
            .any(|r| r.method == Method::DELETE)
    );

    // Logs come from pods/log.
    let mut logs = k8s
        .logs(
            &instances[0].id,
            &LogsOptions {
                tail: Some(10),
                since: None,
                follow: false,
            },
        )
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(l) = logs.next().await {
        lines.push(l.unwrap().text);
    }
    assert_eq!(lines, ["hello", "world"]);
    let log_request = stub
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/log"))
        .unwrap();
    assert_eq!(
        query_param(&log_request.query, "tailLines").as_deref(),
        Some("10")
    );

    // Removing the workload deletes its objects (and the pull Secret nobody uses now).
    k8s.remove_workload(&key("api")).await.unwrap();
    assert!(!stub.has(&format!("/apis/apps/v1/namespaces/{NS}/deployments/api")));
    assert!(!stub.has(&format!(
        "/api/v1/namespaces/{NS}/secrets/registry-registry-example-com"
    )));
    assert!(stub.has(&other));
    // Gone already: still fine.
    k8s.remove_workload(&key("api")).await.unwrap();
}

#[tokio::test]
async fn pull_failure_rolls_back() {
    let stub = Stub::default();
    stub.0.lock().unwrap().fail_pulls = true;
    let k8s = driver(&stub).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let err = k8s
        .rollout(
            &spec("0193b7a4-5c1e-7d3a-9f00-bbbbbbbbbbbb"),
            &NoRoutes,
            &tx,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Pull { reason, .. } if reason.contains("ImagePullBackOff") && reason.contains("manifest unknown")),
        "{err}"
    );
    drop(tx);
    let mut rolled_back = false;
    while let Some(e) = rx.recv().await {
        rolled_back |= matches!(e, RolloutEvent::RolledBack { .. });
    }
    assert!(rolled_back);
    // There was no Deployment before: the failed one is deleted rather than left crashing.
    assert!(stub.requests().iter().any(|r| r.method == Method::DELETE
        && r.path == format!("/apis/apps/v1/namespaces/{NS}/deployments/api")));
}

#[tokio::test]
async fn task_runs_as_a_job() {
    let stub = Stub::default();
    let k8s = driver(&stub).await;
    let mut workload = spec("0193b7a4-5c1e-7d3a-9f00-cccccccccccc");
    workload.kind = WorkloadKind::ManualTask;
    workload.port = None;
    workload.readiness = None;
    workload.endpoints.clear();
    workload.args = Some(vec!["report".into()]);
    let task = TaskSpec {
        workload,
        execution: "0193b7a4-6d2f-7e4b-8a11-dddddddddddd".into(),
        extra_args: vec!["--day".into(), "monday".into()],
        active_deadline: Some(Duration::from_secs(60)),
        log_limit: 1024,
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let out = k8s.run_task(&task, &tx).await.unwrap();
    assert_eq!(out.exit_code, 3);
    assert!(!out.timed_out);
    assert_eq!(out.logs, "hello\nworld\n");
    let requests = stub.requests();
    let job = requests
        .iter()
        .find(|r| r.method == Method::PATCH && r.path.contains("/jobs/"))
        .unwrap();
    assert_eq!(
        job.path,
        format!("/apis/batch/v1/namespaces/{NS}/jobs/api-run-dddddddddddd")
    );
    let body = job.body.as_ref().unwrap();
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["report", "--day", "monday"])
    );
    assert_eq!(body["spec"]["activeDeadlineSeconds"], 60);
    assert_eq!(body["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

/// Against a real cluster: runs only when `KUBECONFIG` is set, and needs a digest-pinned
/// image that serves HTTP on 8080 (`BERTH_K8S_TEST_IMAGE`, e.g. the test image pushed to a
/// registry the cluster can pull from).
#[tokio::test]
#[allow(clippy::print_stderr)] // says why it skipped
async fn real_cluster() {
    let (Ok(_), Ok(image)) = (
        std::env::var("KUBECONFIG"),
        std::env::var("BERTH_K8S_TEST_IMAGE"),
    ) else {
        eprintln!(
            "skipping: set KUBECONFIG and BERTH_K8S_TEST_IMAGE (host/repo@sha256:…) to run against a cluster"
        );
        return;
    };
    let k8s = Kubernetes::connect(RenderOptions::default()).await.unwrap();
    k8s.ping().await.unwrap();
    let mut s = spec(&format!("it-{}", std::process::id()));
    s.key = WorkloadKey {
        org: "berth-it".into(),
        project: format!("p{}", std::process::id()),
        component: "web".into(),
        env: "test".into(),
    };
    s.image = image;
    s.auth = None;
    s.replicas = 1;
    s.ready_timeout = Duration::from_secs(180);
    struct Cleanup(Kubernetes, WorkloadKey);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let (k, key) = (self.0.clone(), self.1.clone());
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async move { k.remove_workload(&key).await })
            })
            .join();
        }
    }
    let _cleanup = Cleanup(k8s.clone(), s.key.clone());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let instances = k8s.rollout(&s, &NoRoutes, &tx).await.unwrap();
    assert!(!instances.is_empty());
    // The same release again is a no-op that returns the running pods.
    let again = k8s.rollout(&s, &NoRoutes, &tx).await.unwrap();
    assert_eq!(
        instances.iter().map(|i| &i.id).collect::<Vec<_>>(),
        again.iter().map(|i| &i.id).collect::<Vec<_>>()
    );
}

/// The release label of the stub's Deployment of `api`.
fn applied_release(stub: &Stub) -> Value {
    let state = stub.0.lock().unwrap();
    state.objects[&format!("/apis/apps/v1/namespaces/{NS}/deployments/api")]["metadata"]["labels"]
        ["berth.release"]
        .clone()
}

/// The reconciler's apply of what it read as serving (`keep_serving`) and its removal of a
/// workload the store does not want take the workload's rollout lock and ask `superseded`
/// under it: a check that read r1 before a deploy of r2 started waits for the deploy and then
/// stands down, instead of applying r1 over it; a removal of a workload being deployed does
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_apply_that_lost_the_race_to_a_deploy_stands_down() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stub = Stub::default();
    let k8s = driver(&stub).await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let r1 = spec("0193b7a4-5c1e-7d3a-9f00-111111111111");
    k8s.rollout(&r1, &NoRoutes, &tx).await.unwrap();
    // Nothing started since: the check applies what serves.
    let kept = k8s.keep_serving(&r1, &tx, || false).await;
    assert!(matches!(kept, Some(Ok(_))), "{kept:?}");
    assert_eq!(applied_release(&stub), r1.release.as_str());

    let deploying = AtomicBool::new(false);
    let r2 = spec("0193b7a4-5c1e-7d3a-9f00-222222222222");
    let deploy = async {
        deploying.store(true, Ordering::SeqCst);
        k8s.rollout(&r2, &NoRoutes, &tx).await
    };
    let check = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        k8s.keep_serving(&r1, &tx, || deploying.load(Ordering::SeqCst))
            .await
    };
    let (deployed, kept) = tokio::join!(deploy, check);
    deployed.unwrap();
    assert!(kept.is_none(), "the stale check acted: {kept:?}");
    assert_eq!(applied_release(&stub), r2.release.as_str());
    let last_apply = stub
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == Method::PATCH && r.path.ends_with("/deployments/api"))
        .unwrap();
    assert_eq!(
        last_apply.body.unwrap()["metadata"]["labels"]["berth.release"],
        r2.release.as_str()
    );

    // A removal while a deploy of the workload runs: nothing is deleted.
    let deployment = format!("/apis/apps/v1/namespaces/{NS}/deployments/api");
    let requests = stub.requests().len();
    assert!(
        k8s.remove_unless_superseded(&key("api"), || true)
            .await
            .is_none()
    );
    assert!(stub.has(&deployment));
    assert_eq!(
        stub.requests().len(),
        requests,
        "a superseded removal sent requests"
    );
    k8s.remove_unless_superseded(&key("api"), || false)
        .await
        .unwrap()
        .unwrap();
    assert!(!stub.has(&deployment));
}
