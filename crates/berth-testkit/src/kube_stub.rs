//! An in-process stand-in for the Kubernetes API server, for the Kubernetes driver's tests:
//! it stores what is applied (server-side apply PATCHes), lists it with label selectors,
//! deletes, serves `/version` and `pods/log`, and records every request so tests can assert
//! their shapes. Fake controllers fill in status: every Deployment runs one ready pod (or one
//! that cannot pull its image, with [`StubState::fail_pulls`]), every Job one pod that exited
//! with code 3.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    /// The body, parsed (JSON or YAML).
    pub body: Option<Value>,
}

#[derive(Default)]
pub struct StubState {
    /// Stored objects by API path.
    pub objects: BTreeMap<String, Value>,
    pub requests: Vec<Request>,
    /// Pods of Deployments cannot pull their image.
    pub fail_pulls: bool,
}

/// The fake API server; clones share its state.
#[derive(Clone, Default)]
pub struct Stub(pub Arc<Mutex<StubState>>);

const COLLECTIONS: [&str; 14] = [
    "namespaces",
    "deployments",
    "services",
    "horizontalpodautoscalers",
    "configmaps",
    "secrets",
    "networkpolicies",
    "httproutes",
    "ingresses",
    "cronjobs",
    "jobs",
    "pods",
    "events",
    "replicasets",
];

fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => true,
        })
}

/// A query parameter, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{path} not found"), "reason": "NotFound", "code": 404
        })),
    )
        .into_response()
}

impl StubState {
    /// Pods the fake controllers would run: one per Deployment replica, one per Job.
    fn pods(&self) -> Vec<(String, Value)> {
        let mut pods = Vec::new();
        for (path, o) in &self.objects {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let (template, status) = match o["kind"].as_str() {
                Some("Deployment") if path.contains("/deployments/") => {
                    let status = if self.fail_pulls {
                        json!({ "phase": "Pending", "containerStatuses": [{
                            "name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                            "state": { "waiting": { "reason": "ImagePullBackOff", "message": "manifest unknown" } }
                        }] })
                    } else {
                        json!({ "phase": "Running",
                            "conditions": [{ "type": "Ready", "status": "True" }],
                            "containerStatuses": [{ "name": "c", "image": "", "imageID": "sha256:1",
                                "ready": true, "restartCount": 0, "state": { "running": {} } }] })
                    };
                    (&o["spec"]["template"], status)
                }
                Some("Job") => (
                    &o["spec"]["template"],
                    json!({ "phase": "Failed", "containerStatuses": [{ "name": "c", "image": "",
                        "imageID": "sha256:1", "ready": false, "restartCount": 0,
                        "state": { "terminated": { "exitCode": 3 } } }] }),
                ),
                _ => continue,
            };
            let pod_name = format!("{name}-pod");
            pods.push((
                format!("/api/v1/namespaces/{ns}/pods/{pod_name}"),
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": { "name": pod_name, "namespace": ns, "labels": template["metadata"]["labels"] },
                    "spec": { "containers": [{ "name": "c" }] },
                    "status": status,
                }),
            ));
        }
        pods
    }

    /// An object as the API server would return it (status filled in by fake controllers).
    fn served(&self, path: &str, o: &Value) -> Value {
        let mut o = o.clone();
        o["metadata"]["generation"] = 1.into();
        o["metadata"]["resourceVersion"] = "1".into();
        if path.contains("/deployments/") {
            let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
            o["spec"]["replicas"] = replicas.into();
            o["status"] = if self.fail_pulls {
                json!({ "observedGeneration": 1, "replicas": replicas, "updatedReplicas": 0 })
            } else {
                json!({ "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas })
            };
        }
        if path.contains("/jobs/") {
            o["status"] = json!({ "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded" }] });
        }
        o
    }

    fn handle(&mut self, req: Request) -> Response {
        let path = req.path.clone();
        self.requests.push(req.clone());
        if path == "/version" {
            return axum::Json(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "x",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                "compiler": "gc", "platform": "linux/amd64"
            }))
            .into_response();
        }
        if let Some(pod) = path.strip_suffix("/log") {
            return if self.pods().iter().any(|(p, _)| p == pod) {
                "hello\nworld\n".into_response()
            } else {
                not_found(&path)
            };
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        match req.method {
            Method::PATCH => {
                let body = req.body.clone().unwrap_or(Value::Null);
                self.objects.insert(path.clone(), body.clone());
                axum::Json(self.served(&path, &body)).into_response()
            }
            Method::DELETE => match self.objects.remove(&path) {
                Some(o) => axum::Json(o).into_response(),
                None => not_found(&path),
            },
            Method::GET if COLLECTIONS.contains(&last) => {
                let selector = query_param(&req.query, "labelSelector").unwrap_or_default();
                let mut all: Vec<(String, Value)> = self
                    .objects
                    .iter()
                    .map(|(p, o)| (p.clone(), self.served(p, o)))
                    .collect();
                all.extend(self.pods());
                // `/api/v1/pods`, `/apis/apps/v1/deployments`: every namespace's.
                let cluster_wide = !path.contains("/namespaces/") && last != "namespaces";
                let items: Vec<Value> = all
                    .into_iter()
                    .filter(|(p, _)| {
                        let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or_default();
                        if cluster_wide {
                            parent.ends_with(&format!("/{last}")) && parent.contains("/namespaces/")
                        } else {
                            parent == path
                        }
                    })
                    .map(|(_, o)| o)
                    .filter(|o| selector_matches(&selector, &o["metadata"]["labels"]))
                    .collect();
                axum::Json(json!({
                    "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "1" }, "items": items
                }))
                .into_response()
            }
            Method::GET => match self.objects.get(&path) {
                Some(o) => axum::Json(self.served(&path, o)).into_response(),
                None => not_found(&path),
            },
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        }
    }
}

impl Stub {
    /// Serves on a free loopback port; returns its base URL.
    pub async fn start(&self) -> String {
        let stub = self.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let stub = stub.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // apply-patch+yaml bodies are YAML; kube sends JSON, which YAML reads too.
                    let body = (!body.is_empty())
                        .then(|| serde_yaml_ng::from_slice::<Value>(&body).ok())
                        .flatten();
                    let req = Request {
                        method,
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        content_type,
                        body,
                    };
                    stub.0.lock().unwrap().handle(req)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.0.lock().unwrap().requests.clone()
    }

    /// Stores an object as if it had been created earlier.
    pub fn insert(&self, path: &str, object: Value) {
        self.0
            .lock()
            .unwrap()
            .objects
            .insert(path.to_owned(), object);
    }

    pub fn has(&self, path: &str) -> bool {
        self.0.lock().unwrap().objects.contains_key(path)
    }
}

/// A kubeconfig (YAML) whose current context points at `url` with a bearer token.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: stub\n  cluster:\n    server: {url}\n\
         contexts:\n- name: stub\n  context:\n    cluster: stub\n    user: stub\n\
         current-context: stub\nusers:\n- name: stub\n  user:\n    token: stub-token\n"
    )
}
