//! The server on the Kubernetes data plane, against the in-process Kubernetes API stub: the
//! deploy pipeline applies what `GET …/render` prints (object for object, byte for byte once
//! secrets are revealed), scheduled tasks become CronJobs, and the reconciler removes workloads
//! the store no longer wants.
#![cfg(feature = "kubernetes")]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use berth_core::api::{
    ComponentType, ConcurrencyPolicy, ConfigKind, DeploymentStatus, RegistryAuthType,
};
use berth_core::endpoints::{Endpoint, EndpointType, Visibility};
use berth_dataplane::kubernetes::{Kubernetes, RenderOptions};
use berth_dataplane::{Plane, WorkloadKey};
use berth_server::{AppState, KubernetesSettings, RuntimeConfig, deploy, router};
use berth_store::keys::MasterKey;
use berth_store::{
    ComponentRef, NewComponent, NewRelease, Origin, RegistrySettings, ReleaseChoice,
    ScheduleSettings, Store,
};
use berth_testkit::kube_stub::{Stub, kubeconfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const NS: &str = "berth-default-shop-development";
const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const SECRET: &str = "k8s-s3cret-value";

struct Fixture {
    state: AppState,
    stub: Stub,
    token: String,
    _dir: tempfile::TempDir,
}

fn target(component: &str) -> ComponentRef<'_> {
    ComponentRef {
        org: "default",
        project: "shop",
        component,
    }
}

impl Fixture {
    async fn new() -> Self {
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
                "corp",
                &RegistrySettings {
                    display_name: "Corp".into(),
                    host: "registry.example.com".into(),
                    auth_type: RegistryAuthType::Basic,
                    username: Some("robot".into()),
                    password: Some(berth_core::Secret::new("pull-pass")),
                    ca_pem: None,
                    insecure: false,
                    platform: "linux/amd64".into(),
                },
            )
            .await
            .unwrap();
        let stub = Stub::default();
        let url = stub.start().await;
        let settings = KubernetesSettings {
            render: RenderOptions {
                web_app_domain: "apps.example.com".into(),
                ..RenderOptions::default()
            },
            scaling: Some(berth_server::Scaling {
                min_replicas: 1,
                max_replicas: 4,
                cpu_utilization: Some(70),
                memory_utilization: None,
            }),
        };
        let k8s = Kubernetes::from_kubeconfig(&kubeconfig(&url), settings.render.clone())
            .await
            .unwrap();
        let state = AppState::with_plane(
            store,
            Ok(Plane::Kubernetes(k8s)),
            RuntimeConfig {
                ssrf: berth_server::SsrfPolicy::default(),
                ready_timeout: Duration::from_secs(10),
                drain: Duration::from_millis(100),
                public_url: "http://127.0.0.1:1".into(),
                ci_rate_per_minute: 30,
                kubernetes: settings,
            },
            Arc::new(berth_server::gateway::Gateway::new(
                "http://127.0.0.1:2".into(),
            )),
        );
        Self {
            state,
            stub,
            token,
            _dir: dir,
        }
    }

    /// Creates `name` and a pending deployment of it in development; returns the deployment id.
    async fn component(
        &self,
        name: &str,
        kind: ComponentType,
        port: Option<u16>,
        endpoints: &str,
    ) -> String {
        let store = self.state.store();
        let repository = format!("registry.example.com/shop/{name}");
        store
            .insert_component(
                "default",
                "shop",
                &NewComponent {
                    name,
                    display_name: name,
                    description: "",
                    kind,
                    registry: "corp",
                    image: &format!("{repository}:v1"),
                    port,
                },
            )
            .await
            .unwrap();
        store
            .create_deployment(
                target(name),
                "development",
                ReleaseChoice::New(NewRelease {
                    registry: "corp",
                    repository: &repository,
                    tag: Some("v1"),
                    digest: DIGEST,
                    port,
                    endpoints,
                    config: "{}",
                }),
                None,
                Origin {
                    trigger: "user",
                    actor: "admin/bootstrap",
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn settle(&self, id: &str) -> DeploymentStatus {
        for _ in 0..200 {
            let d = self
                .state
                .store()
                .get_deployment(id)
                .await
                .unwrap()
                .unwrap();
            let status = d.deployment.status;
            if !matches!(
                status,
                DeploymentStatus::Pending | DeploymentStatus::Pulling | DeploymentStatus::Starting
            ) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("deployment {id} did not settle");
    }

    async fn render(&self, query: &str) -> Value {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!(
                "/api/v1/orgs/default/projects/shop/environments/development/render{query}"
            ))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        let res = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// The body of the last server-side apply of each object, by API path.
    fn applied(&self) -> std::collections::BTreeMap<String, Value> {
        self.stub
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::PATCH)
            .map(|r| (r.path, r.body.unwrap_or_default()))
            .collect()
    }
}

/// The API path of a rendered object.
fn path_of(o: &Value) -> String {
    let api_version = o["apiVersion"].as_str().unwrap();
    let kind = o["kind"].as_str().unwrap();
    let name = o["metadata"]["name"].as_str().unwrap();
    let plural = match kind {
        "NetworkPolicy" => "networkpolicies".to_owned(),
        "Ingress" => "ingresses".to_owned(),
        other => format!("{}s", other.to_ascii_lowercase()),
    };
    let prefix = if api_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{api_version}")
    };
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    }
}

fn endpoints_json() -> String {
    let e = |name: &str, port, context: &str, v: Vec<Visibility>| Endpoint {
        name: name.into(),
        display_name: name.into(),
        port,
        kind: EndpointType::Rest,
        visibilities: v,
        context: context.into(),
        schema_file: None,
    };
    serde_json::to_string(&vec![
        e("api", 8080, "/api", vec![Visibility::Public]),
        e("admin", 9090, "/admin", vec![Visibility::Organization]),
    ])
    .unwrap()
}

#[tokio::test]
async fn render_is_what_the_deploy_pipeline_applies() {
    let f = Fixture::new().await;
    let api = f
        .component("api", ComponentType::Service, Some(8080), &endpoints_json())
        .await;
    f.state
        .store()
        .change_configs(
            target("api"),
            "development",
            &[
                (ConfigKind::Env, "MODE".into(), "fast".into()),
                (ConfigKind::SecretEnv, "TOKEN".into(), SECRET.into()),
            ],
            &[],
        )
        .await
        .unwrap();
    let web = f
        .component("web", ComponentType::WebApp, Some(3000), "[]")
        .await;
    let report = f
        .component("report", ComponentType::ScheduledTask, None, "[]")
        .await;
    f.state
        .store()
        .put_schedule(
            target("report"),
            "development",
            &ScheduleSettings {
                expr: "0 3 * * *".into(),
                zone: "Europe/Berlin".into(),
                concurrency: ConcurrencyPolicy::Forbid,
                starting_deadline_seconds: Some(120),
                active_deadline_seconds: Some(600),
                suspended: false,
                successful_history_limit: 2,
                failed_history_limit: 1,
            },
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    for component in ["api", "web", "report"] {
        deploy::kick(
            &f.state,
            WorkloadKey {
                org: "default".into(),
                project: "shop".into(),
                component: component.into(),
                env: "development".into(),
            },
        );
    }
    for id in [&api, &web, &report] {
        assert_eq!(f.settle(id).await, DeploymentStatus::Ready);
    }

    // Revealed, the render is exactly what was applied, object for object.
    let rendered = f.render("?revealSecrets=true").await;
    assert_eq!(rendered["redacted"], false);
    let objects = rendered["objects"].as_array().unwrap();
    let applied = f.applied();
    for o in objects {
        let path = path_of(o);
        assert_eq!(applied.get(&path), Some(o), "{path}: rendered ≠ applied");
    }
    assert_eq!(
        objects.len(),
        applied.len(),
        "every applied object is rendered: {:#?}",
        applied.keys().collect::<Vec<_>>()
    );
    let kinds: std::collections::BTreeSet<&str> =
        objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "NetworkPolicy",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "HTTPRoute",
        "CronJob",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let cron = &applied[&format!("/apis/batch/v1/namespaces/{NS}/cronjobs/report")];
    assert_eq!(cron["spec"]["timeZone"], "Europe/Berlin");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let web_route =
        &applied[&format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/web-web")];
    assert_eq!(
        web_route["spec"]["hostnames"],
        json!(["web-shop-development.default.apps.example.com"])
    );
    let d = &applied[&format!("/apis/apps/v1/namespaces/{NS}/deployments/api")];
    assert!(
        d["spec"].get("replicas").is_none(),
        "the autoscaler owns it"
    );

    // Redacted by default: the secret appears nowhere.
    let redacted = f.render("").await;
    let text = redacted.to_string();
    assert!(!text.contains(SECRET));
    assert!(!text.contains("pull-pass"));
    assert_eq!(redacted["objects"].as_array().unwrap().len(), objects.len());
    // One component only.
    let one = f.render("?component=web").await;
    assert_eq!(one["components"], json!(["web"]));
    assert!(
        one["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["metadata"]["labels"]["berth.component"].is_null()
                || o["metadata"]["labels"]["berth.component"] == "web")
    );

    // The reconciler keeps what the store wants and removes what it does not.
    f.stub.insert(
        "/apis/apps/v1/namespaces/berth-default-shop-production/deployments/gone",
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "gone", "namespace": "berth-default-shop-production",
                "labels": { "berth.managed": "true", "berth.org": "default", "berth.project": "shop",
                            "berth.component": "gone", "berth.env": "production" } },
            "spec": { "selector": {}, "template": {} } }),
    );
    let before = f.stub.requests().len();
    deploy::reconcile(&f.state).await;
    let deleted: Vec<String> = f.stub.requests()[before..]
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deleted,
        ["/apis/apps/v1/namespaces/berth-default-shop-production/deployments/gone"]
    );
}
