//! DevOps → External CI: the component's CI tokens (create — the secret is shown once, with a
//! copy button — and revoke) and the ready-to-paste webhook snippets, through the API's CI
//! handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::api::{CiToken, CreateCiToken, CreatedCiToken};
use berth_core::ci::SnippetKind;
use serde::Deserialize;

use super::components::{ComponentPath, Head, base_url, head};
use super::{Chrome, Console, Form, PageResult, Problem, non_empty, render_status, see_other};
use crate::AppState;
use crate::extract::{Json, Path, Query};

pub struct SnippetView {
    kind: &'static str,
    title: &'static str,
    text: String,
}

#[derive(Default)]
pub struct TokenFormView {
    name: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "console/ci.html")]
struct CiPage {
    chrome: Chrome,
    csrf: String,
    head: Head,
    /// `None` when the role may not manage tokens (the reason is in `tokens_problem`).
    tokens: Option<Vec<CiToken>>,
    tokens_problem: Option<String>,
    created: Option<CreatedCiToken>,
    webhook_url: String,
    snippets: Vec<SnippetView>,
    form: TokenFormView,
    problem: Problem,
    notice: Option<&'static str>,
}

#[derive(Default)]
struct Extras {
    status: StatusCode,
    created: Option<CreatedCiToken>,
    form: TokenFormView,
    problem: Problem,
    notice: Option<&'static str>,
}

fn title(kind: SnippetKind) -> &'static str {
    match kind {
        SnippetKind::Curl => "curl (any CI)",
        SnippetKind::GithubActions => "GitHub Actions",
        SnippetKind::GitlabCi => "GitLab CI",
    }
}

async fn ci_page(
    state: &AppState,
    c: &Console,
    names: (&str, &str, &str),
    extras: Extras,
) -> PageResult {
    let head = head(state, c, names, "ci").await?;
    let path = || {
        Path((
            head.org.name.clone(),
            head.project.name.clone(),
            head.component.name.clone(),
        ))
    };
    let (tokens, tokens_problem) =
        match crate::api::ci::list_ci_tokens(State(state.clone()), c.auth(), path()).await {
            Ok(Json(list)) => (Some(list.items), None),
            Err(e) if e.status == StatusCode::FORBIDDEN => (None, Some(e.message)),
            Err(e) => return Err(e.into()),
        };
    let mut snippets = Vec::new();
    let mut webhook_url = String::new();
    for kind in SnippetKind::ALL {
        let Json(s) = crate::api::ci::ci_snippet(
            State(state.clone()),
            c.auth(),
            Path((
                head.org.name.clone(),
                head.project.name.clone(),
                head.component.name.clone(),
                kind.as_str().to_owned(),
            )),
        )
        .await?;
        webhook_url = s.webhook_url;
        snippets.push(SnippetView {
            kind: kind.as_str(),
            title: title(kind),
            text: s.text,
        });
    }
    render_status(
        extras.status,
        &CiPage {
            chrome: c.chrome(
                &head.org.name,
                "overview",
                format!("External CI · {}", head.component.display_name),
            ),
            csrf: c.csrf.clone(),
            head,
            tokens,
            tokens_problem,
            created: extras.created,
            webhook_url,
            snippets,
            form: extras.form,
            problem: extras.problem,
            notice: extras.notice,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
    /// The id of a token just created: its secret is shown on this page, once.
    #[serde(default)]
    created: Option<String>,
}

/// `GET …/ci[?created=ID]`.
pub async fn page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let mut notice = match q.done.as_deref() {
        Some("revoked") => Some("Token revoked: its next webhook call is refused."),
        _ => None,
    };
    let mut created = None;
    if let Some(id) = q.created {
        match c.take_flash(&state, &format!("ci:{id}")) {
            Some(secret) => {
                let target = berth_store::ComponentRef {
                    org: &org,
                    project: &project,
                    component: &name,
                };
                created = state
                    .store()
                    .list_ci_tokens(target)
                    .await?
                    .into_iter()
                    .find(|t| t.id == id)
                    .map(|token| CreatedCiToken {
                        token,
                        secret: secret.expose().to_owned(),
                    });
            }
            None => {
                notice = Some(
                    "A new token is shown only once, right after it is created. Revoke it and create another if it was not kept.",
                );
            }
        }
    }
    ci_page(
        &state,
        &c,
        (&org, &project, &name),
        Extras {
            notice,
            created,
            ..Extras::default()
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "expiresInDays")]
    expires: String,
}

/// `POST …/ci/tokens`: the API's create; the secret waits in the session for the page the
/// browser is redirected to (shown there once; a reload shows it no more and posts nothing).
pub async fn create(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<TokenForm>,
) -> PageResult {
    let names = (org.as_str(), project.as_str(), name.as_str());
    let view = TokenFormView {
        name: form.name.clone(),
        expires: form.expires.clone(),
    };
    let expires_in_days = match non_empty(&form.expires).map(|d| d.parse::<u32>()) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return ci_page(
                &state,
                &c,
                names,
                Extras {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    form: view,
                    problem: Problem::field("expiresInDays", "must be a whole number of days"),
                    ..Extras::default()
                },
            )
            .await;
        }
    };
    match crate::api::ci::create_ci_token(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone())),
        Json(CreateCiToken {
            name: form.name.trim().to_owned(),
            expires_in_days,
        }),
    )
    .await
    {
        Ok((_, Json(created))) => {
            c.flash(
                &state,
                &format!("ci:{}", created.token.id),
                berth_core::Secret::new(created.secret),
            );
            Ok(see_other(&format!(
                "{}/ci?created={}",
                base_url(&org, &project, &name),
                created.token.id
            )))
        }
        Err(e) => {
            ci_page(
                &state,
                &c,
                names,
                Extras {
                    status: e.status,
                    form: view,
                    problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

/// `POST …/ci/tokens/{id}/revoke`: the API's revoke.
pub async fn revoke(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name, id)): Path<(String, String, String, String)>,
) -> PageResult {
    match crate::api::ci::revoke_ci_token(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), id)),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}/ci?done=revoked",
            base_url(&org, &project, &name)
        ))),
        Err(e) => {
            ci_page(
                &state,
                &c,
                (&org, &project, &name),
                Extras {
                    status: e.status,
                    problem: Problem::from_api(&e),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}
