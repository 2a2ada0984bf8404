//! Choreo-compatible source configuration: `.choreo/component.yaml` (schema versions 1.0, 1.1
//! and 1.2), the older `.choreo/component-config.yaml` (`core.choreo.dev/v1beta1`) and the
//! oldest `.choreo/endpoints.yaml` (version 0.1).
//!
//! Users bring the files they use with WSO2 Choreo, so the verdicts and the messages are those
//! of Choreo's public validator, `choreo-templates/choreo-source-config-validator`
//! (`schemas.js`, `index.js`; yup 1.x on js-yaml): the same fields are required, the same
//! patterns apply, unknown fields are ignored, and each message reads as Choreo's does
//! (`endpoints[3].port must be greater than 1000`). Unlike Choreo's action, every problem of a
//! file is reported at once, each with the path of its field, and a YAML syntax error names its
//! line and column. Where berth deliberately differs, the function says so.
//!
//! A valid file also yields its endpoints in one normalized shape ([`Endpoint`]) whichever
//! format declared them.
//!
//! When a `.choreo` directory holds several of the files, Choreo reads only the newest format:
//! component.yaml, then component-config.yaml, then endpoints.yaml
//! ([`validate_source_configs`]).

mod documents;
mod grammar;
mod read;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use utoipa::ToSchema;

/// The component.yaml schema version Choreo's warnings point users to.
pub const LATEST_COMPONENT_YAML_VERSION: &str = "1.2";

/// One problem, or one warning, in a source configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// Where: `endpoints[3].port`, `dependencies.connectionReferences[0].resourceRef`; empty
    /// for the document itself (syntax errors, the outdated-format warning).
    pub path: String,
    /// What, in Choreo's words where Choreo has a message for it.
    pub message: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    /// The message, prefixed with the path unless the message already starts with it (most of
    /// Choreo's messages do).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.message.starts_with(&self.path) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The verdict on one file: `valid` exactly when `errors` is empty. Warnings never make a file
/// invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub valid: bool,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl ValidationReport {
    fn new(errors: Vec<Issue>, warnings: Vec<Issue>) -> Self {
        Self {
            valid: errors.is_empty(),
            errors,
            warnings,
        }
    }
}

/// The protocol of an endpoint, spelled as in the files (case-sensitive: `Rest` is refused).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EndpointType {
    #[serde(rename = "REST")]
    Rest,
    #[serde(rename = "GraphQL")]
    GraphQl,
    #[serde(rename = "GRPC")]
    Grpc,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "WS")]
    Ws,
}

impl EndpointType {
    /// In Choreo's order, which its messages list.
    pub const ALL: [EndpointType; 6] = [
        EndpointType::Rest,
        EndpointType::GraphQl,
        EndpointType::Grpc,
        EndpointType::Tcp,
        EndpointType::Udp,
        EndpointType::Ws,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Rest => "REST",
            EndpointType::GraphQl => "GraphQL",
            EndpointType::Grpc => "GRPC",
            EndpointType::Tcp => "TCP",
            EndpointType::Udp => "UDP",
            EndpointType::Ws => "WS",
        }
    }

    /// The exact spelling of a type, as Choreo accepts it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// HTTP-based types, which are routed by context (base path) and need one in
    /// endpoints.yaml and component-config.yaml.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            EndpointType::Rest | EndpointType::GraphQl | EndpointType::Ws
        )
    }

    /// Types Choreo only exposes inside the project (component.yaml refuses any other
    /// visibility for them).
    pub fn project_only(self) -> bool {
        !self.is_http()
    }
}

impl fmt::Display for EndpointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who can reach an endpoint: other components of the project, of the organization, or
/// anyone.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Visibility {
    Public,
    Project,
    Organization,
}

impl Visibility {
    /// In Choreo's order, which its messages list.
    pub const ALL: [Visibility; 3] = [
        Visibility::Public,
        Visibility::Project,
        Visibility::Organization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "Public",
            Visibility::Project => "Project",
            Visibility::Organization => "Organization",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint of a valid source configuration, the same shape whichever file declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    /// component.yaml's `displayName`; the name where there is none.
    pub display_name: String,
    /// The container port, 1001–65534.
    pub port: u16,
    #[serde(rename = "type")]
    pub kind: EndpointType,
    /// Never empty, without duplicates, in the file's order: endpoints.yaml and
    /// component-config.yaml give one (`networkVisibility`), component.yaml a list
    /// (`networkVisibilities`); `[Public]` when the file gives none.
    pub visibilities: Vec<Visibility>,
    /// The context (component.yaml's `service.basePath`); `/` when the file gives none.
    pub context: String,
    /// The schema file, relative to the source root, normalized (`./api/../openapi.yaml` is
    /// `openapi.yaml`).
    pub schema_file: Option<String>,
}

/// The three source configuration files, newest format first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SourceConfigKind {
    ComponentYaml,
    ComponentConfigYaml,
    EndpointsYaml,
}

impl SourceConfigKind {
    /// Choreo's precedence: the first of these present in `.choreo` is the one it reads.
    pub const PRECEDENCE: [SourceConfigKind; 3] = [
        SourceConfigKind::ComponentYaml,
        SourceConfigKind::ComponentConfigYaml,
        SourceConfigKind::EndpointsYaml,
    ];

    /// The file's name inside `.choreo`.
    pub fn file_name(self) -> &'static str {
        match self {
            SourceConfigKind::ComponentYaml => "component.yaml",
            SourceConfigKind::ComponentConfigYaml => "component-config.yaml",
            SourceConfigKind::EndpointsYaml => "endpoints.yaml",
        }
    }

    /// Validates `text` as this kind of file.
    pub fn validate(
        self,
        text: &str,
        schema_files: &BTreeSet<String>,
    ) -> (ValidationReport, Vec<Endpoint>) {
        match self {
            SourceConfigKind::ComponentYaml => validate_component_yaml(text, schema_files),
            SourceConfigKind::ComponentConfigYaml => {
                validate_component_config_yaml(text, schema_files)
            }
            SourceConfigKind::EndpointsYaml => validate_endpoints_yaml(text, schema_files),
        }
    }

    /// The kind a file name stands for: its last path component is `component.yaml`,
    /// `component-config.yaml` or `endpoints.yaml` (or the same with `.yml`).
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        let stem = base
            .strip_suffix(".yaml")
            .or_else(|| base.strip_suffix(".yml"))?;
        Self::PRECEDENCE
            .into_iter()
            .find(|k| k.file_name().strip_suffix(".yaml") == Some(stem))
    }
}

impl fmt::Display for SourceConfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Validates an `endpoints.yaml` (version 0.1).
///
/// `schema_files` are the files a `schemaFilePath` may name: paths relative to the source
/// root (Choreo's build context), `/`-separated, e.g. `openapi.yaml`, `api/graphql.schema`.
/// The endpoints come back only when the file is valid.
pub fn validate_endpoints_yaml(
    text: &str,
    schema_files: &BTreeSet<String>,
) -> (ValidationReport, Vec<Endpoint>) {
    run(text, schema_files, documents::endpoints_yaml)
}

/// Validates a `component.yaml` (schema version 1.0, 1.1 or 1.2): endpoints, dependencies
/// (service and connection references) and configurations (environment variables and, from
/// 1.2, configuration-form files). See [`validate_endpoints_yaml`] for `schema_files`.
pub fn validate_component_yaml(
    text: &str,
    schema_files: &BTreeSet<String>,
) -> (ValidationReport, Vec<Endpoint>) {
    run(text, schema_files, documents::component_yaml)
}

/// Validates a `component-config.yaml` (`apiVersion: core.choreo.dev/v1beta1`,
/// `kind: ComponentConfig`): `spec.inbound` endpoints and `spec.outbound` service references.
/// See [`validate_endpoints_yaml`] for `schema_files`.
pub fn validate_component_config_yaml(
    text: &str,
    schema_files: &BTreeSet<String>,
) -> (ValidationReport, Vec<Endpoint>) {
    run(text, schema_files, documents::component_config_yaml)
}

/// Which source configuration `text` is: by the file name when it is one of the three, else
/// by content (`schemaVersion` → component.yaml; `apiVersion` or `kind` →
/// component-config.yaml; `endpoints` or `version` → endpoints.yaml). `None` when neither
/// tells (including text that is not a YAML mapping).
pub fn detect_kind(file_name: &str, text: &str) -> Option<SourceConfigKind> {
    if let Some(kind) = SourceConfigKind::from_file_name(file_name) {
        return Some(kind);
    }
    let Ok(Value::Mapping(root)) = read::parse(text) else {
        return None;
    };
    let has = |key: &str| root.contains_key(key);
    if has("schemaVersion") {
        Some(SourceConfigKind::ComponentYaml)
    } else if has("apiVersion") || has("kind") {
        Some(SourceConfigKind::ComponentConfigYaml)
    } else if has("endpoints") || has("version") {
        Some(SourceConfigKind::EndpointsYaml)
    } else {
        None
    }
}

/// Validates a source configuration file of whichever kind [`detect_kind`] finds. A file it
/// cannot place is invalid, with the reason (a syntax error if it is not YAML).
pub fn detect_and_validate(
    file_name: &str,
    text: &str,
    schema_files: &BTreeSet<String>,
) -> (ValidationReport, Vec<Endpoint>) {
    if let Some(kind) = detect_kind(file_name, text) {
        return kind.validate(text, schema_files);
    }
    let error = match read::parse(text) {
        Err(syntax) => syntax,
        Ok(_) => Issue::new(
            "",
            "is not a Choreo source configuration file: expected component.yaml (with schemaVersion), component-config.yaml (with apiVersion: core.choreo.dev/v1beta1 and kind: ComponentConfig) or endpoints.yaml (with version and endpoints)",
        ),
    };
    (ValidationReport::new(vec![error], Vec::new()), Vec::new())
}

/// The outcome for a `.choreo` directory: the file Choreo reads and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceConfig {
    pub kind: SourceConfigKind,
    pub report: ValidationReport,
    pub endpoints: Vec<Endpoint>,
}

/// Validates the source configuration of a `.choreo` directory, given as its files' names
/// (`component.yaml`, …; other files are ignored) and texts. Only the highest-precedence file
/// is read, as Choreo does; each lower one present gets a warning that it is ignored. `None`
/// when there is none of the three.
pub fn validate_source_configs(
    files: &BTreeMap<String, String>,
    schema_files: &BTreeSet<String>,
) -> Option<SourceConfig> {
    let present: Vec<(SourceConfigKind, &String)> = SourceConfigKind::PRECEDENCE
        .into_iter()
        .filter_map(|kind| {
            files
                .iter()
                .find(|(name, _)| SourceConfigKind::from_file_name(name) == Some(kind))
                .map(|(_, text)| (kind, text))
        })
        .collect();
    let (&(kind, text), ignored) = present.split_first()?;
    let (mut report, endpoints) = kind.validate(text, schema_files);
    for (other, _) in ignored {
        report.warnings.push(Issue::new(
            "",
            format!("{other} is ignored: {kind} takes precedence over it"),
        ));
    }
    Some(SourceConfig {
        kind,
        report,
        endpoints,
    })
}

fn run(
    text: &str,
    schema_files: &BTreeSet<String>,
    check: fn(&mut read::Checker<'_>, &serde_yaml_ng::Mapping) -> Vec<Endpoint>,
) -> (ValidationReport, Vec<Endpoint>) {
    let root = match read::parse(text) {
        Ok(root) => root,
        Err(syntax) => return (ValidationReport::new(vec![syntax], Vec::new()), Vec::new()),
    };
    let mut checker = read::Checker::new(schema_files);
    let endpoints = match read::untag(&root) {
        Value::Mapping(map) => check(&mut checker, map),
        // Choreo's action fails on an empty file too (it reads fields of `undefined`).
        Value::Null => {
            checker.error(
                "",
                "the file is empty; it must be a YAML mapping of the fields of the file",
            );
            Vec::new()
        }
        other => {
            checker.error(
                "",
                format!(
                    "the file must be a YAML mapping (key: value pairs), not {}",
                    describe(other)
                ),
            );
            Vec::new()
        }
    };
    let report = ValidationReport::new(checker.errors, checker.warnings);
    // Half a configuration is not one to deploy.
    let endpoints = if report.valid { endpoints } else { Vec::new() };
    (report, endpoints)
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
