//! The OpenAPI document against the router it describes: every path template parameter is
//! declared, every documented operation is routed, and every mutating operation leaves an
//! audit row. Each test walks the generated document, so a new route is covered the day it is
//! documented.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use utoipa::OpenApi;

use super::ApiDoc;
use crate::router;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

/// (method, path template, operation) of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The `{name}` parameters of a path template, in order.
fn template_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .map(|s| s.split('}').next().unwrap().to_owned())
        .collect()
}

/// The template with each parameter replaced by a value that names nothing.
fn concrete(path: &str) -> String {
    let mut out = path.to_owned();
    for name in template_names(path) {
        out = out.replace(&format!("{{{name}}}"), &format!("no-such-{name}"));
    }
    out
}

/// What is wrong with the path parameters (and responses) of the document's operations.
fn parameter_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (method, path, op) in operations(doc) {
        let in_template: BTreeSet<String> = template_names(&path).into_iter().collect();
        let mut declared = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] != "path" {
                continue;
            }
            let name = p["name"].as_str().unwrap().to_owned();
            if p["required"] != true {
                problems.push(format!(
                    "{method} {path}: path parameter {name} is not required"
                ));
            }
            if p["schema"].is_null() {
                problems.push(format!(
                    "{method} {path}: path parameter {name} has no schema"
                ));
            }
            declared.insert(name);
        }
        for missing in in_template.difference(&declared) {
            problems.push(format!("{method} {path}: {{{missing}}} is not declared"));
        }
        for extra in declared.difference(&in_template) {
            problems.push(format!(
                "{method} {path}: declares path parameter {extra} not in the template"
            ));
        }
        if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
            problems.push(format!("{method} {path}: no responses"));
        }
    }
    problems
}

#[test]
fn every_path_template_parameter_is_declared() {
    let doc = document();
    assert!(
        operations(&doc).len() > 60,
        "only {} operations documented",
        operations(&doc).len()
    );
    let problems = parameter_problems(&doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn an_undeclared_parameter_is_reported() {
    // The walk above must be able to fail: drop one declared parameter and it is reported.
    let mut doc = document();
    let path = "/api/v1/orgs/{org}/projects/{project}/components/{component}";
    let params = doc["paths"][path]["get"]["parameters"]
        .as_array_mut()
        .unwrap();
    let before = params.len();
    params.retain(|p| p["name"] != "component");
    assert_eq!(params.len(), before - 1, "component was declared");
    assert_eq!(
        parameter_problems(&doc),
        [format!("get {path}: {{component}} is not declared")]
    );
}

use crate::test_support::{Fixture, fixture};

/// Sends `method path` with the admin token and an empty JSON object (mutating methods).
async fn call(f: &Fixture, method: &str, path: &str) -> (StatusCode, String) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", f.token));
    let body = if method == Method::GET || method == Method::DELETE {
        Body::empty()
    } else {
        req = req.header(header::CONTENT_TYPE, "application/json");
        Body::from("{}")
    };
    let resp = router(f.state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let f = fixture().await;
    let doc = document();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        // Every parameter names nothing, so even the mutating calls change nothing.
        let (status, body) = call(&f, &method, &concrete(&path)).await;
        if status == StatusCode::METHOD_NOT_ALLOWED || body.contains("no such route") {
            problems.push(format!("{method} {path}: not routed ({status}: {body})"));
        }
        let documented = op["responses"].get(status.as_str()).is_some();
        if status.is_server_error() && !documented {
            problems.push(format!("{method} {path}: {status}: {body}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn every_mutating_operation_writes_an_audit_row() {
    let f = fixture().await;
    let doc = document();
    let mutating: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(m, _, _)| m != "get")
        .collect();
    assert!(
        mutating.len() > 30,
        "only {} mutating operations",
        mutating.len()
    );
    let mut called = Vec::new();
    for (method, path, _) in &mutating {
        let concrete = concrete(path);
        let (status, _) = call(&f, method, &concrete).await;
        called.push((method.to_uppercase(), concrete, status.as_u16()));
    }
    let audit = f.state.store().list_audit(10_000).await.unwrap();
    let mut missing = Vec::new();
    for (method, path, status) in &called {
        let found = audit
            .iter()
            .any(|e| e.method == *method && e.path == *path && e.status == i64::from(*status));
        if !found {
            missing.push(format!("{method} {path} ({status})"));
        }
    }
    assert!(
        missing.is_empty(),
        "mutating calls without an audit row:\n{}",
        missing.join("\n")
    );
}

/// Lines of `source` (before its tests) that compare secrets or their hashes with `==`/`!=` or
/// look them up by hash in SQL, instead of `subtle::ConstantTimeEq`.
fn variable_time_compares(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    code.lines()
        .map(|l| l.split("//").next().unwrap_or("").to_ascii_lowercase())
        .filter(|l| {
            // The idempotency key's request hash is a digest of a request body, no secret; a
            // form field's name compared with "csrf" is no secret either.
            let compares = (l.contains("==") || l.contains("!="))
                && !l.contains("request_hash")
                && !l.contains("\"csrf\"");
            (compares && (l.contains("hash") || l.contains("csrf") || l.contains("secret")))
                || l.contains("hash = $")
        })
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn secret_hashes_and_csrf_tokens_are_compared_in_constant_time() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let mut files = 0;
    for dir in [manifest.join("src"), manifest.join("../berth-store/src")] {
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs")
                {
                    files += 1;
                    let source = std::fs::read_to_string(&path).unwrap();
                    for line in variable_time_compares(&source) {
                        found.push(format!("{}: {line}", path.display()));
                    }
                }
            }
        }
    }
    assert!(files > 30, "only {files} source files scanned");
    assert!(found.is_empty(), "use ct_eq:\n{}", found.join("\n"));
    // The scan sees what it is for.
    assert_eq!(
        variable_time_compares("if stored_hash == hash_token(t) {}\nWHERE hash = $1\n"),
        ["if stored_hash == hash_token(t) {}", "where hash = $1"]
    );
    assert!(variable_time_compares("bool::from(a.ct_eq(b))").is_empty());
}
