//! Settings → Container Registries: list, add (four auth types, write-only secrets), test the
//! connection step by step, delete.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use berth_core::Secret;
use berth_core::api::{
    CreateRegistry, Org, Registry, RegistryAuthType, RegistryTestReport, TestRegistry,
};
use serde::Deserialize;

use super::overview::{Done, org_or_404};
use super::{
    Chrome, Console, Form, NAME_RULE, PageResult, Problem, is_htmx, non_empty, render,
    render_status, see_other,
};
use crate::AppState;
use crate::extract::{Json, Path, Query};

const AUTH_TYPES: [(&str, &str); 4] = [
    ("anonymous", "Anonymous"),
    ("basic", "Basic (username + password/token)"),
    ("docker-config", "Docker config"),
    ("implicit", "Implicit (engine's own access)"),
];

/// The add form as typed; secrets (password, Docker config) are never sent back.
#[derive(Debug, Deserialize)]
pub struct RegistryForm {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "displayName")]
    display_name: String,
    #[serde(default)]
    host: String,
    #[serde(default = "default_auth", rename = "authType")]
    auth_type: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "dockerConfig")]
    docker_config: String,
    #[serde(default, rename = "caCertificate")]
    ca_certificate: String,
    #[serde(default)]
    insecure: Option<String>,
    #[serde(default = "default_platform")]
    platform: String,
}

fn default_auth() -> String {
    "anonymous".into()
}

fn default_platform() -> String {
    "linux/amd64".into()
}

impl Default for RegistryForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            display_name: String::new(),
            host: String::new(),
            auth_type: default_auth(),
            username: String::new(),
            password: String::new(),
            docker_config: String::new(),
            ca_certificate: String::new(),
            insecure: None,
            platform: default_platform(),
        }
    }
}

/// What the template echoes back (no secrets).
pub struct FormView {
    name: String,
    display_name: String,
    host: String,
    auth_type: String,
    username: String,
    ca_certificate: String,
    insecure: bool,
    platform: String,
}

impl From<&RegistryForm> for FormView {
    fn from(f: &RegistryForm) -> Self {
        Self {
            name: f.name.clone(),
            display_name: f.display_name.clone(),
            host: f.host.clone(),
            auth_type: f.auth_type.clone(),
            username: f.username.clone(),
            ca_certificate: f.ca_certificate.clone(),
            insecure: f.insecure.is_some(),
            platform: f.platform.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/registries.html")]
struct RegistriesPage {
    chrome: Chrome,
    csrf: String,
    org: Org,
    registries: Vec<Registry>,
    notice: Option<&'static str>,
    list_problem: Option<String>,
    form: FormView,
    problem: Problem,
    auth_types: [(&'static str, &'static str); 4],
    name_rule: &'static str,
}

struct PageInput {
    status: StatusCode,
    notice: Option<&'static str>,
    list_problem: Option<String>,
    form: FormView,
    problem: Problem,
}

impl Default for PageInput {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            notice: None,
            list_problem: None,
            form: FormView::from(&RegistryForm::default()),
            problem: Problem::default(),
        }
    }
}

async fn registries_page(state: &AppState, c: &Console, org: &str, input: PageInput) -> PageResult {
    let org = org_or_404(state, org).await?;
    let Json(list) = crate::api::registries::list_registries(
        State(state.clone()),
        c.auth(),
        Path(org.name.clone()),
    )
    .await?;
    let page = RegistriesPage {
        chrome: c.chrome(&org.name, "registries", "Container registries"),
        csrf: c.csrf.clone(),
        org,
        registries: list.items,
        notice: input.notice,
        list_problem: input.list_problem,
        form: input.form,
        problem: input.problem,
        auth_types: AUTH_TYPES,
        name_rule: NAME_RULE,
    };
    render_status(input.status, &page)
}

/// `GET /orgs/{org}/settings/registries`.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let notice = match done.done.as_deref() {
        Some("added") => Some("Registry added. Test its connection below."),
        Some("deleted") => Some("Registry deleted."),
        _ => None,
    };
    registries_page(
        &state,
        &c,
        &org,
        PageInput {
            notice,
            ..PageInput::default()
        },
    )
    .await
}

/// `POST /orgs/{org}/settings/registries`: the API's create-registry. Only the fields of the
/// chosen auth type are sent (the others are hidden in the form).
pub async fn create(
    State(state): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Form(form): Form<RegistryForm>,
) -> PageResult {
    org_or_404(&state, &org).await?;
    let auth_type = match form.auth_type.parse::<RegistryAuthType>() {
        Ok(t) => t,
        Err(e) => {
            return registries_page(
                &state,
                &c,
                &org,
                PageInput {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    form: FormView::from(&form),
                    problem: Problem::field("authType", e),
                    ..PageInput::default()
                },
            )
            .await;
        }
    };
    let basic = auth_type == RegistryAuthType::Basic;
    let docker = auth_type == RegistryAuthType::DockerConfig;
    let body = CreateRegistry {
        name: form.name.trim().to_owned(),
        display_name: non_empty(&form.display_name),
        host: non_empty(&form.host),
        auth_type,
        username: basic.then(|| form.username.trim().to_owned()),
        // Byte-exact: passwords can be structured (GAR's JSON keys); never trimmed.
        password: basic.then(|| Secret::new(form.password.clone())),
        docker_config: docker.then(|| Secret::new(form.docker_config.clone())),
        ca_certificate: non_empty(&form.ca_certificate),
        insecure: Some(form.insecure.is_some()),
        platform: non_empty(&form.platform),
    };
    match crate::api::registries::create_registry(
        State(state.clone()),
        c.auth(),
        Path(org.clone()),
        Json(body),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/orgs/{org}/settings/registries?done=added"
        ))),
        Err(e) => {
            registries_page(
                &state,
                &c,
                &org,
                PageInput {
                    status: e.status,
                    form: FormView::from(&form),
                    problem: Problem::from_api(&e),
                    ..PageInput::default()
                },
            )
            .await
        }
    }
}

pub struct TestView {
    registry: String,
    report: Option<RegistryTestReport>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/registry_test.html")]
struct TestFragment {
    test: TestView,
}

#[derive(Template)]
#[template(path = "console/registry_test_page.html")]
struct TestPage {
    chrome: Chrome,
    org: String,
    test: TestView,
}

#[derive(Debug, Deserialize)]
pub struct TestForm {
    #[serde(default)]
    image: String,
}

/// `POST /orgs/{org}/settings/registries/{registry}/test`: every step of the API's test, as a
/// fragment for htmx or a page without it. Failures are part of the answer (200).
pub async fn test(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path((org, registry)): Path<(String, String)>,
    Form(form): Form<TestForm>,
) -> PageResult {
    let result = crate::api::registries::test_registry(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), registry.clone())),
        Json(TestRegistry {
            image: non_empty(&form.image),
        }),
    )
    .await;
    let test = match result {
        Ok(Json(report)) => TestView {
            registry,
            report: Some(report),
            error: None,
        },
        Err(e) => TestView {
            registry,
            report: None,
            error: Some(e.message),
        },
    };
    if is_htmx(&headers) {
        render(&TestFragment { test })
    } else {
        render(&TestPage {
            chrome: c.chrome(&org, "registries", "Test connection"),
            org,
            test,
        })
    }
}

/// `POST /orgs/{org}/settings/registries/{registry}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    c: Console,
    Path((org, registry)): Path<(String, String)>,
) -> PageResult {
    match crate::api::registries::delete_registry(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), registry)),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/orgs/{org}/settings/registries?done=deleted"
        ))),
        Err(e) => {
            registries_page(
                &state,
                &c,
                &org,
                PageInput {
                    status: e.status,
                    list_problem: Some(e.message),
                    ..PageInput::default()
                },
            )
            .await
        }
    }
}
