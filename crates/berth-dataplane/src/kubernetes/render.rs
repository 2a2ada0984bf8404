//! Specs → Kubernetes manifests. Pure: no I/O, no clock, no randomness, so the same desired
//! state always renders the same objects (golden tests pin them, `berth render` prints them).
//!
//! Layout: one namespace per (org, project, environment). In it, per component, objects named
//! after the component (a Service named like the component is its DNS name, as the engine's
//! network alias is). Configs go into a ConfigMap and a Secret named after the release, so a
//! new release gets new ones and a failed rollout leaves the old ones in place; pruning removes
//! them once nothing wants them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use berth_core::api::ConcurrencyPolicy;
use berth_core::endpoints::Visibility;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::spec::{
    EndpointSpec, Probe, ProbeAction, PullAuth, PullPolicy, TaskSpec, WorkloadKey, WorkloadKind,
    WorkloadSpec,
};
use crate::{Error, Result};

/// The field manager of every server-side apply berth makes.
pub const FIELD_MANAGER: &str = "berth";
/// Label on every object berth manages (with `app.kubernetes.io/managed-by: berth`).
pub const MANAGED_LABEL: &str = "berth.managed";
pub const ORG_LABEL: &str = "berth.org";
pub const PROJECT_LABEL: &str = "berth.project";
pub const ENV_LABEL: &str = "berth.env";
pub const COMPONENT_LABEL: &str = "berth.component";
pub const RELEASE_LABEL: &str = "berth.release";
pub const EXECUTION_LABEL: &str = "berth.execution";
/// On image pull Secrets (one per registry and namespace, shared by its components).
pub const PULL_SECRET_LABEL: &str = "berth.pull-secret";
/// Annotation on Secrets rendered with their values replaced.
pub const REDACTED_ANNOTATION: &str = "berth.redacted";
/// What a redacted value reads.
pub const REDACTED: &str = "<redacted>";

/// A Gateway (Gateway API) that routes reach through `parentRefs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    pub name: String,
    pub namespace: String,
}

/// How Public and Organization endpoints are routed into the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Gateway API `HTTPRoute`s attached to the external and the internal Gateway.
    GatewayApi,
    /// `networking.k8s.io/v1` Ingresses of these classes (external, internal). Ingress cannot
    /// strip the `/<org>/<project>/<component>/<env>` prefix portably: the backend sees it.
    Ingress {
        external_class: String,
        internal_class: String,
    },
}

/// Cluster-side names berth's manifests refer to. Defaults in [`RenderOptions::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Gateway for Public endpoints and web apps (default `berth-external` in `berth-system`).
    pub external_gateway: GatewayRef,
    /// Gateway for Organization endpoints (default `berth-internal` in `berth-system`).
    pub internal_gateway: GatewayRef,
    pub routing: Routing,
    /// Web apps answer at `<component>-<project>-<env>.<org>.<domain>` (default `localhost`).
    pub web_app_domain: String,
    /// Secret values in the output; `false` replaces each with `<redacted>` (what `berth
    /// render` prints unless asked otherwise). The driver always applies the real values.
    pub reveal_secrets: bool,
    /// Requests when the spec sets no limit (autoscaling needs requests to compute
    /// utilization): millicores and bytes.
    pub default_cpu_request_millis: i64,
    pub default_memory_request_bytes: i64,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            external_gateway: GatewayRef {
                name: "berth-external".into(),
                namespace: "berth-system".into(),
            },
            internal_gateway: GatewayRef {
                name: "berth-internal".into(),
                namespace: "berth-system".into(),
            },
            routing: Routing::GatewayApi,
            web_app_domain: "localhost".into(),
            reveal_secrets: false,
            default_cpu_request_millis: 100,
            default_memory_request_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Kubernetes names are DNS labels of at most 63 characters. Longer ones keep a readable
/// prefix and end in a hash of the whole name, so distinct inputs stay distinct.
fn dns_label(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let hash = hex_prefix(&Sha256::digest(name.as_bytes()), 8);
    format!("{}-{hash}", name[..54].trim_end_matches('-'))
}

fn hex_prefix(bytes: &[u8], chars: usize) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(chars)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect()
}

/// `berth-<org>-<project>-<env>`: the namespace of (org, project, environment), shortened
/// with a hash when longer than 63 characters.
pub fn namespace_name(key: &WorkloadKey) -> String {
    dns_label(&key.network_name())
}

/// The last 12 hex digits of an id (a UUID's random part): short, stable name suffixes.
fn short_id(id: &str) -> String {
    let hex: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() <= 12 {
        return if hex.is_empty() { "0".into() } else { hex };
    }
    hex[hex.len() - 12..].to_owned()
}

/// Name of the ConfigMap and of the Secret holding one release's configs.
pub fn config_name(spec: &WorkloadSpec) -> String {
    dns_label(&format!(
        "{}-config-{}",
        spec.key.component,
        short_id(&spec.release)
    ))
}

/// Name of the Job of one task execution.
pub fn job_name(key: &WorkloadKey, execution: &str) -> String {
    dns_label(&format!("{}-run-{}", key.component, short_id(execution)))
}

/// Name of the image pull Secret of a registry (`registry-<host with - for . and :>`).
pub fn pull_secret_name(server: &str) -> String {
    let cleaned: String = server
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() || cleaned.len() > 50 {
        return format!(
            "registry-{}",
            hex_prefix(&Sha256::digest(server.as_bytes()), 12)
        );
    }
    format!("registry-{cleaned}")
}

/// Labels every object of the environment carries.
fn env_labels(key: &WorkloadKey) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app.kubernetes.io/managed-by".into(), "berth".into());
    m.insert(MANAGED_LABEL.into(), "true".into());
    m.insert(ORG_LABEL.into(), key.org.clone().into());
    m.insert(PROJECT_LABEL.into(), key.project.clone().into());
    m.insert(ENV_LABEL.into(), key.env.clone().into());
    m
}

/// Labels of one component's objects.
fn component_labels(key: &WorkloadKey) -> Map<String, Value> {
    let mut m = env_labels(key);
    m.insert(
        "app.kubernetes.io/name".into(),
        key.component.clone().into(),
    );
    m.insert(COMPONENT_LABEL.into(), key.component.clone().into());
    m
}

/// The selector of a component's pods (stable across releases: selectors are immutable).
fn pod_selector(key: &WorkloadKey) -> Value {
    json!({ MANAGED_LABEL: "true", COMPONENT_LABEL: key.component })
}

fn metadata(name: &str, namespace: &str, labels: Map<String, Value>) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels })
}

fn secret_value(value: &[u8], opts: &RenderOptions) -> Value {
    if opts.reveal_secrets {
        BASE64.encode(value).into()
    } else {
        BASE64.encode(REDACTED).into()
    }
}

/// The namespace of the workload's environment and the policies every namespace has: deny
/// all ingress, then allow it from the same namespace (Project visibility is the floor).
pub fn render_namespace(key: &WorkloadKey) -> Vec<Value> {
    let ns = namespace_name(key);
    let labels = env_labels(key);
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": ns, "labels": labels },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("berth-default-deny", &ns, labels.clone()),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress"] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("berth-same-namespace", &ns, labels.clone()),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{ "from": [{ "podSelector": {} }] }],
            },
        }),
    ]
}

/// The `kubernetes.io/dockerconfigjson` Secret a workload pulls with (`None` for anonymous
/// and implicit auth: the node's own credentials apply).
pub fn render_pull_secret(key: &WorkloadKey, auth: &PullAuth, opts: &RenderOptions) -> Value {
    // The kubelet knows Docker Hub by its v1 index URL.
    let server = match auth.server.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    let config = json!({
        "auths": {
            server: {
                "username": auth.username,
                "password": auth.password,
                "auth": BASE64.encode(format!("{}:{}", auth.username, auth.password)),
            }
        }
    });
    let mut labels = env_labels(key);
    labels.insert(PULL_SECRET_LABEL.into(), "true".into());
    let mut meta = metadata(
        &pull_secret_name(&auth.server),
        &namespace_name(key),
        labels,
    );
    meta["annotations"] = json!({ "berth.registry": auth.server });
    if !opts.reveal_secrets {
        meta["annotations"][REDACTED_ANNOTATION] = "true".into();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": secret_value(config.to_string().as_bytes(), opts) },
    })
}

/// A config map key for `name`: the name itself when Kubernetes accepts it as a key.
fn config_key(name: &str, fallback: String) -> String {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid { name.to_owned() } else { fallback }
}

/// Where each config value lives: env vars and files, split into the ConfigMap and the Secret.
struct Configs {
    config_map: BTreeMap<String, String>,
    binary: BTreeMap<String, Value>,
    secret: BTreeMap<String, Value>,
    env: Vec<Value>,
    /// (mount path, key, secret)
    mounts: Vec<(String, String, bool)>,
}

fn configs(spec: &WorkloadSpec, opts: &RenderOptions) -> Configs {
    let name = config_name(spec);
    let mut c = Configs {
        config_map: BTreeMap::new(),
        binary: BTreeMap::new(),
        secret: BTreeMap::new(),
        env: Vec::new(),
        mounts: Vec::new(),
    };
    for (i, (var, value)) in spec.env.iter().enumerate() {
        let key = config_key(var, format!("env-{i}"));
        let source = if spec.secret_env.contains(var) {
            c.secret
                .insert(key.clone(), secret_value(value.as_bytes(), opts));
            json!({ "secretKeyRef": { "name": name, "key": key } })
        } else {
            c.config_map.insert(key.clone(), value.clone());
            json!({ "configMapKeyRef": { "name": name, "key": key } })
        };
        c.env.push(json!({ "name": var, "valueFrom": source }));
    }
    for (i, file) in spec.files.iter().enumerate() {
        let key = format!("file-{i}");
        if file.secret {
            c.secret
                .insert(key.clone(), secret_value(&file.content, opts));
        } else {
            match String::from_utf8(file.content.clone()) {
                Ok(text) => {
                    c.config_map.insert(key.clone(), text);
                }
                Err(e) => {
                    c.binary
                        .insert(key.clone(), BASE64.encode(e.into_bytes()).into());
                }
            }
        }
        c.mounts.push((file.path.clone(), key, file.secret));
    }
    c
}

fn render_configs(spec: &WorkloadSpec, c: &Configs, opts: &RenderOptions) -> Vec<Value> {
    let ns = namespace_name(&spec.key);
    let name = config_name(spec);
    let mut labels = component_labels(&spec.key);
    labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    let mut out = Vec::new();
    if !c.config_map.is_empty() || !c.binary.is_empty() {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(&name, &ns, labels.clone()),
            // Each release has its own: never changed once applied.
            "immutable": true,
        });
        if !c.config_map.is_empty() {
            cm["data"] = json!(c.config_map);
        }
        if !c.binary.is_empty() {
            cm["binaryData"] = json!(c.binary);
        }
        out.push(cm);
    }
    if !c.secret.is_empty() {
        let mut meta = metadata(&name, &ns, labels);
        if !opts.reveal_secrets {
            meta["annotations"] = json!({ REDACTED_ANNOTATION: "true" });
        }
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "immutable": true,
            "data": c.secret,
        }));
    }
    out
}

/// Bytes as a Kubernetes quantity (`256Mi` where it divides evenly).
fn quantity(bytes: i64) -> String {
    const MI: i64 = 1024 * 1024;
    if bytes > 0 && bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    }
}

fn seconds_at_least_one(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

fn probe(p: &Probe) -> Value {
    let mut v = match &p.action {
        ProbeAction::Http { path, port, .. } => {
            json!({ "httpGet": { "path": path, "port": port } })
        }
        ProbeAction::Tcp { port } => json!({ "tcpSocket": { "port": port } }),
        ProbeAction::Exec { command } => json!({ "exec": { "command": command } }),
    };
    v["initialDelaySeconds"] = p.initial_delay.as_secs().into();
    // berth's own prober polls faster than the kubelet can (whole seconds, at least one).
    v["periodSeconds"] = seconds_at_least_one(p.period).into();
    v["timeoutSeconds"] = seconds_at_least_one(p.timeout).into();
    v["failureThreshold"] = p.failure_threshold.max(1).into();
    v
}

/// Ports the container listens on: `port` and the endpoints' ports, each once.
fn ports(spec: &WorkloadSpec) -> Vec<u16> {
    let mut ports: Vec<u16> = spec.port.into_iter().collect();
    for e in &spec.endpoints {
        if !ports.contains(&e.port) {
            ports.push(e.port);
        }
    }
    ports
}

fn port_name(port: u16) -> String {
    format!("p-{port}")
}

/// The container and the volumes of a workload's pods. `extra_args` go after the image's
/// arguments (tasks).
fn pod_spec(
    spec: &WorkloadSpec,
    c: &Configs,
    extra_args: &[String],
    opts: &RenderOptions,
) -> Value {
    let mut container = json!({
        "name": spec.key.component,
        "image": spec.image,
        "imagePullPolicy": match spec.pull_policy {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        },
    });
    if let Some(command) = &spec.command {
        container["command"] = json!(command);
    }
    // Kubernetes' `args` replace the image's CMD: run arguments follow the spec's arguments
    // (or stand alone after the ENTRYPOINT when the spec has none).
    let mut args = spec.args.clone().unwrap_or_default();
    args.extend(extra_args.iter().cloned());
    if spec.args.is_some() || !args.is_empty() {
        container["args"] = json!(args);
    }
    if !c.env.is_empty() {
        container["env"] = json!(c.env);
    }
    let container_ports: Vec<Value> = ports(spec)
        .into_iter()
        .map(|p| json!({ "name": port_name(p), "containerPort": p, "protocol": "TCP" }))
        .collect();
    if !container_ports.is_empty() {
        container["ports"] = json!(container_ports);
    }
    let cpu = spec.cpu_millis.unwrap_or(opts.default_cpu_request_millis);
    let memory = spec
        .memory_bytes
        .unwrap_or(opts.default_memory_request_bytes);
    let mut resources =
        json!({ "requests": { "cpu": format!("{cpu}m"), "memory": quantity(memory) } });
    let mut limits = Map::new();
    if let Some(cpu) = spec.cpu_millis {
        limits.insert("cpu".into(), format!("{cpu}m").into());
    }
    if let Some(memory) = spec.memory_bytes {
        limits.insert("memory".into(), quantity(memory).into());
    }
    if !limits.is_empty() {
        resources["limits"] = Value::Object(limits);
    }
    container["resources"] = resources;
    if let Some(p) = &spec.readiness {
        container["readinessProbe"] = probe(p);
    }
    if let Some(p) = &spec.liveness {
        container["livenessProbe"] = probe(p);
    }
    let name = config_name(spec);
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (path, key, secret) in &c.mounts {
        // One volume per source, each file mounted at its exact path with subPath.
        let volume = if *secret { "secret-files" } else { "files" };
        mounts.push(json!({ "name": volume, "mountPath": path, "subPath": key, "readOnly": true }));
    }
    if c.mounts.iter().any(|m| !m.2) {
        volumes.push(json!({ "name": "files", "configMap": { "name": name } }));
    }
    if c.mounts.iter().any(|m| m.2) {
        // The default mode (0644): images often run as a non-root user.
        volumes.push(json!({ "name": "secret-files", "secret": { "secretName": name } }));
    }
    if !mounts.is_empty() {
        container["volumeMounts"] = json!(mounts);
    }
    let mut pod = json!({
        "containers": [container],
        // Components do not talk to the Kubernetes API, and service links would add a
        // variable per Service of the namespace to their environment.
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "terminationGracePeriodSeconds": spec.drain.as_secs().max(1),
    });
    if let Some(auth) = &spec.auth {
        pod["imagePullSecrets"] = json!([{ "name": pull_secret_name(&auth.server) }]);
    }
    if !volumes.is_empty() {
        pod["volumes"] = json!(volumes);
    }
    pod
}

fn pod_template(spec: &WorkloadSpec, pod: Value) -> Value {
    let mut labels = component_labels(&spec.key);
    labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    json!({ "metadata": { "labels": labels }, "spec": pod })
}

fn check(spec: &WorkloadSpec) -> Result<()> {
    let bad = |why: String| Err(Error::Invalid(why));
    if spec.replicas == 0 {
        return bad("replicas must be at least 1".into());
    }
    if let Some(s) = &spec.scaling
        && (s.min_replicas == 0 || s.max_replicas < s.min_replicas)
    {
        return bad(format!(
            "autoscaling wants 1 ≤ min ({}) ≤ max ({})",
            s.min_replicas, s.max_replicas
        ));
    }
    if !spec.image.contains("@sha256:") {
        return bad(format!(
            "image {:?} is not pinned to a digest (host/repo@sha256:…)",
            spec.image
        ));
    }
    for f in &spec.files {
        if !f.path.starts_with('/') {
            return bad(format!("file mount path {:?} is not absolute", f.path));
        }
    }
    Ok(())
}

/// Path prefix an endpoint answers at on a gateway: `/<org>/<project>/<component>/<env><context>`.
pub fn route_prefix(key: &WorkloadKey, context: &str) -> String {
    let context = context.trim_end_matches('/');
    format!(
        "/{}/{}/{}/{}{context}",
        key.org, key.project, key.component, key.env
    )
}

/// Host name of a web app.
pub fn web_app_host(key: &WorkloadKey, domain: &str) -> String {
    format!(
        "{}-{}-{}.{}.{domain}",
        key.component, key.project, key.env, key.org
    )
}

fn endpoints_with(spec: &WorkloadSpec, v: Visibility) -> Vec<&EndpointSpec> {
    spec.endpoints
        .iter()
        .filter(|e| e.visibilities.contains(&v))
        .collect()
}

fn network_policy(spec: &WorkloadSpec, suffix: &str, from: Value, ports: &[u16]) -> Value {
    let ns = namespace_name(&spec.key);
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({ "protocol": "TCP", "port": p }))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(&format!("{}-{suffix}", spec.key.component), &ns, component_labels(&spec.key)),
        "spec": {
            "podSelector": { "matchLabels": pod_selector(&spec.key) },
            "policyTypes": ["Ingress"],
            "ingress": [{ "from": from, "ports": ports }],
        },
    })
}

fn namespace_of(gateway: &GatewayRef) -> Value {
    json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": gateway.namespace } } })
}

fn unique_ports(endpoints: &[&EndpointSpec]) -> Vec<u16> {
    let mut ports: Vec<u16> = endpoints.iter().map(|e| e.port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Policies opening a component beyond its namespace: Organization endpoints to the org's
/// namespaces and the internal gateway, Public ones (and web apps) to the external gateway.
fn render_network_policies(spec: &WorkloadSpec, opts: &RenderOptions) -> Vec<Value> {
    let mut out = Vec::new();
    let org = endpoints_with(spec, Visibility::Organization);
    if !org.is_empty() {
        let from = json!([
            { "namespaceSelector": { "matchLabels": { ORG_LABEL: spec.key.org, MANAGED_LABEL: "true" } } },
            namespace_of(&opts.internal_gateway),
        ]);
        out.push(network_policy(
            spec,
            "organization",
            from,
            &unique_ports(&org),
        ));
    }
    let mut public = unique_ports(&endpoints_with(spec, Visibility::Public));
    if spec.kind == WorkloadKind::WebApp
        && let Some(p) = spec.port
        && !public.contains(&p)
    {
        public.push(p);
    }
    if !public.is_empty() {
        let from = json!([namespace_of(&opts.external_gateway)]);
        out.push(network_policy(spec, "public", from, &public));
    }
    out
}

fn http_route(
    spec: &WorkloadSpec,
    suffix: &str,
    gateway: &GatewayRef,
    hostnames: Option<Vec<String>>,
    rules: Vec<Value>,
) -> Value {
    let ns = namespace_name(&spec.key);
    let mut route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(&format!("{}-{suffix}", spec.key.component), &ns, component_labels(&spec.key)),
        "spec": {
            "parentRefs": [{
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": gateway.name,
                "namespace": gateway.namespace,
            }],
            "rules": rules,
        },
    });
    if let Some(hosts) = hostnames {
        route["spec"]["hostnames"] = json!(hosts);
    }
    route
}

fn backend(spec: &WorkloadSpec, port: u16) -> Value {
    json!([{ "group": "", "kind": "Service", "name": spec.key.component, "port": port, "weight": 1 }])
}

/// Rules sending `/<org>/<project>/<component>/<env><context>` to the endpoint's port with the
/// prefix replaced by the context, as berth's own gateway does.
fn path_rules(spec: &WorkloadSpec, endpoints: &[&EndpointSpec]) -> Vec<Value> {
    endpoints
        .iter()
        .filter(|e| e.http)
        .map(|e| {
            json!({
                "matches": [{ "path": { "type": "PathPrefix", "value": route_prefix(&spec.key, &e.context) } }],
                "filters": [{
                    "type": "URLRewrite",
                    "urlRewrite": { "path": { "type": "ReplacePrefixMatch", "replacePrefixMatch": e.context } },
                }],
                "backendRefs": backend(spec, e.port),
            })
        })
        .collect()
}

fn ingress(
    spec: &WorkloadSpec,
    suffix: &str,
    class: &str,
    host: Option<String>,
    paths: Vec<(String, u16)>,
) -> Value {
    let ns = namespace_name(&spec.key);
    let paths: Vec<Value> = paths
        .into_iter()
        .map(|(path, port)| {
            json!({
                "path": path,
                "pathType": "Prefix",
                "backend": { "service": { "name": spec.key.component, "port": { "number": port } } },
            })
        })
        .collect();
    let mut rule = json!({ "http": { "paths": paths } });
    if let Some(host) = host {
        rule["host"] = host.into();
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(&format!("{}-{suffix}", spec.key.component), &ns, component_labels(&spec.key)),
        "spec": { "ingressClassName": class, "rules": [rule] },
    })
}

fn render_routes(spec: &WorkloadSpec, opts: &RenderOptions) -> Vec<Value> {
    let mut out = Vec::new();
    let public = endpoints_with(spec, Visibility::Public);
    let org = endpoints_with(spec, Visibility::Organization);
    let web_app = match (&spec.kind, spec.port) {
        (WorkloadKind::WebApp, Some(port)) => Some(port),
        _ => None,
    };
    let prefixes = |eps: &[&EndpointSpec]| -> Vec<(String, u16)> {
        eps.iter()
            .filter(|e| e.http)
            .map(|e| (route_prefix(&spec.key, &e.context), e.port))
            .collect()
    };
    match &opts.routing {
        Routing::GatewayApi => {
            if let Some(port) = web_app {
                let rule = json!({
                    "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                    "backendRefs": backend(spec, port),
                });
                let host = web_app_host(&spec.key, &opts.web_app_domain);
                out.push(http_route(
                    spec,
                    "web",
                    &opts.external_gateway,
                    Some(vec![host]),
                    vec![rule],
                ));
            }
            let rules = path_rules(spec, &public);
            if !rules.is_empty() {
                out.push(http_route(
                    spec,
                    "public",
                    &opts.external_gateway,
                    None,
                    rules,
                ));
            }
            let rules = path_rules(spec, &org);
            if !rules.is_empty() {
                out.push(http_route(
                    spec,
                    "organization",
                    &opts.internal_gateway,
                    None,
                    rules,
                ));
            }
        }
        Routing::Ingress {
            external_class,
            internal_class,
        } => {
            if let Some(port) = web_app {
                let host = web_app_host(&spec.key, &opts.web_app_domain);
                out.push(ingress(
                    spec,
                    "web",
                    external_class,
                    Some(host),
                    vec![("/".into(), port)],
                ));
            }
            let paths = prefixes(&public);
            if !paths.is_empty() {
                out.push(ingress(spec, "public", external_class, None, paths));
            }
            let paths = prefixes(&org);
            if !paths.is_empty() {
                out.push(ingress(spec, "organization", internal_class, None, paths));
            }
        }
    }
    out
}

fn render_service(spec: &WorkloadSpec) -> Option<Value> {
    let ports = ports(spec);
    if ports.is_empty() {
        return None;
    }
    let ns = namespace_name(&spec.key);
    let ports: Vec<Value> = ports
        .into_iter()
        .map(|p| json!({ "name": port_name(p), "port": p, "targetPort": p, "protocol": "TCP" }))
        .collect();
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&spec.key.component, &ns, component_labels(&spec.key)),
        "spec": { "type": "ClusterIP", "selector": pod_selector(&spec.key), "ports": ports },
    }))
}

fn render_deployment(spec: &WorkloadSpec, pod: Value) -> Value {
    let ns = namespace_name(&spec.key);
    let mut labels = component_labels(&spec.key);
    labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(&spec.key.component, &ns, labels),
        "spec": {
            "selector": { "matchLabels": pod_selector(&spec.key) },
            // Zero downtime: a new pod must be ready before an old one goes.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxUnavailable": 0, "maxSurge": 1 },
            },
            "progressDeadlineSeconds": spec.ready_timeout.as_secs().max(1),
            "revisionHistoryLimit": 3,
            "template": pod_template(spec, pod),
        },
    });
    // With an autoscaler the replica count is its field: applying one would fight it.
    if spec.scaling.is_none() {
        d["spec"]["replicas"] = spec.replicas.into();
    }
    d
}

fn render_hpa(spec: &WorkloadSpec) -> Option<Value> {
    let s = spec.scaling?;
    let ns = namespace_name(&spec.key);
    let mut metrics = Vec::new();
    for (resource, target) in [("cpu", s.cpu_utilization), ("memory", s.memory_utilization)] {
        if let Some(t) = target {
            metrics.push(json!({
                "type": "Resource",
                "resource": { "name": resource, "target": { "type": "Utilization", "averageUtilization": t } },
            }));
        }
    }
    let mut hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(&spec.key.component, &ns, component_labels(&spec.key)),
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": spec.key.component },
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
        },
    });
    if !metrics.is_empty() {
        hpa["spec"]["metrics"] = json!(metrics);
    }
    Some(hpa)
}

fn job_spec(spec: &WorkloadSpec, pod: Value, active_deadline: Option<u64>) -> Value {
    let mut pod = pod;
    pod["restartPolicy"] = "Never".into();
    let mut job = json!({
        // A task runs once: a failure is recorded, not retried.
        "backoffLimit": 0,
        "template": pod_template(spec, pod),
    });
    if let Some(secs) = active_deadline {
        job["activeDeadlineSeconds"] = secs.max(1).into();
    }
    job
}

fn render_cronjob(spec: &WorkloadSpec, pod: Value) -> Option<Value> {
    let WorkloadKind::ScheduledTask(Some(s)) = &spec.kind else {
        return None;
    };
    let ns = namespace_name(&spec.key);
    let mut labels = component_labels(&spec.key);
    labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    let active = s
        .active_deadline_seconds
        .and_then(|s| u64::try_from(s).ok());
    let mut job_labels = component_labels(&spec.key);
    job_labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    let mut c = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(&spec.key.component, &ns, labels),
        "spec": {
            "schedule": s.expr,
            "timeZone": s.zone,
            "concurrencyPolicy": match s.concurrency {
                ConcurrencyPolicy::Forbid => "Forbid",
                ConcurrencyPolicy::Replace => "Replace",
                _ => "Allow",
            },
            "suspend": s.suspended,
            "successfulJobsHistoryLimit": s.successful_history_limit.max(0),
            "failedJobsHistoryLimit": s.failed_history_limit.max(0),
            "jobTemplate": {
                "metadata": { "labels": job_labels },
                "spec": job_spec(spec, pod, active),
            },
        },
    });
    if let Some(d) = s.starting_deadline_seconds {
        c["spec"]["startingDeadlineSeconds"] = d.into();
    }
    Some(c)
}

/// The objects of one workload (not the namespace's): configs, then the workload, then how it
/// is reached. Manual tasks have none until a run ([`render_job`]).
pub fn render_workload(spec: &WorkloadSpec, opts: &RenderOptions) -> Result<Vec<Value>> {
    check(spec)?;
    let mut out = Vec::new();
    if let Some(auth) = &spec.auth {
        out.push(render_pull_secret(&spec.key, auth, opts));
    }
    match &spec.kind {
        WorkloadKind::Service | WorkloadKind::WebApp => {
            let c = configs(spec, opts);
            out.extend(render_configs(spec, &c, opts));
            out.push(render_deployment(spec, pod_spec(spec, &c, &[], opts)));
            out.extend(render_service(spec));
            out.extend(render_hpa(spec));
            out.extend(render_network_policies(spec, opts));
            out.extend(render_routes(spec, opts));
        }
        WorkloadKind::ScheduledTask(Some(_)) => {
            let c = configs(spec, opts);
            out.extend(render_configs(spec, &c, opts));
            out.extend(render_cronjob(spec, pod_spec(spec, &c, &[], opts)));
        }
        WorkloadKind::ScheduledTask(None) | WorkloadKind::ManualTask => {
            out.clear();
        }
    }
    Ok(out)
}

/// The objects of one task run: its configs and a Job with the run's arguments appended.
pub fn render_job(task: &TaskSpec, opts: &RenderOptions) -> Result<Vec<Value>> {
    let spec = &task.workload;
    check(spec)?;
    let mut out = Vec::new();
    if let Some(auth) = &spec.auth {
        out.push(render_pull_secret(&spec.key, auth, opts));
    }
    let c = configs(spec, opts);
    out.extend(render_configs(spec, &c, opts));
    let ns = namespace_name(&spec.key);
    let mut labels = component_labels(&spec.key);
    labels.insert(RELEASE_LABEL.into(), spec.release.clone().into());
    labels.insert(EXECUTION_LABEL.into(), task.execution.clone().into());
    let pod = pod_spec(spec, &c, &task.extra_args, opts);
    let mut job = job_spec(spec, pod, task.active_deadline.map(|d| d.as_secs()));
    job["template"]["metadata"]["labels"][EXECUTION_LABEL] = task.execution.clone().into();
    // Finished Jobs go away by themselves once berth has read the outcome and the logs.
    job["ttlSecondsAfterFinished"] = 3600.into();
    out.push(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&job_name(&spec.key, &task.execution), &ns, labels),
        "spec": job,
    }));
    Ok(out)
}

/// Everything of the environments of `specs`: each namespace once, then each workload's
/// objects (a registry's pull Secret once per namespace).
pub fn render_all(specs: &[WorkloadSpec], opts: &RenderOptions) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let ns = namespace_name(&spec.key);
        if seen.insert(ns) {
            out.extend(render_namespace(&spec.key));
        }
        for object in render_workload(spec, opts)? {
            let id = object_id(&object);
            if out.iter().any(|o| object_id(o) == id) {
                continue;
            }
            out.push(object);
        }
    }
    Ok(out)
}

/// (apiVersion, kind, namespace, name) of a rendered object.
pub fn object_id(v: &Value) -> (String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&v["apiVersion"]),
        s(&v["kind"]),
        s(&v["metadata"]["namespace"]),
        s(&v["metadata"]["name"]),
    )
}

/// YAML documents separated by `---`.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests;
