//! Organizations, their environments, and projects.

use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    CreateEnvironment, CreateOrg, CreateProject, Environment, EnvironmentOrder, List, Org, Project,
    UpdateOrg, UpdateProject,
};
use berth_core::role::Action;
use berth_core::{validate_description, validate_display_name, validate_name};

use serde::Deserialize;

use crate::AppState;
use crate::api::page::{Limits, ListScope};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};

/// Checks display name and description and returns them with defaults applied.
fn describe(
    name: &str,
    display_name: Option<String>,
    description: Option<String>,
) -> ApiResult<(String, String)> {
    let display_name = display_name.unwrap_or_else(|| name.to_owned());
    validate_display_name("displayName", &display_name)?;
    let description = description.unwrap_or_default();
    validate_description("description", &description)?;
    Ok((display_name, description))
}

/// Refuses a rename: names are part of URLs, networks and host names.
fn keep_name(current: &str, requested: Option<&str>) -> ApiResult<()> {
    match requested {
        Some(new) if new != current => Err(ApiError::validation(
            "name",
            format!("is immutable (it is {current:?}); create a new resource to use {new:?}"),
        )),
        _ => Ok(()),
    }
}

fn check_updates(display_name: Option<&str>, description: Option<&str>) -> ApiResult<()> {
    if let Some(d) = display_name {
        validate_display_name("displayName", d)?;
    }
    if let Some(d) = description {
        validate_description("description", d)?;
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs",
    responses((status = 200, body = List<Org>)))]
pub async fn list_orgs(State(state): State<AppState>, _auth: Auth) -> ApiResult<Json<List<Org>>> {
    Ok(Json(List::new(state.store().list_orgs().await?)))
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = Org), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_org(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    auth.require(Action::Administer)?;
    validate_name("name", &body.name)?;
    let (display_name, description) = describe(&body.name, body.display_name, body.description)?;
    let org = state
        .store()
        .insert_org(&body.name, &display_name, &description)
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "orgs",
    responses((status = 200, body = Org), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_org(
    State(state): State<AppState>,
    _auth: Auth,
    Path(org): Path<String>,
) -> ApiResult<Json<Org>> {
    state
        .store()
        .get_org(&org)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("organization {org:?} not found")))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}", tag = "orgs", request_body = UpdateOrg,
    responses((status = 200, body = Org), (status = 404, body = berth_core::api::ApiError)))]
pub async fn update_org(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
    Json(body): Json<UpdateOrg>,
) -> ApiResult<Json<Org>> {
    auth.require(Action::Administer)?;
    keep_name(&org, body.name.as_deref())?;
    check_updates(body.display_name.as_deref(), body.description.as_deref())?;
    let org = state
        .store()
        .update_org(
            &org,
            body.display_name.as_deref(),
            body.description.as_deref(),
        )
        .await?;
    Ok(Json(org))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}", tag = "orgs",
    responses((status = 204), (status = 409, body = berth_core::api::ApiError)))]
pub async fn delete_org(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Administer)?;
    state.store().delete_org(&org).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/environments", tag = "orgs",
    responses((status = 200, body = List<Environment>)))]
pub async fn list_environments(
    State(state): State<AppState>,
    _auth: Auth,
    Path(org): Path<String>,
) -> ApiResult<Json<List<Environment>>> {
    Ok(Json(List::new(
        state.store().list_environments(&org).await?,
    )))
}

/// The path segment of [`reorder_environments`]: no environment may be named like it.
const ORDER_SEGMENT: &str = "order";

/// Adds an environment to the promotion order (admin).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/environments", tag = "orgs",
    request_body = CreateEnvironment,
    responses((status = 201, body = Environment), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_environment(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
    Json(body): Json<CreateEnvironment>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    auth.require(Action::Administer)?;
    validate_name("name", &body.name)?;
    if body.name == ORDER_SEGMENT {
        return Err(ApiError::validation(
            "name",
            format!("{ORDER_SEGMENT:?} is reserved (it is the path of the reorder endpoint)"),
        ));
    }
    let display_name = body.display_name.unwrap_or_else(|| body.name.clone());
    validate_display_name("displayName", &display_name)?;
    let env = state
        .store()
        .insert_environment(&org, &body.name, &display_name, body.position)
        .await?;
    Ok((StatusCode::CREATED, Json(env)))
}

/// Sets the promotion order; the first environment is where deploys land (admin).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/environments/order", tag = "orgs",
    request_body = EnvironmentOrder,
    responses((status = 200, body = List<Environment>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn reorder_environments(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
    Json(body): Json<EnvironmentOrder>,
) -> ApiResult<Json<List<Environment>>> {
    auth.require(Action::Administer)?;
    Ok(Json(List::new(
        state
            .store()
            .reorder_environments(&org, &body.order)
            .await?,
    )))
}

/// Deletes an environment nothing refers to; never the last one (admin).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/environments/{env}", tag = "orgs",
    responses((status = 204), (status = 404, body = berth_core::api::ApiError),
              (status = 409, body = berth_core::api::ApiError)))]
pub async fn delete_environment(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, env)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Administer)?;
    state.store().delete_environment(&org, &env).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Page sizes of the projects list.
pub const PROJECT_LIMITS: Limits = Limits {
    default: 100,
    max: 500,
};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProjectsQuery {
    /// At most this many, by name (1–500, default 100).
    pub limit: Option<u32>,
    /// Where to start: the `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// An organization's projects by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects", tag = "projects", params(ProjectsQuery),
    responses((status = 200, body = List<Project>), (status = 422, body = berth_core::api::ApiError)))]
pub async fn list_projects(
    State(state): State<AppState>,
    _auth: Auth,
    Path(org): Path<String>,
    Query(q): Query<ProjectsQuery>,
) -> ApiResult<Json<List<Project>>> {
    let limit = PROJECT_LIMITS.pick(q.limit)?;
    let scope = ListScope::new("projects", &[&org]);
    let after = scope.single(q.cursor.as_deref())?;
    let page = state
        .store()
        .projects_page(&org, after.as_deref(), limit)
        .await?;
    Ok(Json(List {
        next_cursor: page.next(|p| scope.cursor(&[&p.name])),
        items: page.items,
    }))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects", tag = "projects",
    request_body = CreateProject,
    responses((status = 201, body = Project), (status = 409, body = berth_core::api::ApiError),
              (status = 422, body = berth_core::api::ApiError)))]
pub async fn create_project(
    State(state): State<AppState>,
    auth: Auth,
    Path(org): Path<String>,
    Json(body): Json<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    auth.require(Action::Write)?;
    validate_name("name", &body.name)?;
    let (display_name, description) = describe(&body.name, body.display_name, body.description)?;
    let project = state
        .store()
        .insert_project(&org, &body.name, &display_name, &description)
        .await?;
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects",
    responses((status = 200, body = Project), (status = 404, body = berth_core::api::ApiError)))]
pub async fn get_project(
    State(state): State<AppState>,
    _auth: Auth,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Project>> {
    if state.store().get_org(&org).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "organization {org:?} not found"
        )));
    }
    state
        .store()
        .get_project(&org, &project)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "project {project:?} not found in organization {org:?}"
            ))
        })
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects",
    request_body = UpdateProject,
    responses((status = 200, body = Project), (status = 422, body = berth_core::api::ApiError)))]
pub async fn update_project(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project)): Path<(String, String)>,
    Json(body): Json<UpdateProject>,
) -> ApiResult<Json<Project>> {
    auth.require(Action::Write)?;
    keep_name(&project, body.name.as_deref())?;
    check_updates(body.display_name.as_deref(), body.description.as_deref())?;
    let project = state
        .store()
        .update_project(
            &org,
            &project,
            body.display_name.as_deref(),
            body.description.as_deref(),
        )
        .await?;
    Ok(Json(project))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects",
    responses((status = 204), (status = 404, body = berth_core::api::ApiError),
              (status = 409, body = berth_core::api::ApiError, description = "the project still has components")))]
pub async fn delete_project(
    State(state): State<AppState>,
    auth: Auth,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.require(Action::Write)?;
    state.store().delete_project(&org, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
