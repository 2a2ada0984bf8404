//! The Kubernetes manifests of a project's environment, as the Kubernetes driver would apply
//! them: the same spec builder as the deploy pipeline and the reconciler ([`spec_for`]), the
//! same pure renderer, the server's Kubernetes settings. Works whatever the data plane is, so
//! `berth render` previews a move to Kubernetes.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::RenderedManifests;
use berth_core::role::Action;
use berth_dataplane::WorkloadKey;
use berth_dataplane::kubernetes::render;
use serde::Deserialize;

use crate::AppState;
use crate::api::components::component_or_404;
use crate::auth::Auth;
use crate::deploy::{key_of, spec_for};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderQuery {
    /// Only this component's objects (plus the namespace's).
    pub component: Option<String>,
    /// Secret values in clear (base64) instead of `<redacted>`: admins only.
    pub reveal_secrets: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/render",
    tag = "kubernetes", params(RenderQuery),
    responses((status = 200, body = RenderedManifests), (status = 403, body = berth_core::api::ApiError),
              (status = 404, body = berth_core::api::ApiError), (status = 409, body = berth_core::api::ApiError)))]
pub async fn render(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project, env)): Path<(String, String, String)>,
    Query(q): Query<RenderQuery>,
) -> ApiResult<Json<RenderedManifests>> {
    let reveal = q.reveal_secrets.unwrap_or(false);
    if reveal {
        auth.require(Action::Administer)?;
    }
    if state.store().get_org(&org).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "organization {org:?} not found"
        )));
    }
    if state.store().get_project(&org, &project).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "project {project:?} not found in organization {org:?}"
        )));
    }
    let envs = state.store().list_environments(&org).await?;
    if !envs.iter().any(|e| e.name == env) {
        return Err(ApiError::not_found(format!(
            "environment {env:?} not found; the organization has {}",
            envs.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(c) = &q.component {
        component_or_404(&state, &org, &project, c).await?;
    }
    let serving: Vec<_> = state
        .store()
        .serving_deployments()
        .await?
        .into_iter()
        .filter(|w| {
            let d = &w.deployment;
            d.org == org
                && d.project == project
                && d.environment == env
                && q.component.as_ref().is_none_or(|c| *c == d.component)
        })
        .collect();
    if let Some(c) = &q.component
        && serving.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "component {c:?} has no ready deployment in {env}: nothing to render"
        )));
    }
    let options = render::RenderOptions {
        reveal_secrets: reveal,
        ..state.config().kubernetes.render.clone()
    };
    let env_key = WorkloadKey {
        org: org.clone(),
        project: project.clone(),
        component: String::new(),
        env: env.clone(),
    };
    let mut objects = render::render_namespace(&env_key);
    let mut components = Vec::new();
    for work in &serving {
        let key = key_of(work);
        let spec = spec_for(&state, work).await.map_err(|reason| {
            ApiError::new(
                StatusCode::CONFLICT,
                "cannot_render",
                format!("{key}: {reason}"),
            )
        })?;
        let rendered = render::render_workload(&spec, &options).map_err(|e| {
            ApiError::new(StatusCode::CONFLICT, "cannot_render", format!("{key}: {e}"))
        })?;
        for object in rendered {
            // A registry's pull Secret is shared by the namespace's components.
            let id = render::object_id(&object);
            if !objects.iter().any(|o| render::object_id(o) == id) {
                objects.push(object);
            }
        }
        components.push(key.component);
    }
    Ok(Json(RenderedManifests {
        namespace: render::namespace_name(&env_key),
        org,
        project,
        environment: env,
        redacted: !reveal,
        components,
        objects,
    }))
}
