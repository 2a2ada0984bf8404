//! The organization overview: projects, their components, and what runs where.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{Component, CreateProject, Environment, Org, Project};
use berth_store::ComponentWindow;
use serde::Deserialize;

use super::{
    Chrome, Console, Form, NAME_RULE, PageError, PageResult, Problem, non_empty, render_status,
    see_other, short_digest,
};
use crate::AppState;
use crate::api::page::{ListScope, as_pair};
use crate::extract::{Json, Path, Query};

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
    /// Its components began on an earlier page.
    pub continued: bool,
}

/// Components per overview page.
pub const OVERVIEW_PAGE: u32 = 50;

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
    /// Every project of the organization (the filter's choices).
    all_projects: Vec<String>,
    /// The project the page is filtered to (empty: all).
    filter: String,
    projects: Vec<ProjectView>,
    /// The link to the next page of components, when there is one.
    next: Option<String>,
    /// The link to the first page, when this is a later one.
    first: Option<String>,
    notice: Option<&'static str>,
    form: ProjectForm,
    problem: Problem,
    name_rule: &'static str,
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    pub(super) done: Option<String>,
}

/// `GET /orgs/{org}?project=P&after=CURSOR`: which page of the overview.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    #[serde(default)]
    pub(super) done: Option<String>,
    /// Only this project's components.
    #[serde(default)]
    pub project: Option<String>,
    /// The page after this cursor (the "Next" link's).
    #[serde(default)]
    pub after: Option<String>,
}

/// The overview's link for a project filter and a cursor.
fn overview_link(org: &str, project: &str, after: Option<&str>) -> String {
    let mut query = Vec::new();
    if !project.is_empty() {
        query.push(format!("project={project}"));
    }
    if let Some(a) = after {
        query.push(format!("after={a}"));
    }
    if query.is_empty() {
        format!("/orgs/{org}")
    } else {
        format!("/orgs/{org}?{}", query.join("&"))
    }
}

/// The overview, a page of components at a time ([`OVERVIEW_PAGE`]) in (project, name) order,
/// grouped by project: the same keyset paging as the API's lists. A project with no
/// components shows on the page whose range of projects it falls in.
async fn overview_page(
    state: &AppState,
    c: &Console,
    org: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    (form, problem): (ProjectForm, Problem),
    view: &OverviewQuery,
) -> PageResult {
    let org = org_or_404(state, org).await?;
    let filter = view
        .project
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let all = state.store().list_projects(&org.name).await?;
    if !filter.is_empty() && !all.iter().any(|p| p.name == filter) {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Project {filter:?} not found in organization {:?}.",
                org.name
            ),
        ));
    }
    let scope = ListScope::new("overview", &[&org.name, &filter]);
    let after = scope.pair(view.after.as_deref()).map_err(|_| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "That page link is not valid here (it was made for another list). Start again from the first page.",
        )
    })?;
    let window = ComponentWindow {
        project: (!filter.is_empty()).then_some(filter.as_str()),
        after: as_pair(&after),
        limit: Some(OVERVIEW_PAGE),
        ..Default::default()
    };
    let environments = state.store().list_environments(&org.name).await?;
    let page = state.store().org_components(&org.name, &window).await?;
    // What runs where, for the page's components in one query (the API's environments view,
    // built by the same function: the same "current", "latest" and URL rules).
    let mut found: std::collections::HashMap<(String, String), Vec<_>> =
        std::collections::HashMap::new();
    for row in state.store().environment_states(&org.name, &window).await? {
        found
            .entry((row.project.clone(), row.component.clone()))
            .or_default()
            .push(row);
    }
    // The projects this page covers: from the cursor's project (exclusive of one whose
    // components ended on the previous page) to the last component's project (to the end on
    // the last page).
    let low = after.as_ref().map(|(p, _)| p.clone());
    let high = page
        .next(|c| c.project.clone())
        .filter(|_| filter.is_empty());
    let next = page
        .next(|c| scope.cursor(&[&c.project, &c.name]))
        .map(|cursor| overview_link(&org.name, &filter, Some(&cursor)));
    let mut rows: Vec<ComponentRow> = Vec::new();
    for component in page.items {
        let envs = crate::api::components::environment_views(
            state,
            &component,
            &environments,
            found
                .get(&(component.project.clone(), component.name.clone()))
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
        rows.push(ComponentRow { component, envs });
    }
    let all_projects = all.iter().map(|p| p.name.clone()).collect();
    let mut projects = Vec::new();
    for project in all {
        let name = project.name.as_str();
        let in_range = if filter.is_empty() {
            low.as_deref().is_none_or(|l| name >= l) && high.as_deref().is_none_or(|h| name <= h)
        } else {
            name == filter
        };
        if !in_range {
            continue;
        }
        let components: Vec<ComponentRow> = rows
            .iter()
            .position(|r| r.component.project == name)
            .map(|start| {
                let end = rows[start..]
                    .iter()
                    .position(|r| r.component.project != name)
                    .map_or(rows.len(), |n| start + n);
                rows.drain(start..end).collect()
            })
            .unwrap_or_default();
        let continued = low.as_deref() == Some(name);
        if continued && components.is_empty() {
            // Its components all were on the previous page.
            continue;
        }
        projects.push(ProjectView {
            project,
            components,
            continued,
        });
    }
    let first = after
        .is_some()
        .then(|| overview_link(&org.name, &filter, None));
    let page = OverviewPage {
        chrome: c.chrome(&org.name, "overview", org.display_name.clone()),
        csrf: c.csrf.clone(),
        org,
        environments,
        all_projects,
        filter,
        projects,
        next,
        first,
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
    Query(view): Query<OverviewQuery>,
) -> PageResult {
    let notice = match view.done.as_deref() {
        Some("project") => Some("Project created."),
        _ => None,
    };
    overview_page(
        &state,
        &c,
        &org,
        StatusCode::OK,
        notice,
        (ProjectForm::default(), Problem::default()),
        &view,
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
                (form, Problem::from_api(&e)),
                &OverviewQuery::default(),
            )
            .await
        }
    }
}
