//! The Kubernetes driver: applies [`super::render`]'s manifests with server-side apply (field
//! manager `berth`, forced: berth owns what it renders), prunes berth-labelled objects it no
//! longer renders, and reads rollout status from the Deployment's conditions and its pods
//! (container states, then Warning events), logs from `pods/log`.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use serde_json::Value;
use tracing::{debug, info, instrument, warn};

use super::render::{self, RenderOptions};
use crate::{
    BoxLogStream, DataPlane, EngineInfo, Error, Instance, InstanceState, LogLine, LogStream,
    LogsOptions, Result, RolloutEvent, RouteSwitch, TaskOutcome, TaskSpec, WorkloadKey,
    WorkloadSpec,
};

/// How often a rollout or a task run looks at the cluster.
const POLL: Duration = Duration::from_millis(500);

/// Namespaced kinds berth renders per component, pruned when it no longer renders them. The
/// routing CRD may be missing from a cluster; listing it then fails and is skipped.
const PRUNED: [(&str, &str, &str); 10] = [
    ("apps/v1", "Deployment", "deployments"),
    ("v1", "Service", "services"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("batch/v1", "Job", "jobs"),
];

/// Container states that will not fix themselves: the rollout fails at once.
const PULL_FAILURES: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];
const START_FAILURES: [&str; 3] = [
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "RunContainerError",
];

fn plural_of(api_version: &str, kind: &str) -> Option<&'static str> {
    if kind == "Namespace" && api_version == "v1" {
        return Some("namespaces");
    }
    PRUNED
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, p)| *p)
}

fn api_resource(api_version: &str, kind: &str) -> Result<ApiResource> {
    let plural = plural_of(api_version, kind)
        .ok_or_else(|| Error::Invalid(format!("berth does not apply {api_version} {kind}")))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Connection trouble is transient (the reconciler retries); refusals are the API's words.
fn kube_error(context: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) => Error::Engine(format!(
            "{context}: {} ({}, HTTP {})",
            s.message, s.reason, s.code
        )),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unavailable {
            endpoint: "kubernetes".into(),
            reason: format!("{context}: {e}"),
        },
        other => Error::Engine(format!("{context}: {other}")),
    }
}

/// The Kubernetes data plane. Cheap to clone.
#[derive(Clone)]
pub struct Kubernetes {
    client: kube::Client,
    endpoint: String,
    /// Shared by the clones: one rollout at a time per workload.
    rollouts: std::sync::Arc<crate::RolloutLocks>,
    options: RenderOptions,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Kubernetes {
    /// Connects with the kubeconfig of `KUBECONFIG` (or `~/.kube/config`), else the in-cluster
    /// service account. Nothing is sent until the first call.
    pub async fn connect(options: RenderOptions) -> Result<Self> {
        let config = kube::Config::infer().await.map_err(|e| {
            Error::KubeConfig(format!(
                "none found (KUBECONFIG, ~/.kube/config, in-cluster service account): {e}"
            ))
        })?;
        Self::from_config(config, options)
    }

    /// Connects with the current context of a kubeconfig given as text.
    pub async fn from_kubeconfig(yaml: &str, options: RenderOptions) -> Result<Self> {
        let invalid = |e: String| Error::KubeConfig(format!("kubeconfig: {e}"));
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| invalid(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| invalid(e.to_string()))?;
        Self::from_config(config, options)
    }

    pub fn from_config(config: kube::Config, options: RenderOptions) -> Result<Self> {
        let endpoint = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| Error::Unavailable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            endpoint,
            rollouts: std::sync::Arc::default(),
            options: RenderOptions {
                // What is applied carries the real values; only printed output is redacted.
                reveal_secrets: true,
                ..options
            },
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    fn dynamic(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>> {
        let ar = api_resource(api_version, kind)?;
        Ok(if namespace.is_empty() {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        })
    }

    /// Server-side applies each object (forced: berth is the owner of what it renders).
    pub async fn apply(&self, objects: &[Value]) -> Result<()> {
        let params = PatchParams::apply(render::FIELD_MANAGER).force();
        for object in objects {
            let (api_version, kind, namespace, name) = render::object_id(object);
            let api = self.dynamic(&api_version, &kind, &namespace)?;
            api.patch(&name, &params, &Patch::Apply(object))
                .await
                .map_err(|e| kube_error(&format!("applying {kind} {namespace}/{name}"), e))?;
            debug!(%kind, %namespace, %name, "applied");
        }
        Ok(())
    }

    /// Deletes the objects of `component` in `namespace` that `keep` does not name (all of
    /// them when `keep` is empty). Jobs of task runs are left to their TTL.
    async fn prune(&self, namespace: &str, component: &str, keep: &[Value]) -> Result<()> {
        let keep: HashSet<_> = keep.iter().map(render::object_id).collect();
        let selector = format!(
            "{}=true,{}={component}",
            render::MANAGED_LABEL,
            render::COMPONENT_LABEL
        );
        for (api_version, kind, _) in PRUNED {
            if kind == "Job" && !keep.is_empty() {
                continue;
            }
            let api = self.dynamic(api_version, kind, namespace)?;
            let list = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => l,
                // The kind is not served here (no Gateway API CRDs): nothing of it to prune.
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(kube_error(&format!("listing {kind}s"), e)),
            };
            for object in list.items {
                let name = object.metadata.name.clone().unwrap_or_default();
                let id = (
                    api_version.to_owned(),
                    kind.to_owned(),
                    namespace.to_owned(),
                    name.clone(),
                );
                if keep.contains(&id) {
                    continue;
                }
                info!(%kind, %namespace, %name, "pruning an object berth no longer wants");
                self.delete(&api, kind, &name).await?;
            }
        }
        Ok(())
    }

    async fn delete<K>(&self, api: &Api<K>, kind: &str, name: &str) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(kube_error(&format!("deleting {kind} {name}"), e)),
        }
    }

    /// Deletes the namespace's pull Secrets no Deployment or CronJob refers to any more.
    async fn prune_pull_secrets(&self, namespace: &str) -> Result<()> {
        let mut used = HashSet::new();
        for (api_version, kind) in [("apps/v1", "Deployment"), ("batch/v1", "CronJob")] {
            let api = self.dynamic(api_version, kind, namespace)?;
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| kube_error(&format!("listing {kind}s"), e))?;
            for o in list.items {
                let pod = if kind == "CronJob" {
                    &o.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                } else {
                    &o.data["spec"]["template"]["spec"]
                };
                for s in pod["imagePullSecrets"].as_array().into_iter().flatten() {
                    if let Some(n) = s["name"].as_str() {
                        used.insert(n.to_owned());
                    }
                }
            }
        }
        let api = self.dynamic("v1", "Secret", namespace)?;
        let list = api
            .list(&ListParams::default().labels(&format!("{}=true", render::PULL_SECRET_LABEL)))
            .await
            .map_err(|e| kube_error("listing pull Secrets", e))?;
        for s in list.items {
            let name = s.metadata.name.unwrap_or_default();
            if !used.contains(&name) {
                info!(%namespace, %name, "pruning an unused pull Secret");
                self.delete(&api, "Secret", &name).await?;
            }
        }
        Ok(())
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn pods_of(&self, key: &WorkloadKey, extra: &str) -> Result<Vec<Pod>> {
        let selector = format!(
            "{}=true,{}={}{extra}",
            render::MANAGED_LABEL,
            render::COMPONENT_LABEL,
            key.component
        );
        let list = self
            .pods(&render::namespace_name(key))
            .list(&ListParams::default().labels(&selector))
            .await;
        match list {
            Ok(l) => Ok(l.items),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(kube_error("listing pods", e)),
        }
    }

    /// Why the pods of `release` do not get ready: container states first, then the newest
    /// Warning events, then the last log lines of a crashing container.
    async fn diagnose(&self, key: &WorkloadKey, release: &str) -> String {
        let ns = render::namespace_name(key);
        let pods = self
            .pods_of(key, &format!(",{}={release}", render::RELEASE_LABEL))
            .await
            .unwrap_or_default();
        let mut reasons = Vec::new();
        for pod in &pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            for (reason, message) in waiting_reasons(pod) {
                reasons.push(format!("{name}: {reason}: {message}"));
            }
            let events: Api<Event> = Api::namespaced(self.client.clone(), &ns);
            let fields = format!("involvedObject.name={name},type=Warning");
            if let Ok(list) = events.list(&ListParams::default().fields(&fields)).await {
                let mut items = list.items;
                items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
                for e in items.iter().rev().take(3) {
                    reasons.push(format!(
                        "{name}: {}: {}",
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default()
                    ));
                }
            }
            if restarted(pod) {
                let params = LogParams {
                    previous: true,
                    tail_lines: Some(20),
                    ..LogParams::default()
                };
                if let Ok(logs) = self.pods(&ns).logs(&name, &params).await {
                    reasons.push(format!("{name}: last log lines:\n{}", logs.trim_end()));
                }
            }
        }
        if reasons.is_empty() {
            "no pod of the new release got ready (no reason reported)".into()
        } else {
            reasons.join("\n")
        }
    }

    /// Waits until the Deployment runs `spec.release` on all its replicas, all ready, and no
    /// old pod is left. Fails fast when a container cannot be pulled or keeps crashing.
    async fn wait_rolled_out(
        &self,
        spec: &WorkloadSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<Vec<Instance>> {
        let ns = render::namespace_name(&spec.key);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let deadline = tokio::time::Instant::now() + spec.ready_timeout;
        let mut pulled = false;
        let mut ready_seen = HashSet::new();
        loop {
            let d = deployments
                .get(&spec.key.component)
                .await
                .map_err(|e| kube_error("reading the Deployment", e))?;
            let release_pods = self
                .pods_of(
                    &spec.key,
                    &format!(",{}={}", render::RELEASE_LABEL, spec.release),
                )
                .await?;
            for pod in &release_pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let statuses = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.clone())
                    .unwrap_or_default();
                if !pulled && statuses.iter().any(|c| !c.image_id.is_empty()) {
                    pulled = true;
                    let _ = events.send(RolloutEvent::Pulled {
                        image: spec.image.clone(),
                    });
                }
                if pod_ready(pod) && ready_seen.insert(name.clone()) {
                    let _ = events.send(RolloutEvent::Ready {
                        instance: name.clone(),
                    });
                }
                for (reason, message) in waiting_reasons(pod) {
                    if PULL_FAILURES.contains(&reason.as_str()) {
                        return Err(Error::Pull {
                            image: spec.image.clone(),
                            reason: format!("{reason}: {message}"),
                        });
                    }
                    if START_FAILURES.contains(&reason.as_str()) {
                        let why = self.diagnose(&spec.key, &spec.release).await;
                        return Err(Error::NotReady(format!(
                            "{} does not start: {why}",
                            spec.key
                        )));
                    }
                }
            }
            match rollout_state(&d) {
                RolloutState::Done => {
                    let instances = self.instances(&spec.key).await?;
                    let _ = events.send(RolloutEvent::Switched {
                        backends: instances
                            .iter()
                            .filter(|i| i.release == spec.release)
                            .count(),
                    });
                    return Ok(instances);
                }
                RolloutState::Failed(reason) => {
                    let why = self.diagnose(&spec.key, &spec.release).await;
                    return Err(Error::NotReady(format!("{reason}; {why}")));
                }
                RolloutState::Progressing => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let why = self.diagnose(&spec.key, &spec.release).await;
                return Err(Error::NotReady(format!(
                    "not ready within {:?}: {why}",
                    spec.ready_timeout
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Puts back the Deployment as it was before a failed rollout (or removes it when there
    /// was none), so the old pods keep serving and no new pod keeps crashing.
    async fn roll_back(&self, spec: &WorkloadSpec, previous: Option<Deployment>) -> Result<()> {
        let ns = render::namespace_name(&spec.key);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        match previous {
            Some(prev) => {
                let body = serde_json::json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {
                        "name": spec.key.component,
                        "namespace": ns,
                        "labels": prev.metadata.labels,
                    },
                    "spec": prev.spec,
                });
                self.apply(&[body]).await
            }
            None => self.delete(&api, "Deployment", &spec.key.component).await,
        }
    }

    /// The workloads berth runs in the cluster: one key per Deployment or CronJob carrying
    /// berth's labels, in any namespace (for the reconciler's sweep of what the store no
    /// longer wants).
    pub async fn managed_keys(&self) -> Result<Vec<WorkloadKey>> {
        let mut keys = std::collections::BTreeSet::new();
        for (api_version, kind) in [("apps/v1", "Deployment"), ("batch/v1", "CronJob")] {
            let api = self.dynamic(api_version, kind, "")?;
            let list = api
                .list(&ListParams::default().labels(&format!("{}=true", render::MANAGED_LABEL)))
                .await
                .map_err(|e| kube_error(&format!("listing {kind}s"), e))?;
            for o in list.items {
                let Some(labels) = o.metadata.labels else {
                    continue;
                };
                let get = |k: &str| labels.get(k).cloned();
                if let (Some(org), Some(project), Some(component), Some(env)) = (
                    get(render::ORG_LABEL),
                    get(render::PROJECT_LABEL),
                    get(render::COMPONENT_LABEL),
                    get(render::ENV_LABEL),
                ) {
                    keys.insert(WorkloadKey {
                        org,
                        project,
                        component,
                        env,
                    });
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Deletes every object of `key`'s component and the pull Secrets nothing uses any more.
    async fn remove_objects(&self, key: &WorkloadKey) -> Result<()> {
        let ns = render::namespace_name(key);
        self.prune(&ns, &key.component, &[]).await?;
        self.prune_pull_secrets(&ns).await
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn restarted(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.restart_count > 0))
}

fn waiting_reasons(pod: &Pod) -> Vec<(String, String)> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.state?.waiting)
        .filter_map(|w| Some((w.reason?, w.message.unwrap_or_default())))
        .collect()
}

enum RolloutState {
    Progressing,
    Done,
    Failed(String),
}

/// `kubectl rollout status`'s rules, from the Deployment's status and conditions.
fn rollout_state(d: &Deployment) -> RolloutState {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = &d.status else {
        return RolloutState::Progressing;
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return RolloutState::Progressing;
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return RolloutState::Failed(format!(
            "the rollout exceeded its progress deadline: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated >= desired && total <= updated && available >= updated {
        RolloutState::Done
    } else {
        RolloutState::Progressing
    }
}

fn instance_of(pod: &Pod) -> Option<Instance> {
    let labels = pod.metadata.labels.as_ref()?;
    let namespace = pod.metadata.namespace.clone()?;
    let name = pod.metadata.name.clone()?;
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let state = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => InstanceState::Created,
        Some("Running") => InstanceState::Running,
        Some("Succeeded" | "Failed") => InstanceState::Exited,
        _ => InstanceState::Other,
    };
    Some(Instance {
        id: format!("{namespace}/{name}"),
        name,
        key: WorkloadKey {
            org: get(render::ORG_LABEL),
            project: get(render::PROJECT_LABEL),
            component: get(render::COMPONENT_LABEL),
            env: get(render::ENV_LABEL),
        },
        release: get(render::RELEASE_LABEL),
        state,
        // Pods are reached through their Service and the cluster's Gateway, not by berth.
        address: None,
    })
}

fn split_id(id: &str) -> Result<(&str, &str)> {
    id.split_once('/')
        .ok_or_else(|| Error::Invalid(format!("{id:?} is no pod id (namespace/name)")))
}

/// Deletes a task's Job when its run is abandoned (the server cancelled it).
struct JobGuard {
    api: Api<Job>,
    name: String,
    armed: bool,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if self.armed {
            let api = self.api.clone();
            let name = self.name.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let dp = DeleteParams {
                        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
                        ..DeleteParams::default()
                    };
                    if let Err(e) = api.delete(&name, &dp).await {
                        warn!(job = %name, error = %e, "deleting a cancelled task's Job failed");
                    }
                });
            }
        }
    }
}

impl Kubernetes {
    /// The reconciler's apply of the release it read as serving, under the workload's rollout
    /// lock: nothing (`None`) when `superseded()`, asked once the lock is held, says a deploy
    /// started since the caller read `spec` — its runner rolls the workload out, and applying
    /// `spec` after it would put the older release back.
    pub async fn keep_serving(
        &self,
        spec: &WorkloadSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
        superseded: impl Fn() -> bool + Send,
    ) -> Option<Result<Vec<Instance>>> {
        self.rollouts
            .unless_superseded(&spec.key, superseded, self.rollout_locked(spec, events))
            .await
    }

    /// The reconciler's removal of a workload the store does not want, under its rollout lock:
    /// nothing (`None`) when `superseded()` says a deploy of it started since the store was read.
    pub async fn remove_unless_superseded(
        &self,
        key: &WorkloadKey,
        superseded: impl Fn() -> bool + Send,
    ) -> Option<Result<()>> {
        self.rollouts
            .unless_superseded(key, superseded, self.remove_objects(key))
            .await
    }

    /// [`DataPlane::rollout`]'s work, with the workload's rollout lock held.
    async fn rollout_locked(
        &self,
        spec: &WorkloadSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<Vec<Instance>> {
        let objects = render::render_workload(spec, &self.options)?;
        let ns = render::namespace_name(&spec.key);
        self.ensure_network(&spec.key).await?;
        let has_deployment = objects.iter().any(|o| o["kind"] == "Deployment");
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let previous = if has_deployment {
            match deployments.get(&spec.key.component).await {
                Ok(d) => Some(d),
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(kube_error("reading the Deployment", e)),
            }
        } else {
            None
        };
        let unchanged = previous.as_ref().is_some_and(|d| {
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(render::RELEASE_LABEL))
                == Some(&spec.release)
        });
        if !unchanged {
            let _ = events.send(RolloutEvent::Pulling {
                image: spec.image.clone(),
            });
        }
        self.apply(&objects).await?;
        if !has_deployment {
            // A scheduled task: the CronJob is the whole rollout.
            self.prune(&ns, &spec.key.component, &objects).await?;
            self.prune_pull_secrets(&ns).await?;
            return Ok(Vec::new());
        }
        let _ = events.send(RolloutEvent::Starting {
            instance: format!("deployment/{}", spec.key.component),
        });
        match self.wait_rolled_out(spec, events).await {
            Ok(instances) => {
                self.prune(&ns, &spec.key.component, &objects).await?;
                self.prune_pull_secrets(&ns).await?;
                Ok(instances)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                // Pull and start failures fail the release: put the old one back.
                let reason = e.to_string();
                if let Err(rb) = self.roll_back(spec, previous).await {
                    warn!(error = %rb, "rolling back failed");
                }
                let _ = events.send(RolloutEvent::RolledBack {
                    reason: reason.clone(),
                });
                Err(match e {
                    Error::Pull { .. } => e,
                    _ => Error::NotReady(reason),
                })
            }
        }
    }
}

impl DataPlane for Kubernetes {
    async fn ping(&self) -> Result<EngineInfo> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| kube_error("reading the API server version", e))?;
        Ok(EngineInfo {
            endpoint: self.endpoint.clone(),
            product: "Kubernetes".into(),
            version: info.git_version,
            api_version: format!("{}.{}", info.major, info.minor),
        })
    }

    #[instrument(skip_all, fields(%key))]
    async fn ensure_network(&self, key: &WorkloadKey) -> Result<()> {
        self.apply(&render::render_namespace(key)).await
    }

    #[instrument(skip_all, fields(key = %spec.key, release = %spec.release))]
    async fn rollout(
        &self,
        spec: &WorkloadSpec,
        _routes: &dyn RouteSwitch,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<Vec<Instance>> {
        self.rollouts
            .run(&spec.key, self.rollout_locked(spec, events))
            .await
    }
    async fn instances(&self, key: &WorkloadKey) -> Result<Vec<Instance>> {
        Ok(self
            .pods_of(key, "")
            .await?
            .iter()
            .filter_map(instance_of)
            .collect())
    }

    async fn list_managed(&self) -> Result<Vec<Instance>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let list = pods
            .list(&ListParams::default().labels(&format!("{}=true", render::MANAGED_LABEL)))
            .await
            .map_err(|e| kube_error("listing pods", e))?;
        Ok(list.items.iter().filter_map(instance_of).collect())
    }

    async fn remove_instance(&self, id: &str, grace: Duration) -> Result<()> {
        let (ns, name) = split_id(id)?;
        let dp = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
            ..DeleteParams::default()
        };
        match self.pods(ns).delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(kube_error(&format!("deleting pod {id}"), e)),
        }
    }

    #[instrument(skip_all, fields(%key))]
    async fn remove_workload(&self, key: &WorkloadKey) -> Result<()> {
        self.remove_objects(key).await
    }

    async fn logs(&self, instance_id: &str, options: &LogsOptions) -> Result<BoxLogStream> {
        let (ns, name) = split_id(instance_id)?;
        let since = options.since.map(|s| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(s);
            (now - s).max(1)
        });
        let params = LogParams {
            follow: options.follow,
            tail_lines: options.tail.and_then(|t| i64::try_from(t).ok()),
            since_seconds: since,
            ..LogParams::default()
        };
        let reader = self
            .pods(ns)
            .log_stream(name, &params)
            .await
            .map_err(|e| kube_error(&format!("reading the logs of {instance_id}"), e))?;
        // Kubernetes merges stdout and stderr into one log.
        let lines = reader.lines().map(|l| {
            l.map(|text| LogLine {
                stream: LogStream::Stdout,
                text,
            })
            .map_err(|e| Error::Engine(format!("reading logs: {e}")))
        });
        Ok(Box::pin(lines))
    }

    #[instrument(skip_all, fields(key = %task.workload.key, execution = %task.execution))]
    async fn run_task(
        &self,
        task: &TaskSpec,
        events: &tokio::sync::mpsc::UnboundedSender<RolloutEvent>,
    ) -> Result<TaskOutcome> {
        let spec = &task.workload;
        let objects = render::render_job(task, &self.options)?;
        let ns = render::namespace_name(&spec.key);
        let name = render::job_name(&spec.key, &task.execution);
        self.ensure_network(&spec.key).await?;
        let _ = events.send(RolloutEvent::Pulling {
            image: spec.image.clone(),
        });
        self.apply(&objects).await?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        let mut guard = JobGuard {
            api: jobs.clone(),
            name: name.clone(),
            armed: true,
        };
        let selector = format!(",{}={}", render::EXECUTION_LABEL, task.execution);
        let (timed_out, pod) = loop {
            let job = jobs
                .get(&name)
                .await
                .map_err(|e| kube_error("reading the Job", e))?;
            let conditions = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let finished = conditions
                .iter()
                .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
            let pods = self.pods_of(&spec.key, &selector).await?;
            for pod in &pods {
                for (reason, message) in waiting_reasons(pod) {
                    if PULL_FAILURES.contains(&reason.as_str()) {
                        return Err(Error::Pull {
                            image: spec.image.clone(),
                            reason: format!("{reason}: {message}"),
                        });
                    }
                }
            }
            if let Some(c) = finished {
                let timed_out = c.reason.as_deref() == Some("DeadlineExceeded");
                break (timed_out, pods.into_iter().next());
            }
            tokio::time::sleep(POLL).await;
        };
        guard.armed = false;
        let exit_code = pod
            .as_ref()
            .and_then(|p| p.status.as_ref()?.container_statuses.clone())
            .and_then(|c| c.into_iter().next()?.state?.terminated)
            .map(|t| i64::from(t.exit_code))
            .unwrap_or(if timed_out { 137 } else { -1 });
        let mut logs = String::new();
        if let Some(pod) = pod.as_ref().and_then(|p| p.metadata.name.clone()) {
            let params = LogParams {
                limit_bytes: i64::try_from(task.log_limit.saturating_mul(2)).ok(),
                ..LogParams::default()
            };
            if let Ok(text) = self.pods(&ns).logs(&pod, &params).await {
                logs = keep_tail(&text, task.log_limit);
            }
        }
        Ok(TaskOutcome {
            exit_code,
            timed_out,
            logs,
        })
    }
}

/// The last `limit` bytes of `s`, starting at a character boundary.
fn keep_tail(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    let mut start = s.len() - limit;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_cover_every_rendered_kind() {
        for (v, k) in [
            ("v1", "Namespace"),
            ("apps/v1", "Deployment"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("batch/v1", "CronJob"),
        ] {
            assert!(api_resource(v, k).is_ok(), "{k}");
        }
        let ar = api_resource("gateway.networking.k8s.io/v1", "HTTPRoute").unwrap();
        assert_eq!(ar.group, "gateway.networking.k8s.io");
        assert_eq!(ar.plural, "httproutes");
        assert!(api_resource("v1", "Pod").is_err());
    }

    #[test]
    fn rollout_state_follows_kubectl() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": { "generation": 2 },
            "spec": { "replicas": 2, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2 }
        }))
        .unwrap();
        assert!(
            matches!(rollout_state(&d), RolloutState::Progressing),
            "an old pod is left"
        );
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": { "generation": 2 },
            "spec": { "replicas": 2, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }
        }))
        .unwrap();
        assert!(matches!(rollout_state(&d), RolloutState::Done));
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": { "generation": 3 },
            "spec": { "replicas": 2, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }
        }))
        .unwrap();
        assert!(
            matches!(rollout_state(&d), RolloutState::Progressing),
            "not observed yet"
        );
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": { "generation": 2 },
            "spec": { "replicas": 1, "selector": {}, "template": {} },
            "status": { "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
                "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow" }] }
        }))
        .unwrap();
        assert!(matches!(rollout_state(&d), RolloutState::Failed(m) if m.contains("too slow")));
    }
}
