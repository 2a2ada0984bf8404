//! The organization overview: projects, their components, and what runs where.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::api::{Component, CreateProject, Environment, Org, Project};
use serde::Deserialize;

use super::{
    Chrome, Console, Form, NAME_RULE, PageError, PageResult, Problem, non_empty, render_status,
    see_other, short_digest,
};
use crate::AppState;
use crate::extract::Json;

/// `GET /`: the default organization (or the first there is).
pub async fn home(State(state): State<AppState>, _c: Console) -> PageResult {
    let orgs = state.store().list_orgs().await?;
    let org = orgs
        .iter()
        .find(|o| o.name == "default")
        .or(orgs.first())
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "There is no organization yet."))?;
    Ok(see_other(&format!("/orgs/{}", org.name)))
}

pub(super) async fn org_or_404(state: &AppState, org: &str) -> PageResult<Org> {
    state.store().get_org(org).await?.ok_or_else(|| {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!("Organization {org:?} not found."),
        )
    })
}

pub struct EnvCell {
    pub env: String,
    /// Status of the newest deployment there, or `none`.
    pub status: String,
    /// Digest serving traffic.
    pub serving: Option<String>,
    pub serving_short: String,
    pub url: Option<String>,
}

pub struct ComponentRow {
    pub component: Component,
    pub envs: Vec<EnvCell>,
}

pub struct ProjectView {
    pub project: Project,
    pub components: Vec<ComponentRow>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProjectForm {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    csrf: String,
    org: Org,
    environments: Vec<Environment>,
    projects: Vec<ProjectView>,
    notice: Option<&'static str>,
    form: ProjectForm,
    problem: Problem,
    name_rule: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct Done {
    #[serde(default)]
    pub(super) done: Option<String>,
}

async fn overview_page(
    state: &AppState,
    c: &Console,
    org: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    form: ProjectForm,
    problem: Problem,
) -> PageResult {
    let org = org_or_404(state, org).await?;
    let environments = state.store().list_environments(&org.name).await?;
    // What runs where, for every component of the organization in one query (the API's
    // environments view, built by the same function: the same "current", "latest" and URL
    // rules), instead of one query per component and environment.
    let mut found: std::collections::HashMap<(String, String), Vec<_>> =
        std::collections::HashMap::new();
    for row in state
        .store()
        .environment_states(&org.name, None, None)
        .await?
    {
        found
            .entry((row.project.clone(), row.component.clone()))
            .or_default()
            .push(row);
    }
    let mut projects = Vec::new();
    for project in state.store().list_projects(&org.name).await? {
        let mut components = Vec::new();
        for component in state
            .store()
            .list_components(&org.name, &project.name)
            .await?
        {
            let envs = crate::api::components::environment_views(
                state,
                &component,
                &environments,
                found
                    .get(&(project.name.clone(), component.name.clone()))
                    .map_or(&[][..], Vec::as_slice),
            )
            .into_iter()
            .map(|e| {
                let serving = e.current.as_ref().map(|d| d.digest.clone());
                EnvCell {
                    env: e.environment,
                    status: e
                        .latest
                        .as_ref()
                        .map_or("none", |d| d.status.as_str())
                        .to_owned(),
                    serving_short: serving.as_deref().map(short_digest).unwrap_or_default(),
                    serving,
                    url: e.url,
                }
            })
            .collect();
            components.push(ComponentRow { component, envs });
        }
        projects.push(ProjectView {
            project,
            components,
        });
    }
    let page = OverviewPage {
        chrome: c.chrome(&org.name, "overview", org.display_name.clone()),
        csrf: c.csrf.clone(),
        org,
        environments,
        projects,
        notice,
        form,
        problem,
        name_rule: NAME_RULE,
    };
    render_status(status, &page)
}

/// `GET /orgs/{org}`.
pub async fn overview(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let notice = match done.done.as_deref() {
        Some("project") => Some("Project created."),
        _ => None,
    };
    overview_page(
        &state,
        &c,
        &org,
        StatusCode::OK,
        notice,
        ProjectForm::default(),
        Problem::default(),
    )
    .await
}

/// `POST /orgs/{org}/projects`: the API's create-project.
pub async fn create_project(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Form(form): Form<ProjectForm>,
) -> PageResult {
    org_or_404(&state, &org).await?;
    let body = CreateProject {
        name: form.name.trim().to_owned(),
        display_name: non_empty(&form.display_name),
        description: non_empty(&form.description),
    };
    match crate::api::orgs::create_project(
        State(state.clone()),
        c.auth(),
        Path(org.clone()),
        Json(body),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/orgs/{org}?done=project"))),
        Err(e) => {
            overview_page(
                &state,
                &c,
                &org,
                e.status,
                None,
                form,
                Problem::from_api(&e),
            )
            .await
        }
    }
}
