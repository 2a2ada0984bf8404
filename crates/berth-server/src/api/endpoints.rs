//! A component's endpoints file and schema files (Choreo-compatible), and its URLs.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    ComponentType, DeploymentStatus, EndpointView, EndpointsState, ErrorDetail, PutEndpoints,
};
use berth_core::endpoints::{Endpoint, Visibility, detect_and_validate};
use berth_core::role::Action;
use berth_dataplane::WorkloadKey;
use berth_store::ComponentRef;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};

/// Largest endpoints or schema file.
const SOURCE_MAX: usize = 512 * 1024;

async fn schema_names(state: &AppState, target: ComponentRef<'_>) -> ApiResult<BTreeSet<String>> {
    Ok(state
        .store()
        .schema_file_names(target)
        .await?
        .into_iter()
        .collect())
}

fn invalid(file: &str, errors: &[berth_core::endpoints::Issue]) -> ApiError {
    let field = errors.first().map_or("content", |e| {
        if e.path.is_empty() {
            "content"
        } else {
            e.path.as_str()
        }
    });
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        format!(
            "{file} is invalid ({} error{}): {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
    .with_field(field);
    err.details = Some(
        errors
            .iter()
            .map(|e| ErrorDetail {
                path: e.path.clone(),
                message: e.message.clone(),
            })
            .collect(),
    );
    err
}

/// The endpoints the next release gets: those of the stored endpoints file, validated against
/// the stored schemas (empty when there is no file).
pub async fn current_endpoints(
    state: &AppState,
    target: ComponentRef<'_>,
) -> ApiResult<Vec<Endpoint>> {
    let Some(file) = state.store().endpoints_file(target).await? else {
        return Ok(Vec::new());
    };
    let schemas = schema_names(state, target).await?;
    let (report, endpoints) = detect_and_validate(&file.name, &file.content, &schemas);
    if !report.valid {
        return Err(invalid(&file.name, &report.errors));
    }
    Ok(endpoints)
}

/// What a release keeps of the endpoints file: the endpoints and the content of the schema
/// files they name (so a release serves the schema it was deployed with).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub schemas: BTreeMap<String, String>,
}

/// Reads a release's snapshot (also the first format: a bare array of endpoints).
pub fn parse_snapshot(text: &str) -> Snapshot {
    serde_json::from_str::<Snapshot>(text)
        .or_else(|_| {
            serde_json::from_str::<Vec<Endpoint>>(text).map(|endpoints| Snapshot {
                endpoints,
                schemas: BTreeMap::new(),
            })
        })
        .unwrap_or_default()
}

/// The endpoints of the next release and its snapshot (JSON).
pub async fn current_snapshot(
    state: &AppState,
    target: ComponentRef<'_>,
) -> ApiResult<(Vec<Endpoint>, String)> {
    let endpoints = current_endpoints(state, target).await?;
    let named: BTreeSet<&str> = endpoints
        .iter()
        .filter_map(|e| e.schema_file.as_deref())
        .collect();
    // No endpoint names a schema file (most components): nothing to read.
    let schemas = if named.is_empty() {
        Default::default()
    } else {
        state
            .store()
            .schema_files(target)
            .await?
            .into_iter()
            .filter(|f| named.contains(f.name.as_str()))
            .map(|f| (f.name, f.content))
            .collect()
    };
    let snapshot = Snapshot {
        endpoints: endpoints.clone(),
        schemas,
    };
    let json = serde_json::to_string(&snapshot)
        .map_err(|e| ApiError::internal(format!("endpoints snapshot: {e}")))?;
    Ok((endpoints, json))
}

/// The schema documents a release publishes: (context, file name, content) of its Public HTTP
/// endpoints that have a schema file.
pub fn published_schemas(snapshot: &str) -> Vec<(String, String, String)> {
    let s = parse_snapshot(snapshot);
    s.endpoints
        .iter()
        .filter(|e| e.kind.is_http() && e.visibilities.contains(&Visibility::Public))
        .filter_map(|e| {
            let name = e.schema_file.clone()?;
            let content = s.schemas.get(&name)?.clone();
            Some((e.context.clone(), name, content))
        })
        .collect()
}

/// The contexts the external gateway routes for a release's endpoints snapshot: `None` when
/// it has no endpoints (everything is routed), else those of its Public HTTP endpoints.
pub fn public_contexts(snapshot: &str) -> Option<Vec<String>> {
    let endpoints = parse_snapshot(snapshot).endpoints;
    if endpoints.is_empty() {
        return None;
    }
    Some(
        endpoints
            .iter()
            .filter(|e| e.kind.is_http() && e.visibilities.contains(&Visibility::Public))
            .map(|e| e.context.clone())
            .collect(),
    )
}

/// The contexts of a release's Organization HTTP endpoints (routed by the internal gateway).
pub fn org_contexts(snapshot: &str) -> Vec<String> {
    let endpoints = parse_snapshot(snapshot).endpoints;
    endpoints
        .iter()
        .filter(|e| e.kind.is_http() && e.visibilities.contains(&Visibility::Organization))
        .map(|e| e.context.clone())
        .collect()
}

/// Checks an OpenAPI 3.x / Swagger 2.0 document (YAML or JSON) or a GraphQL SDL file.
fn check_schema(name: &str, content: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if [".graphql", ".graphqls", ".gql", ".sdl"]
        .iter()
        .any(|x| lower.ends_with(x))
    {
        let mut depth = 0i64;
        for (n, line) in content.lines().enumerate() {
            for c in line.split('#').next().unwrap_or("").chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth < 0 {
                    return Err(format!("line {}: unbalanced '}}'", n + 1));
                }
            }
        }
        if depth != 0 {
            return Err("unbalanced '{': a type definition is not closed".into());
        }
        let defines = [
            "type ",
            "schema ",
            "schema{",
            "interface ",
            "input ",
            "enum ",
            "scalar ",
            "union ",
            "extend ",
        ];
        if !content
            .lines()
            .any(|l| defines.iter().any(|d| l.trim_start().starts_with(d)))
        {
            return Err("defines no type: expected GraphQL SDL such as `type Query { … }`".into());
        }
        return Ok(());
    }
    let doc: serde_yaml_ng::Value = berth_core::yaml::parse(content).map_err(|e| match e {
        berth_core::yaml::Error::Syntax(e) => format!("not YAML or JSON: {e}"),
        too_large => too_large.to_string(),
    })?;
    let map = doc
        .as_mapping()
        .ok_or("must be a mapping (an OpenAPI document)")?;
    let get = |k: &str| map.get(serde_yaml_ng::Value::String(k.into()));
    let version = match (get("openapi"), get("swagger")) {
        (Some(v), _) => {
            let v = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{v:?}"));
            if !v.starts_with("3.") {
                return Err(format!("openapi: {v:?} is not supported; expected 3.x"));
            }
            v
        }
        (None, Some(v)) if v.as_str() == Some("2.0") => "2.0".to_owned(),
        (None, Some(v)) => {
            return Err(format!("swagger: {v:?} is not supported; expected \"2.0\""));
        }
        (None, None) => {
            return Err("has neither `openapi` (3.x) nor `swagger` (2.0) at the top level".into());
        }
    };
    if !get("info").is_some_and(serde_yaml_ng::Value::is_mapping) {
        return Err(format!(
            "OpenAPI {version}: `info` is required (title and version)"
        ));
    }
    let has_paths = get("paths").is_some_and(serde_yaml_ng::Value::is_mapping);
    if !has_paths && (version == "2.0" || version.starts_with("3.0")) {
        return Err(format!("OpenAPI {version}: `paths` is required"));
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/endpoints",
    tag = "endpoints", request_body = PutEndpoints,
    responses((status = 200, body = EndpointsState), (status = 422, body = berth_core::api::ApiError)))]
pub async fn put_endpoints(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
    Json(body): Json<PutEndpoints>,
) -> ApiResult<Json<EndpointsState>> {
    auth.require(Action::Write)?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    state.store().component_id(&org, &project, &name).await?;
    if body.content.len() > SOURCE_MAX {
        return Err(ApiError::validation(
            "content",
            format!("is larger than {SOURCE_MAX} bytes"),
        ));
    }
    let schemas = schema_names(&state, target).await?;
    let (report, _) = detect_and_validate(&body.file_name, &body.content, &schemas);
    if !report.valid {
        return Err(invalid(&body.file_name, &report.errors));
    }
    let file_name = body
        .file_name
        .rsplit('/')
        .next()
        .unwrap_or(&body.file_name)
        .to_owned();
    state
        .store()
        .put_endpoints_file(target, &file_name, &body.content)
        .await?;
    Ok(Json(endpoints_state(&state, target).await?))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/endpoints",
    tag = "endpoints", responses((status = 200, body = EndpointsState)))]
pub async fn get_endpoints(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project, name)): Path<(String, String, String)>,
) -> ApiResult<Json<EndpointsState>> {
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &name,
    };
    state.store().component_id(&org, &project, &name).await?;
    Ok(Json(endpoints_state(&state, target).await?))
}

async fn endpoints_state(state: &AppState, target: ComponentRef<'_>) -> ApiResult<EndpointsState> {
    let file = state.store().endpoints_file(target).await?;
    let schemas = schema_names(state, target).await?;
    let (warnings, endpoints) = match &file {
        Some(f) => {
            let (report, endpoints) = detect_and_validate(&f.name, &f.content, &schemas);
            (report.warnings, endpoints)
        }
        None => (Vec::new(), Vec::new()),
    };
    let component = state
        .store()
        .get_component(target.org, target.project, target.component)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("component {:?} not found", target.component))
        })?;
    // An environment has URLs when a release runs there.
    let mut serving = BTreeMap::new();
    for env in state.store().list_environments(target.org).await? {
        let running = state
            .store()
            .list_deployments(
                target.org,
                target.project,
                target.component,
                Some(&env.name),
                50,
            )
            .await?
            .iter()
            .any(|d| d.status == DeploymentStatus::Ready);
        serving.insert(env.name, running);
    }
    let views = endpoints
        .into_iter()
        .map(|endpoint| {
            let urls = serving
                .iter()
                .map(|(env, running)| {
                    let key = WorkloadKey {
                        org: target.org.to_owned(),
                        project: target.project.to_owned(),
                        component: target.component.to_owned(),
                        env: env.clone(),
                    };
                    let http = endpoint.kind.is_http() && *running && !component.kind.is_task();
                    let public = endpoint.visibilities.contains(&Visibility::Public);
                    let org = endpoint.visibilities.contains(&Visibility::Organization);
                    let base = if !http {
                        None
                    } else if public {
                        Some(
                            state
                                .gateway()
                                .url_for(&key, component.kind == ComponentType::WebApp),
                        )
                    } else if org {
                        state.gateway().internal_url_for(&key)
                    } else {
                        None
                    };
                    let url =
                        base.map(|b| format!("{}{}", b.trim_end_matches('/'), endpoint.context));
                    (env.clone(), url)
                })
                .collect();
            EndpointView { endpoint, urls }
        })
        .collect();
    Ok(EndpointsState {
        file_name: file.as_ref().map(|f| f.name.clone()),
        content: file.map(|f| f.content),
        endpoints: views,
        warnings,
        schemas: schemas.into_iter().collect(),
    })
}

fn schema_name_ok(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            format!(
                "{name:?} must be a relative path of letters, digits, '.', '_', '-' and '/', without '..'"
            ),
        ))
    }
}

#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/schemas/{name}",
    tag = "endpoints", request_body(content = String, content_type = "text/plain"),
    responses((status = 204), (status = 422, body = berth_core::api::ApiError)))]
pub async fn put_schema(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component, name)): Path<(String, String, String, String)>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Write)?;
    // axum's own rejections are plain text: berth answers in its error shape.
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a schema file is at most {SOURCE_MAX} bytes"),
        ),
        s if s.is_client_error() => ApiError::validation("content", "is not UTF-8 text"),
        _ => ApiError::bad_request(format!(
            "reading the request body failed: {}",
            r.body_text()
        )),
    })?;
    state
        .store()
        .component_id(&org, &project, &component)
        .await?;
    schema_name_ok(&name)?;
    if body.len() > SOURCE_MAX {
        return Err(ApiError::validation(
            "content",
            format!("is larger than {SOURCE_MAX} bytes"),
        ));
    }
    check_schema(&name, &body)
        .map_err(|e| ApiError::validation("content", format!("{name}: {e}")))?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    state.store().put_schema_file(target, &name, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/components/{component}/schemas/{name}",
    tag = "endpoints", responses((status = 204), (status = 404, body = berth_core::api::ApiError)))]
pub async fn delete_schema(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, component, name)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Write)?;
    let target = ComponentRef {
        org: &org,
        project: &project,
        component: &component,
    };
    if state.store().delete_schema_file(target, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("schema {name:?} not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_checked() {
        let openapi = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n";
        assert!(check_schema("openapi.yaml", openapi).is_ok());
        assert!(
            check_schema(
                "swagger.json",
                r#"{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{}}"#
            )
            .is_ok()
        );
        let err = check_schema("openapi.yaml", "openapi: 3.0.3\ninfo: [\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
        assert!(
            check_schema("openapi.yaml", "openapi: 2.5\ninfo: {}\npaths: {}")
                .unwrap_err()
                .contains("3.x")
        );
        assert!(
            check_schema("x.yaml", "foo: bar")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            check_schema("openapi.yaml", "openapi: 3.0.0\npaths: {}")
                .unwrap_err()
                .contains("info")
        );
        assert!(check_schema("schema.graphql", "type Query {\n  hello: String\n}\n").is_ok());
        assert!(
            check_schema("schema.graphql", "type Query {\n")
                .unwrap_err()
                .contains("unbalanced")
        );
        assert!(
            check_schema("schema.graphql", "hello")
                .unwrap_err()
                .contains("no type")
        );
    }

    #[test]
    fn contexts_of_public_http_endpoints() {
        assert_eq!(public_contexts("[]"), None);
        let snapshot = r#"[
          {"name":"a","displayName":"a","port":8080,"type":"REST","visibilities":["Public"],"context":"/api","schemaFile":null},
          {"name":"b","displayName":"b","port":8081,"type":"REST","visibilities":["Project"],"context":"/internal","schemaFile":null},
          {"name":"c","displayName":"c","port":9000,"type":"GRPC","visibilities":["Project"],"context":"/","schemaFile":null}
        ]"#;
        assert_eq!(public_contexts(snapshot), Some(vec!["/api".to_owned()]));
    }

    #[test]
    fn schema_names() {
        assert!(schema_name_ok("openapi.yaml").is_ok());
        assert!(schema_name_ok("api/v1/openapi.yaml").is_ok());
        for bad in ["", "/etc/x", "../x", "a/../b", "a b"] {
            assert!(schema_name_ok(bad).is_err(), "{bad}");
        }
    }
}
