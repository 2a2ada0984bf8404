//! `berth render`: the Kubernetes manifests of one environment of a project.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the Kubernetes driver applies for a project's environment, objects in apply order.
/// Secret values read `<redacted>` (base64) unless revealed on purpose; such Secrets carry
/// the annotation `berth.redacted: "true"`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderedManifests {
    pub org: String,
    pub project: String,
    pub environment: String,
    /// The Kubernetes namespace of (org, project, environment).
    pub namespace: String,
    /// True when Secret values were replaced by `<redacted>`.
    pub redacted: bool,
    /// The components rendered: those with a ready deployment in the environment.
    pub components: Vec<String>,
    /// Kubernetes objects (apiVersion, kind, metadata, …).
    #[schema(value_type = Vec<Object>)]
    pub objects: Vec<serde_json::Value>,
}
