//! Creating components (with a live image-reference preview) and the component's Deploy page:
//! the Build Area (Update Image Tag / Update Image URL / Previous Images), the endpoints pane,
//! environment cards with Promote, and the latest deployment's events (live over SSE, see
//! [`super::live`]). Also the head (breadcrumbs, title, tabs) every component page shares.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{
    Component, ComponentType, CreateComponent, DeployRequest, Org, Project, PromoteRequest,
    Registry,
};
use berth_core::reference::{DEFAULT_DOMAIN, DEFAULT_TAG, ImageRef};
use serde::Deserialize;

use super::endpoints::EndpointsPane;
use super::live::{LiveView, live_view};
use super::overview::org_or_404;
use super::{
    Chrome, Console, Form, NAME_RULE, PageError, PageResult, Problem, non_empty, render,
    render_status, see_other, short_digest,
};
use crate::AppState;
use crate::api::components::PreviousImagesQuery;
use crate::api::registries::TagsQuery;
use crate::extract::{Json, Path, Query};

pub(super) type ComponentPath = Path<(String, String, String)>;

const TYPES: [(&str, &str, &str); 4] = [
    (
        "service",
        "Service",
        "a long-running server reached through its endpoints",
    ),
    (
        "web-app",
        "Web App",
        "a website, served at its own host name",
    ),
    (
        "scheduled-task",
        "Scheduled Task",
        "runs to completion on a cron schedule",
    ),
    (
        "manual-task",
        "Manual Task",
        "runs to completion when started",
    ),
];

fn parse_kind(s: &str) -> Option<ComponentType> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

pub(super) async fn project_or_404(
    state: &AppState,
    org: &str,
    project: &str,
) -> PageResult<Project> {
    state
        .store()
        .get_project(org, project)
        .await?
        .ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                format!("Project {project:?} not found in organization {org:?}."),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Image reference preview

/// How berth reads an image URL, for the preview under the field.
pub struct ParsedView {
    normalized: String,
    host: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
    default_domain: bool,
    default_library: bool,
    default_tag: bool,
}

#[derive(Default)]
pub struct PreviewView {
    parsed: Option<ParsedView>,
    error: Option<String>,
    registry_note: Option<String>,
}

/// Parses `input` with the same [`ImageRef`] the API uses and says which defaults applied.
fn preview_of(input: &str, registry: Option<&Registry>) -> PreviewView {
    let input = input.trim();
    if input.is_empty() {
        return PreviewView::default();
    }
    let parsed = match ImageRef::parse(input) {
        Ok(p) => p,
        Err(e) => {
            return PreviewView {
                error: Some(e.to_string()),
                ..PreviewView::default()
            };
        }
    };
    let name_part = input.split('@').next().unwrap_or(input);
    let explicit_hub = ["docker.io/", "index.docker.io/"]
        .iter()
        .find_map(|p| name_part.strip_prefix(p));
    let default_domain = parsed.domain() == DEFAULT_DOMAIN && explicit_hub.is_none();
    let after_domain = explicit_hub.unwrap_or(name_part);
    let default_library = parsed.domain() == DEFAULT_DOMAIN
        && parsed.path().starts_with("library/")
        && !after_domain.starts_with("library/");
    let last = name_part.rsplit('/').next().unwrap_or(name_part);
    let default_tag = parsed.tag() == Some(DEFAULT_TAG) && !last.contains(':');
    let host = parsed.registry_host();
    let registry_note = registry.map(|r| {
        if r.host == host {
            format!("Pulled through registry {} ({}).", r.display_name, r.host)
        } else {
            format!(
                "Registry {} serves {}, but this image is on {host}: choose a registry for {host}.",
                r.display_name, r.host
            )
        }
    });
    PreviewView {
        parsed: Some(ParsedView {
            normalized: parsed.normalized(),
            host,
            path: parsed.path().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest: parsed.digest().map(str::to_owned),
            default_domain,
            default_library,
            default_tag,
        }),
        error: None,
        registry_note,
    }
}

#[derive(Template)]
#[template(path = "console/image_preview.html")]
struct PreviewFragment {
    preview: PreviewView,
}

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    image: String,
    #[serde(default)]
    registry: String,
}

async fn registries(state: &AppState, c: &Console, org: &str) -> PageResult<Vec<Registry>> {
    let Json(list) = crate::api::registries::list_registries(
        State(state.clone()),
        c.auth(),
        Path(org.to_owned()),
    )
    .await?;
    Ok(list.items)
}

/// `GET /orgs/{org}/image-preview?image=…&registry=…` (htmx, as you type).
pub async fn preview(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> PageResult {
    let registries = registries(&state, &c, &org).await?;
    let registry = registries.iter().find(|r| r.name == q.registry);
    render(&PreviewFragment {
        preview: preview_of(&q.image, registry),
    })
}

// ---------------------------------------------------------------------------------------------
// Create component

#[derive(Debug, Deserialize)]
pub struct ComponentForm {
    #[serde(default = "default_kind", rename = "type")]
    kind: String,
    #[serde(default)]
    registry: String,
    #[serde(default)]
    image: String,
    #[serde(default, rename = "displayName")]
    display_name: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    port: String,
}

fn default_kind() -> String {
    "service".into()
}

#[derive(Template)]
#[template(path = "console/component_new.html")]
struct NewComponentPage {
    chrome: Chrome,
    csrf: String,
    org: Org,
    project: Project,
    registries: Vec<Registry>,
    types: [(&'static str, &'static str, &'static str); 4],
    form: ComponentForm,
    preview: PreviewView,
    problem: Problem,
    name_rule: &'static str,
}

async fn new_component_page(
    state: &AppState,
    c: &Console,
    org: &str,
    project: &str,
    status: StatusCode,
    mut form: ComponentForm,
    problem: Problem,
) -> PageResult {
    let org = org_or_404(state, org).await?;
    let project = project_or_404(state, &org.name, project).await?;
    let registries = registries(state, c, &org.name).await?;
    if form.registry.is_empty()
        && let Some(first) = registries.first()
    {
        form.registry = first.name.clone();
    }
    let preview = preview_of(
        &form.image,
        registries.iter().find(|r| r.name == form.registry),
    );
    let page = NewComponentPage {
        chrome: c.chrome(&org.name, "overview", "Create a component"),
        csrf: c.csrf.clone(),
        org,
        project,
        registries,
        types: TYPES,
        form,
        preview,
        problem,
        name_rule: NAME_RULE,
    };
    render_status(status, &page)
}

/// `GET /orgs/{org}/projects/{project}/new-component`.
pub async fn new_page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project)): Path<(String, String)>,
) -> PageResult {
    let form = ComponentForm {
        kind: default_kind(),
        registry: String::new(),
        image: String::new(),
        display_name: String::new(),
        name: String::new(),
        description: String::new(),
        port: String::new(),
    };
    new_component_page(
        &state,
        &c,
        &org,
        &project,
        StatusCode::OK,
        form,
        Problem::default(),
    )
    .await
}

/// `POST /orgs/{org}/projects/{project}/components`: the API's create-component (which
/// resolves the tag on the registry before it accepts).
pub async fn create(
    State(state): State<AppState>,
    c: Console,
    Path((org, project)): Path<(String, String)>,
    Form(form): Form<ComponentForm>,
) -> PageResult {
    let Some(kind) = parse_kind(&form.kind) else {
        let p = Problem::field("type", format!("{:?} is not a component type", form.kind));
        return new_component_page(
            &state,
            &c,
            &org,
            &project,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            p,
        )
        .await;
    };
    let port = match non_empty(&form.port).map(|p| p.parse::<u16>()) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            let p = Problem::field("port", "must be a number between 1 and 65535");
            return new_component_page(
                &state,
                &c,
                &org,
                &project,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                p,
            )
            .await;
        }
    };
    let body = CreateComponent {
        name: form.name.trim().to_owned(),
        display_name: non_empty(&form.display_name),
        description: non_empty(&form.description),
        kind,
        registry: form.registry.trim().to_owned(),
        image: form.image.trim().to_owned(),
        port,
        no_verify: false,
    };
    let name = body.name.clone();
    match crate::api::components::create_component(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone())),
        Json(body),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/orgs/{org}/projects/{project}/components/{name}?done=created"
        ))),
        Err(e) => {
            new_component_page(
                &state,
                &c,
                &org,
                &project,
                e.status,
                form,
                Problem::from_api(&e),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Component pages: the common head (breadcrumbs, title, tabs) and the Deploy page

/// What every component page shows at the top.
pub struct Head {
    pub org: Org,
    pub project: Project,
    pub component: Component,
    /// `/orgs/{org}/projects/{project}/components/{component}`.
    pub base: String,
    /// Which tab is current: `deploy`, `tasks`, `logs`, `configs`, `ci`.
    pub tab: &'static str,
}

impl Head {
    pub fn is_task(&self) -> bool {
        self.component.kind.is_task()
    }
}

/// Loads the component through the API (404 when it is not there).
pub(super) async fn head(
    state: &AppState,
    c: &Console,
    (org, project, name): (&str, &str, &str),
    tab: &'static str,
) -> PageResult<Head> {
    let org = org_or_404(state, org).await?;
    let project = project_or_404(state, &org.name, project).await?;
    let Json(component) = crate::api::components::get_component(
        State(state.clone()),
        c.auth(),
        Path((org.name.clone(), project.name.clone(), name.to_owned())),
    )
    .await?;
    Ok(Head {
        base: base_url(&org.name, &project.name, &component.name),
        org,
        project,
        component,
        tab,
    })
}

pub struct PreviousView {
    release: String,
    label: String,
}

#[derive(Template)]
#[template(path = "console/component.html")]
struct ComponentPage {
    chrome: Chrome,
    csrf: String,
    head: Head,
    repository: String,
    current_tag: String,
    first_env: String,
    previous: Vec<PreviousView>,
    /// The link to older Previous Images, when there are more.
    previous_next: Option<String>,
    /// The link back to the newest ones, on an older page.
    previous_first: Option<String>,
    live: LiveView,
    endpoints: Option<EndpointsPane>,
    notice: Option<String>,
    deploy_problem: Problem,
    /// Which Build Area form to show open (`tag`, `image`, `previous`).
    deploy_what: String,
    /// The Update Image URL field's value (what was typed, after a refusal).
    deploy_image: String,
}

pub(super) fn base_url(org: &str, project: &str, component: &str) -> String {
    format!("/orgs/{org}/projects/{project}/components/{component}")
}

/// What a refused form on the Deploy page brings back to it.
#[derive(Default)]
pub(super) struct PageExtras {
    pub status: StatusCode,
    pub notice: Option<String>,
    pub deploy_problem: Problem,
    /// The deploy form that was refused: (what, image URL typed).
    pub deploy_form: Option<(String, String)>,
    pub promote_error: Option<String>,
    /// The endpoints editor after a refusal: (file name, content typed, problem).
    pub endpoints_form: Option<(String, String, Problem)>,
    /// A refused schema upload.
    pub schema_problem: Problem,
    /// Which page of Previous Images (a cursor of the API's list).
    pub images: Option<String>,
}

/// `GET …/components/{component}?done=…&images=CURSOR`.
#[derive(Debug, Default, Deserialize)]
pub struct ComponentQuery {
    #[serde(default)]
    done: Option<String>,
    /// The page of Previous Images after this cursor.
    #[serde(default)]
    images: Option<String>,
}

pub(super) async fn component_page(
    state: &AppState,
    c: &Console,
    (org, project, name): (&str, &str, &str),
    extras: PageExtras,
) -> PageResult {
    let head = head(state, c, (org, project, name), "deploy").await?;
    let path = || {
        Path((
            head.org.name.clone(),
            head.project.name.clone(),
            head.component.name.clone(),
        ))
    };
    let (repository, current_tag) = match ImageRef::parse(&head.component.image) {
        Ok(i) => (i.name(), i.tag().unwrap_or_default().to_owned()),
        Err(_) => (head.component.image.clone(), String::new()),
    };
    let Json(previous) = crate::api::components::previous_images(
        State(state.clone()),
        c.auth(),
        path(),
        crate::extract::Query(PreviousImagesQuery {
            limit: None,
            cursor: extras.images.clone(),
        }),
    )
    .await?;
    let previous_next = previous
        .next_cursor
        .as_ref()
        .map(|cursor| format!("{}?images={cursor}#previous-images", head.base));
    let previous_first = extras
        .images
        .is_some()
        .then(|| format!("{}#previous-images", head.base));
    let previous = previous
        .items
        .into_iter()
        .map(|p| PreviousView {
            label: format!(
                "{} @ {} (last deployed {})",
                p.tag.as_deref().unwrap_or("untagged"),
                short_digest(&p.digest),
                p.last_deployed_at
            ),
            release: p.release,
        })
        .collect();
    let envs = state.store().list_environments(&head.org.name).await?;
    let first_env = envs
        .first()
        .map(|e| e.display_name.clone())
        .unwrap_or_default();
    let live = live_view(
        state,
        c,
        (&head.org.name, &head.project.name, name),
        extras.promote_error,
    )
    .await?;
    let endpoints = if head.is_task() {
        None
    } else {
        let Json(current) =
            crate::api::endpoints::get_endpoints(State(state.clone()), c.auth(), path()).await?;
        Some(EndpointsPane::new(
            current,
            &envs,
            extras.endpoints_form,
            extras.schema_problem,
        ))
    };
    let (deploy_what, deploy_image) = extras.deploy_form.unwrap_or_else(|| {
        let what = if extras.images.is_some() {
            "previous"
        } else {
            "tag"
        };
        (what.to_owned(), head.component.image.clone())
    });
    let page = ComponentPage {
        deploy_what,
        deploy_image,
        chrome: c.chrome(
            &head.org.name,
            "overview",
            head.component.display_name.clone(),
        ),
        csrf: c.csrf.clone(),
        head,
        repository,
        current_tag,
        first_env,
        previous,
        previous_next,
        previous_first,
        live,
        endpoints,
        notice: extras.notice,
        deploy_problem: extras.deploy_problem,
    };
    render_status(extras.status, &page)
}

/// `GET …/components/{component}`: the Deploy page.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(query): Query<ComponentQuery>,
) -> PageResult {
    let notice = match query.done.as_deref() {
        Some("created") => Some("Component created. Pick a tag and deploy it.".to_owned()),
        Some("deployed") => Some("Deployment started; its progress shows below.".to_owned()),
        Some("unchanged") => Some(
            "Nothing to deploy: that digest is already deployed. Tick “Deploy even if…” to roll it out again."
                .to_owned(),
        ),
        Some("promoted") => Some("Promotion started; its progress shows below.".to_owned()),
        Some("endpoints") => Some(
            "Endpoints saved. They take effect with the next deployment.".to_owned(),
        ),
        Some("schema") => Some("Schema file saved.".to_owned()),
        Some("schema-deleted") => Some("Schema file deleted.".to_owned()),
        _ => None,
    };
    component_page(
        &state,
        &c,
        (&org, &project, &name),
        PageExtras {
            notice,
            images: query.images,
            ..PageExtras::default()
        },
    )
    .await
}

#[derive(Template)]
#[template(path = "console/tags.html")]
struct TagsFragment {
    repository: String,
    tags: Vec<String>,
    current: String,
    error: Option<String>,
}

/// `GET …/tags`: the tags of the component's repository, from its registry (htmx, on load).
pub async fn tags(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
) -> PageResult {
    let Json(component) = crate::api::components::get_component(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project, name)),
    )
    .await?;
    let image = ImageRef::parse(&component.image).map_err(|e| {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the component's image does not parse: {e}"),
        )
    })?;
    let current = image.tag().unwrap_or_default().to_owned();
    let result = crate::api::registries::list_tags(
        State(state.clone()),
        c.auth(),
        Path((org, component.registry.clone())),
        crate::extract::Query(TagsQuery {
            repository: image.path().to_owned(),
        }),
    )
    .await;
    let (tags, error) = match result {
        Ok(Json(t)) => {
            let mut tags = t.tags;
            // Newest-looking first is a guess; the registry's order is lexical. Keep the
            // current tag easy to find by listing it first.
            tags.sort_by(|a, b| (b == &current).cmp(&(a == &current)).then(a.cmp(b)));
            (tags, None)
        }
        Err(e) => (Vec::new(), Some(e.message)),
    };
    render(&TagsFragment {
        repository: image.name(),
        tags,
        current,
        error,
    })
}

#[derive(Debug, Deserialize)]
pub struct DeployForm {
    #[serde(default)]
    what: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    previous: String,
    #[serde(default)]
    force: Option<String>,
}

/// `POST …/deploy`: Update Image Tag / Update Image URL / Previous Images through the API's
/// deploy (the shared deploy path).
pub async fn deploy(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<DeployForm>,
) -> PageResult {
    let mut body = DeployRequest {
        force: form.force.is_some(),
        ..DeployRequest::default()
    };
    match form.what.as_str() {
        "tag" => body.tag = Some(form.tag.trim().to_owned()),
        "image" => body.image = Some(form.image.trim().to_owned()),
        "previous" => body.previous = Some(form.previous.trim().to_owned()),
        _ => {}
    }
    let result = crate::api::components::deploy(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone())),
        Json(body),
    )
    .await;
    match result {
        Ok((_, Json(accepted))) => {
            let done = if accepted.created {
                "deployed"
            } else {
                "unchanged"
            };
            Ok(see_other(&format!(
                "{}?done={done}",
                base_url(&org, &project, &name)
            )))
        }
        Err(e) => {
            component_page(
                &state,
                &c,
                (&org, &project, &name),
                PageExtras {
                    status: e.status,
                    deploy_problem: Problem::from_api(&e),
                    deploy_form: Some((form.what.clone(), form.image.clone())),
                    ..PageExtras::default()
                },
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `POST …/promote`: the API's promote (what is ready in `from` goes to `to`).
pub async fn promote(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<PromoteForm>,
) -> PageResult {
    let result = crate::api::components::promote(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone())),
        Json(PromoteRequest {
            from: form.from,
            to: form.to,
        }),
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=promoted",
            base_url(&org, &project, &name)
        ))),
        Err(e) => {
            component_page(
                &state,
                &c,
                (&org, &project, &name),
                PageExtras {
                    status: e.status,
                    promote_error: Some(e.message),
                    ..PageExtras::default()
                },
            )
            .await
        }
    }
}
