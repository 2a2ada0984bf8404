//! The endpoints pane of the Deploy page: the endpoints with their URLs per environment, an
//! editor for the endpoints file (validated by the API's `PUT …/endpoints`, every issue shown
//! at the editor) and schema files (uploaded through the API's `PUT …/schemas/{name}`).

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use berth_core::api::{EndpointsState, Environment, PutEndpoints};
use serde::Deserialize;

use super::components::{ComponentPath, PageExtras, base_url, component_page};
use super::{Console, Form, PageError, PageResult, Problem, see_other};
use crate::AppState;
use crate::extract::{Json, Path};

/// The file names the API reads (Choreo's three formats).
const FILE_NAMES: [&str; 3] = ["endpoints.yaml", "component.yaml", "component-config.yaml"];

pub struct EndpointRow {
    pub name: String,
    pub display_name: String,
    pub kind: &'static str,
    pub port: u16,
    pub visibilities: String,
    pub context: String,
    pub schema_file: Option<String>,
    /// (environment display name, URL where it is routed).
    pub urls: Vec<(String, Option<String>)>,
}

/// What the pane shows.
pub struct EndpointsPane {
    pub file_name: String,
    pub content: String,
    pub has_file: bool,
    pub file_names: Vec<String>,
    pub endpoints: Vec<EndpointRow>,
    pub warnings: Vec<String>,
    pub schemas: Vec<String>,
    pub problem: Problem,
    pub schema_problem: Problem,
}

impl EndpointsPane {
    /// `refused`: the editor's file name, content and problem after the API refused them.
    pub fn new(
        state: EndpointsState,
        envs: &[Environment],
        refused: Option<(String, String, Problem)>,
        schema_problem: Problem,
    ) -> Self {
        let has_file = state.file_name.is_some();
        let (file_name, content, problem) = refused.unwrap_or_else(|| {
            (
                state
                    .file_name
                    .clone()
                    .unwrap_or_else(|| FILE_NAMES[0].to_owned()),
                state.content.clone().unwrap_or_default(),
                Problem::default(),
            )
        });
        let display = |env: &str| {
            envs.iter()
                .find(|e| e.name == env)
                .map_or_else(|| env.to_owned(), |e| e.display_name.clone())
        };
        let endpoints = state
            .endpoints
            .into_iter()
            .map(|v| EndpointRow {
                urls: envs
                    .iter()
                    .map(|e| {
                        (
                            display(&e.name),
                            v.urls.get(&e.name).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
                name: v.endpoint.name,
                display_name: v.endpoint.display_name,
                kind: v.endpoint.kind.as_str(),
                port: v.endpoint.port,
                visibilities: v
                    .endpoint
                    .visibilities
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                context: v.endpoint.context,
                schema_file: v.endpoint.schema_file,
            })
            .collect();
        Self {
            file_name,
            content,
            has_file,
            file_names: FILE_NAMES.map(str::to_owned).to_vec(),
            endpoints,
            warnings: state.warnings.iter().map(ToString::to_string).collect(),
            schemas: state.schemas,
            problem,
            schema_problem,
        }
    }

    /// Whether `format` is the file name shown in the editor.
    pub fn is_format(&self, format: &str) -> bool {
        self.file_name == format
    }

    /// Whether the editor opens by itself (a refusal to show, or no file yet).
    pub fn editor_open(&self) -> bool {
        self.problem.any().is_some() || !self.has_file
    }
}

#[derive(Debug, Deserialize)]
pub struct EndpointsForm {
    #[serde(default, rename = "fileName")]
    file_name: String,
    #[serde(default)]
    content: String,
}

/// `POST …/endpoints`: the API's `PUT …/endpoints`; a refusal comes back at the editor with
/// every issue the validator found.
pub async fn save(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<EndpointsForm>,
) -> PageResult {
    // Browsers send textarea lines with CRLF; YAML does not care, but keep what is stored tidy.
    let content = form.content.replace("\r\n", "\n");
    let result = crate::api::endpoints::put_endpoints(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone())),
        Json(PutEndpoints {
            file_name: form.file_name.clone(),
            content: content.clone(),
        }),
    )
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=endpoints#endpoints",
            base_url(&org, &project, &name)
        ))),
        Err(e) => {
            component_page(
                &state,
                &c,
                (&org, &project, &name),
                PageExtras {
                    status: e.status,
                    endpoints_form: Some((form.file_name, content, Problem::from_api(&e))),
                    ..PageExtras::default()
                },
            )
            .await
        }
    }
}

/// A refused schema upload, shown at the upload form.
async fn schema_refused(
    state: &AppState,
    c: &Console,
    names: (&str, &str, &str),
    status: StatusCode,
    problem: Problem,
) -> PageResult {
    component_page(
        state,
        c,
        names,
        PageExtras {
            status,
            schema_problem: problem,
            ..PageExtras::default()
        },
    )
    .await
}

/// `POST …/schemas` (multipart: `file`, optional `name`): the API's `PUT …/schemas/{name}`.
/// The name defaults to the uploaded file's name; `schemaFilePath` in the endpoints file refers
/// to it.
pub async fn upload(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    req: Request,
) -> PageResult {
    let mut form = Multipart::from_request(req, &state)
        .await
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut schema_name = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?
    {
        match field.name() {
            Some("name") => {
                schema_name = field
                    .text()
                    .await
                    .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?
                    .trim()
                    .to_owned();
            }
            Some("file") => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
                file = Some((file_name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    let names = (org.as_str(), project.as_str(), name.as_str());
    let Some((file_name, bytes)) = file.filter(|(n, b)| !n.is_empty() || !b.is_empty()) else {
        return schema_refused(
            &state,
            &c,
            names,
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field("file", "choose a schema file to upload"),
        )
        .await;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return schema_refused(
            &state,
            &c,
            names,
            StatusCode::UNPROCESSABLE_ENTITY,
            Problem::field(
                "file",
                "is not UTF-8 text (OpenAPI YAML/JSON or GraphQL SDL)",
            ),
        )
        .await;
    };
    if schema_name.is_empty() {
        schema_name = file_name;
    }
    match crate::api::endpoints::put_schema(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), schema_name)),
        Ok(text),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=schema#endpoints",
            base_url(&org, &project, &name)
        ))),
        Err(e) => schema_refused(&state, &c, names, e.status, Problem::from_api(&e)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SchemaForm {
    #[serde(default)]
    name: String,
}

/// `POST …/schemas/delete`: the API's `DELETE …/schemas/{name}`.
pub async fn delete_schema(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Form(form): Form<SchemaForm>,
) -> PageResult {
    match crate::api::endpoints::delete_schema(
        State(state.clone()),
        c.auth(),
        Path((org.clone(), project.clone(), name.clone(), form.name)),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=schema-deleted#endpoints",
            base_url(&org, &project, &name)
        ))),
        Err(e) => {
            schema_refused(
                &state,
                &c,
                (&org, &project, &name),
                e.status,
                Problem::from_api(&e),
            )
            .await
        }
    }
}
