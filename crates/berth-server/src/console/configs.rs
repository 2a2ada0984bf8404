//! Configs and secrets of a component, per environment: list (secret values are write-only and
//! never shown), set one entry, remove one — each through the API's `PATCH …/configs`, which
//! can roll the running release out again with them.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::Secret;
use berth_core::api::{ConfigChange, ConfigEntry, ConfigKind, ConfigSet, ConfigUnset, Environment};
use serde::Deserialize;

use super::components::{ComponentPath, Head, head};
use super::{Chrome, Console, Form, PageResult, Problem, render_status, see_other};
use crate::AppState;
use crate::extract::{Json, Path, Query};

const KINDS: [(&str, &str); 4] = [
    ("env", "Environment variable"),
    ("secret-env", "Secret environment variable"),
    ("file", "Config file"),
    ("secret-file", "Secret file"),
];

#[derive(Debug, Default, Deserialize)]
pub struct EnvQuery {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// The set form as typed; a secret value is never sent back.
pub struct SetView {
    kind: String,
    name: String,
    value: String,
    apply: bool,
}

impl Default for SetView {
    fn default() -> Self {
        Self {
            kind: "env".into(),
            name: String::new(),
            value: String::new(),
            apply: true,
        }
    }
}

#[derive(Template)]
#[template(path = "console/configs.html")]
struct ConfigsPage {
    chrome: Chrome,
    csrf: String,
    head: Head,
    envs: Vec<Environment>,
    env: String,
    env_display: String,
    entries: Vec<ConfigEntry>,
    kinds: [(&'static str, &'static str); 4],
    form: SetView,
    problem: Problem,
    notice: Option<&'static str>,
}

async fn configs_page(
    state: &AppState,
    c: &Console,
    names: (&str, &str, &str),
    env: Option<String>,
    status: StatusCode,
    (form, problem, notice): (SetView, Problem, Option<&'static str>),
) -> PageResult {
    let head = head(state, c, names, "configs").await?;
    let envs = state.store().list_environments(&head.org.name).await?;
    let env = env
        .filter(|e| envs.iter().any(|x| &x.name == e))
        .or_else(|| envs.first().map(|e| e.name.clone()))
        .unwrap_or_default();
    let Json(list) = crate::api::components::list_configs(
        State(state.clone()),
        c.auth(),
        Path((
            head.org.name.clone(),
            head.project.name.clone(),
            head.component.name.clone(),
            env.clone(),
        )),
    )
    .await?;
    let env_display = envs
        .iter()
        .find(|e| e.name == env)
        .map_or_else(|| env.clone(), |e| e.display_name.clone());
    render_status(
        status,
        &ConfigsPage {
            chrome: c.chrome(
                &head.org.name,
                "overview",
                format!("Configs · {}", head.component.display_name),
            ),
            csrf: c.csrf.clone(),
            head,
            envs,
            env,
            env_display,
            entries: list.items,
            kinds: KINDS,
            form,
            problem,
            notice,
        },
    )
}

/// `GET …/configs?env=…`.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(q): Query<EnvQuery>,
) -> PageResult {
    let notice = match q.done.as_deref() {
        Some("saved") => Some("Saved. It applies with the next deployment to this environment."),
        Some("applied") => {
            Some("Saved, and the running release is being rolled out again with it (see Deploy).")
        }
        Some("removed") => Some("Removed. It applies with the next deployment."),
        Some("removed-applied") => {
            Some("Removed, and the running release is being rolled out again without it.")
        }
        _ => None,
    };
    configs_page(
        &state,
        &c,
        (&org, &project, &name),
        q.env,
        StatusCode::OK,
        (SetView::default(), Problem::default(), notice),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct SetForm {
    #[serde(default)]
    env: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    apply: Option<String>,
}

fn after_change(base: &str, env: &str, applied: bool, what: &str) -> axum::response::Response {
    let done = match (what, applied) {
        ("saved", true) => "applied".to_owned(),
        (_, true) => format!("{what}-applied"),
        (_, false) => what.to_owned(),
    };
    see_other(&format!("{base}/configs?env={env}&done={done}"))
}

/// `POST …/configs`: sets one entry through the API (`set: [one]`).
pub async fn set(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<SetForm>,
) -> PageResult {
    let names = (org.as_str(), project.as_str(), name.as_str());
    let apply = form.apply.is_some();
    let kind = match form.kind.parse::<ConfigKind>() {
        Ok(k) => k,
        Err(e) => {
            let view = SetView {
                kind: form.kind.clone(),
                name: form.name.clone(),
                value: String::new(),
                apply,
            };
            return configs_page(
                &state,
                &c,
                names,
                Some(form.env),
                StatusCode::UNPROCESSABLE_ENTITY,
                (view, Problem::field("kind", e), None),
            )
            .await;
        }
    };
    // Files keep their bytes; browsers send textarea lines with CRLF.
    let value = if kind.is_file() {
        form.value.replace("\r\n", "\n")
    } else {
        form.value.clone()
    };
    let result = crate::api::components::change_configs(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), form.env.clone())),
        Json(ConfigChange {
            set: vec![ConfigSet {
                kind,
                name: form.name.trim().to_owned(),
                value: Secret::new(value),
            }],
            unset: Vec::new(),
            apply,
        }),
    )
    .await;
    match result {
        Ok(Json(changed)) => Ok(after_change(
            &super::components::base_url(&org, &project, &name),
            &form.env,
            changed.deployment.is_some(),
            "saved",
        )),
        Err(e) => {
            let view = SetView {
                kind: form.kind.clone(),
                name: form.name.clone(),
                // Write-only: a secret typed into a refused form is not sent back.
                value: if kind.is_secret() {
                    String::new()
                } else {
                    form.value.clone()
                },
                apply,
            };
            configs_page(
                &state,
                &c,
                names,
                Some(form.env),
                e.status,
                (view, Problem::from_api(&e), None),
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct UnsetForm {
    #[serde(default)]
    env: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    apply: Option<String>,
}

/// `POST …/configs/unset`: removes one entry through the API (`unset: [one]`).
pub async fn unset(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<UnsetForm>,
) -> PageResult {
    let result = crate::api::components::change_configs(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), form.env.clone())),
        Json(ConfigChange {
            set: Vec::new(),
            unset: vec![ConfigUnset {
                class: form.class.clone(),
                name: form.name.clone(),
            }],
            apply: form.apply.is_some(),
        }),
    )
    .await;
    match result {
        Ok(Json(changed)) => Ok(after_change(
            &super::components::base_url(&org, &project, &name),
            &form.env,
            changed.deployment.is_some(),
            "removed",
        )),
        Err(e) => {
            configs_page(
                &state,
                &c,
                (&org, &project, &name),
                Some(form.env),
                e.status,
                (SetView::default(), Problem::from_api(&e), None),
            )
            .await
        }
    }
}
