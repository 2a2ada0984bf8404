//! The deploy pipeline and the reconciler.
//!
//! The store is the desired state. A deployment is created `pending` by the API; one runner per
//! workload (component × environment) takes the newest unfinished deployment of its workload
//! (older queued ones are superseded), rolls it out on the data plane and records the outcome.
//! At start and then periodically the reconciler converges the engine to the store: it resumes
//! unfinished deployments, re-creates missing instances of serving releases (which also rebuilds
//! the gateway's routes) and removes labelled containers the store does not want.
//!
//! All of that runs on the leader only ([`crate::leader`]). With several servers on one
//! PostgreSQL database a deployment created through a follower is found by the leader's poll of
//! unfinished deployments ([`PENDING_POLL`]), and followers route their gateways from the store
//! and what runs ([`follow`]) without changing anything.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use berth_core::api::{ComponentType, DeploymentStatus, RegistryAuthType};
use berth_core::endpoints::Visibility;
use berth_dataplane::{
    DataPlane, EndpointSpec, FileMount, Plane, PullAuth, PullPolicy, RolloutEvent, TaskSchedule,
    WorkloadKey, WorkloadKind, WorkloadSpec,
};
use berth_store::{ComponentRef, DeploymentWork};
use futures_util::StreamExt;
use tracing::{debug, error, info, instrument, warn};

use crate::AppState;

/// How often the reconciler runs when nothing else triggers it. It is also the liveness
/// period: each pass probes the serving instances and replaces the dead or failing ones.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How many serving workloads one reconciler pass checks at once. Each check is a few engine
/// calls (a listing of the workload, a container inspect) and the readiness probe, tens of
/// milliseconds each on Podman with hundreds of containers: one after the other they add up
/// to many seconds per pass.
const RECONCILE_PARALLEL: usize = 8;
/// How often the leader of a shared (PostgreSQL) database looks for deployments created
/// through the other servers. A single server starts its runners directly instead.
const PENDING_POLL: Duration = Duration::from_secs(1);
/// How often a follower refreshes its gateway's routes from the store and the engine.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

pub fn key_of(work: &DeploymentWork) -> WorkloadKey {
    let d = &work.deployment;
    WorkloadKey {
        org: d.org.clone(),
        project: d.project.clone(),
        component: d.component.clone(),
        env: d.environment.clone(),
    }
}

/// Starts the runner of `key` unless one is active. On a follower it does nothing: the
/// leader finds the deployment within [`PENDING_POLL`].
pub fn kick(state: &AppState, key: WorkloadKey) {
    if !state.leadership().is_leader() {
        return;
    }
    if state.runners().insert(key.clone()) {
        let s = state.clone();
        let k = key.clone();
        if !state
            .leadership()
            .spawn_led(async move { runner(s, k).await })
        {
            state.runners().remove(&key);
        }
    }
}

async fn unfinished_of(state: &AppState, key: &WorkloadKey) -> Vec<DeploymentWork> {
    match state.store().unfinished_deployments().await {
        Ok(all) => all.into_iter().filter(|w| key_of(w) == *key).collect(),
        Err(e) => {
            error!(%key, error = %e, "reading unfinished deployments failed");
            Vec::new()
        }
    }
}

async fn runner(state: AppState, key: WorkloadKey) {
    loop {
        let mut work = unfinished_of(&state, &key).await;
        if work.is_empty() {
            state.runners().remove(&key);
            // A deployment created while we were leaving would wait forever: look once more.
            if unfinished_of(&state, &key).await.is_empty() || !state.runners().insert(key.clone())
            {
                return;
            }
            continue;
        }
        let newest = work.pop().expect("not empty");
        for old in work {
            let reason = format!(
                "replaced by the newer deployment {} before it ran",
                newest.deployment.id
            );
            if let Err(e) = state
                .store()
                .set_deployment_status(
                    &old.deployment.id,
                    DeploymentStatus::Superseded,
                    Some(&reason),
                )
                .await
            {
                error!(deployment = %old.deployment.id, error = %e, "superseding failed");
            }
        }
        run_one(&state, &key, newest).await;
    }
}

/// Builds the data plane's spec for a deployment (credentials decrypted here, never logged).
pub async fn spec_for(state: &AppState, work: &DeploymentWork) -> Result<WorkloadSpec, String> {
    let d = &work.deployment;
    let (_, settings) = state
        .store()
        .registry_settings(&d.org, &work.registry)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("registry {:?} no longer exists", work.registry))?;
    let auth = match (settings.auth_type, settings.username, settings.password) {
        (
            RegistryAuthType::Basic | RegistryAuthType::DockerConfig,
            Some(username),
            Some(password),
        ) => Some(PullAuth {
            username,
            password: password.expose().to_owned(),
            server: settings.host.clone(),
        }),
        _ => None,
    };
    let values = state
        .store()
        .config_values(
            ComponentRef {
                org: &d.org,
                project: &d.project,
                component: &d.component,
            },
            &d.environment,
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut env = Vec::new();
    let mut secret_env = Vec::new();
    let mut files = Vec::new();
    for v in values {
        if v.kind.is_secret() && !v.kind.is_file() {
            secret_env.push(v.name.clone());
        }
        if v.kind.is_file() {
            files.push(FileMount {
                path: v.name,
                content: v.value.into_bytes(),
                secret: v.kind.is_secret(),
            });
        } else {
            env.push((v.name, v.value));
        }
    }
    let config = state.config();
    let kind = match work.component_type {
        ComponentType::WebApp => WorkloadKind::WebApp,
        ComponentType::ManualTask => WorkloadKind::ManualTask,
        ComponentType::ScheduledTask => {
            let schedule = state
                .store()
                .get_schedule(
                    ComponentRef {
                        org: &d.org,
                        project: &d.project,
                        component: &d.component,
                    },
                    &d.environment,
                )
                .await
                .map_err(|e| e.to_string())?;
            WorkloadKind::ScheduledTask(schedule.map(|s| TaskSchedule {
                expr: s.settings.expr,
                zone: s.settings.zone,
                concurrency: s.settings.concurrency,
                starting_deadline_seconds: s.settings.starting_deadline_seconds,
                active_deadline_seconds: s.settings.active_deadline_seconds,
                suspended: s.settings.suspended,
                successful_history_limit: s.settings.successful_history_limit,
                failed_history_limit: s.settings.failed_history_limit,
            }))
        }
        _ => WorkloadKind::Service,
    };
    let is_service = matches!(kind, WorkloadKind::Service | WorkloadKind::WebApp);
    Ok(WorkloadSpec {
        key: key_of(work),
        // The data plane's revision is the deployment: a config change or a forced redeploy of
        // the same release gets new instances, a restart of the same deployment does not.
        release: d.id.clone(),
        image: d.image.clone(),
        auth,
        pull_policy: PullPolicy::IfNotPresent,
        env,
        files,
        command: None,
        args: None,
        port: work.port,
        memory_bytes: None,
        cpu_millis: None,
        replicas: 1,
        // Ready means the service answers HTTP on its port with a 2xx/3xx at `/`: listening
        // alone is not enough (a server that accepts connections but fails every request
        // must not take traffic).
        readiness: work
            .port
            .filter(|_| !work.component_type.is_task())
            .map(|port| berth_dataplane::Probe::http("/", port)),
        liveness: None,
        ready_timeout: config.ready_timeout,
        drain: config.drain,
        endpoints: if is_service {
            endpoint_specs(&work.endpoints, work.port, &kind)
        } else {
            Vec::new()
        },
        kind,
        secret_env,
        scaling: config.kubernetes.scaling.filter(|_| is_service),
    })
}

/// A release's endpoints for the data plane. A service without an endpoints file is routed
/// whole, as the gateway does: one Public endpoint at `/` on its port. Web apps are routed by
/// host name, not by these.
fn endpoint_specs(snapshot: &str, port: Option<u16>, kind: &WorkloadKind) -> Vec<EndpointSpec> {
    let endpoints = crate::api::endpoints::parse_snapshot(snapshot).endpoints;
    if endpoints.is_empty() {
        return match (kind, port) {
            (WorkloadKind::Service, Some(port)) => vec![EndpointSpec {
                name: "default".into(),
                port,
                http: true,
                context: "/".into(),
                visibilities: vec![Visibility::Public],
            }],
            _ => Vec::new(),
        };
    }
    endpoints
        .into_iter()
        .map(|e| EndpointSpec {
            name: e.name,
            port: e.port,
            http: e.kind.is_http(),
            context: e.context,
            visibilities: e.visibilities,
        })
        .collect()
}

#[instrument(skip_all, fields(deployment = %work.deployment.id, %key))]
async fn run_one(state: &AppState, key: &WorkloadKey, work: DeploymentWork) {
    let id = work.deployment.id.clone();
    let store = state.store();
    let set = |status: DeploymentStatus, reason: Option<String>| {
        let id = id.clone();
        async move {
            if let Err(e) = store
                .set_deployment_status(&id, status, reason.as_deref())
                .await
            {
                error!(deployment = %id, error = %e, "recording the deployment status failed");
            }
        }
    };
    if work.component_type.is_task() {
        // On Kubernetes a scheduled task is a CronJob: apply it now (the reconciler re-applies
        // it when the schedule changes).
        if work.component_type == ComponentType::ScheduledTask
            && let Ok(plane) = state.engine()
            && plane.is_kubernetes()
        {
            let applied = match spec_for(state, &work).await {
                Ok(spec) => {
                    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
                    plane
                        .rollout(&spec, state.gateway().as_ref(), &tx)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(reason) => Err(reason),
            };
            if let Err(reason) = applied {
                set(DeploymentStatus::Failed, Some(reason)).await;
                return;
            }
        }
        // Tasks run on demand; the release becomes the one their runs use.
        set(
            DeploymentStatus::Ready,
            Some("task release: runs use this image".into()),
        )
        .await;
        return;
    }
    let spec = match spec_for(state, &work).await {
        Ok(s) => s,
        Err(reason) => {
            set(DeploymentStatus::Failed, Some(reason)).await;
            return;
        }
    };
    route_settings(state, key, &work);
    let mut backoff = Duration::from_secs(2);
    loop {
        let engine = match state.engine() {
            Ok(e) => e,
            Err(reason) => {
                let _ = store
                    .add_deployment_event(&id, &format!("waiting for a container engine: {reason}"))
                    .await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        set(DeploymentStatus::Pulling, None).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RolloutEvent>();
        let events = {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut phase = None;
                let mut starting = false;
                while let Some(event) = rx.recv().await {
                    // Pulled, or straight to starting when the engine had the image already
                    // (a promotion, a Previous Image): no longer "pulling" either way.
                    if !starting
                        && matches!(
                            event,
                            RolloutEvent::Pulled { .. } | RolloutEvent::Starting { .. }
                        )
                    {
                        starting = true;
                        let _ = store
                            .set_deployment_status(&id, DeploymentStatus::Starting, None)
                            .await;
                        phase = None;
                    }
                    if let Some(next) = event.phase()
                        && phase != Some(next)
                    {
                        phase = Some(next);
                        if let Err(e) = store.set_deployment_phase(&id, next).await {
                            warn!(deployment = %id, error = %e, "recording the phase failed");
                        }
                    }
                    if let Err(e) = store.add_deployment_event(&id, &event.to_string()).await {
                        warn!(deployment = %id, error = %e, "recording an event failed");
                    }
                }
            })
        };
        let result = engine.rollout(&spec, state.gateway().as_ref(), &tx).await;
        drop(tx);
        let _ = events.await;
        match result {
            Ok(instances) => {
                info!(instances = instances.len(), "deployment ready");
                refresh_org_subnets(state, engine, &key.org).await;
                set(DeploymentStatus::Ready, None).await;
                return;
            }
            Err(e) if e.is_transient() => {
                let _ = store
                    .add_deployment_event(&id, &format!("{e}; retrying in {backoff:?}"))
                    .await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(berth_dataplane::Error::NotReady(reason)) => {
                let serving = state
                    .store()
                    .serving_deployments()
                    .await
                    .map(|all| all.iter().any(|w| key_of(w) == *key))
                    .unwrap_or(false);
                let status = if serving {
                    DeploymentStatus::RolledBack
                } else {
                    DeploymentStatus::Failed
                };
                set(status, Some(reason)).await;
                return;
            }
            Err(e) => {
                set(DeploymentStatus::Failed, Some(e.to_string())).await;
                return;
            }
        }
    }
}

/// Tells the gateway how to route a workload of `work`'s release (before its switch).
fn route_settings(state: &AppState, key: &WorkloadKey, work: &DeploymentWork) {
    let gateway = state.gateway();
    gateway.set_web_app(key, work.component_type == ComponentType::WebApp);
    gateway.set_public_contexts(key, crate::api::endpoints::public_contexts(&work.endpoints));
    gateway.set_org_contexts(key, crate::api::endpoints::org_contexts(&work.endpoints));
    gateway.set_schemas(
        key,
        crate::api::endpoints::published_schemas(&work.endpoints),
    );
}

/// Tells the internal gateway which subnets the organization's containers come from (the
/// engine's networks; on Kubernetes the cluster's Gateway and NetworkPolicies do this).
async fn refresh_org_subnets(state: &AppState, plane: &Plane, org: &str) {
    let Some(engine) = plane.as_engine() else {
        return;
    };
    match engine.org_subnets(org).await {
        Ok(subnets) => state.gateway().set_org_subnets(org, subnets),
        Err(e) => warn!(%org, error = %e, "reading the organization's networks failed"),
    }
}

/// One pass of the reconciler: remove what the store does not want, bring back what it wants.
/// Returns how many serving workloads it checked.
pub async fn reconcile(state: &AppState) -> usize {
    reconcile_listed(state, None).await
}

/// [`reconcile`] with the engine's listing of managed instances when the caller just made one
/// (listing hundreds of containers takes Podman seconds).
async fn reconcile_listed(
    state: &AppState,
    listed: Option<Vec<berth_dataplane::Instance>>,
) -> usize {
    let Ok(engine) = state.engine() else { return 0 };
    let serving = || async {
        state
            .store()
            .serving_deployments()
            .await
            .inspect_err(|e| error!(error = %e, "reconcile: reading the store failed"))
            .ok()
    };
    #[cfg(feature = "kubernetes")]
    if let Some(k8s) = engine.as_kubernetes() {
        // Taken before what serves is read: a deploy started since then is its runner's.
        let (_, mark) = state.runners().snapshot_marked();
        let Some(serving) = serving().await else {
            return 0;
        };
        reconcile_kubernetes(state, k8s, &serving, mark).await;
        return serving.len();
    }
    if let Some(e) = engine.as_engine()
        && let Err(e) = e.enforce_isolation().await
    {
        warn!(error = %e, "reconcile: projects are not isolated at the IP level");
    }
    // Workloads with a runner are the runner's: those busy before the listing, and (below)
    // those that became busy since.
    let mut busy: HashSet<WorkloadKey> = state.runners().snapshot();
    // Orphans: labelled instances of workloads or releases nobody wants.
    let instances = match listed {
        Some(listed) => listed,
        None => match engine.list_managed().await {
            Ok(instances) => instances,
            Err(e) => {
                warn!(error = %e, "reconcile: listing instances failed");
                return 0;
            }
        },
    };
    // A listing passed in may be older than the runners started since (their new instances
    // are not in it): leave those workloads to them too.
    let (now_busy, mark) = state.runners().snapshot_marked();
    busy.extend(now_busy);
    // What serves is read after the listing and the runners: a runner that ended before the
    // snapshot recorded its outcome first, so `serving` knows its release; one still running
    // is in `busy`. (Read the other way round, a rollout finishing in between left its new,
    // routed instance looking unwanted, and it was removed.)
    let Some(serving) = serving().await else {
        return 0;
    };
    // Task containers of running executions belong to their runners. Read after the listing:
    // an execution is recorded before its container starts, so a container listed above is
    // either in this set or unwanted.
    let executing: HashSet<String> = match state.store().running_executions().await {
        Ok(running) => running
            .iter()
            .map(|r| {
                let x = &r.execution;
                WorkloadKey {
                    org: x.org.clone(),
                    project: x.project.clone(),
                    component: x.component.clone(),
                    env: x.environment.clone(),
                }
                .task_container_name(&x.id)
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "reconcile: reading running executions failed");
            return 0;
        }
    };
    for inst in &instances {
        if busy.contains(&inst.key) || executing.contains(&inst.name) {
            continue;
        }
        let wanted = serving.iter().any(|w| {
            key_of(w) == inst.key && w.deployment.id == inst.release && !w.component_type.is_task()
        });
        if !wanted {
            info!(instance = %inst.name, key = %inst.key, "removing an instance the store does not want");
            if let Err(e) = engine
                .remove_instance(&inst.id, Duration::from_secs(1))
                .await
            {
                warn!(instance = %inst.name, error = %e, "removing failed");
            }
        }
    }
    // Serving releases: make sure they run and are routed (a no-op when they do).
    // Subnets change only when networks do: once per organization and pass, not per workload.
    let orgs: std::collections::BTreeSet<&str> =
        serving.iter().map(|w| w.deployment.org.as_str()).collect();
    for org in orgs {
        refresh_org_subnets(state, engine, org).await;
    }
    // The workloads are independent (a rollout locks only its own workload): check several
    // at once.
    // (A plain loop, not iterator adapters: their closures would make the spawned pass's
    // future not `Send`.)
    let mut checks = Vec::new();
    for work in &serving {
        if !work.component_type.is_task() && !busy.contains(&key_of(work)) {
            checks.push(keep_serving(state, engine, work, &instances, mark));
        }
    }
    futures_util::stream::iter(checks)
        .buffer_unordered(RECONCILE_PARALLEL)
        .count()
        .await
}

/// Makes sure the serving release of one workload runs and is routed: instances that died or
/// failed their probe are replaced (with an event on the deployment). `listed` is the pass's
/// listing of all managed instances; `mark` is the runners' mark taken before `work` was read.
async fn keep_serving(
    state: &AppState,
    engine: &Plane,
    work: &DeploymentWork,
    listed: &[berth_dataplane::Instance],
    mark: u64,
) {
    let key = key_of(work);
    let spec = match spec_for(state, work).await {
        Ok(s) => s,
        Err(reason) => {
            warn!(%key, %reason, "reconcile: cannot build the spec");
            return;
        }
    };
    // A deployment started since the pass read `work`: its runner rolls the workload out (the
    // release read here may no longer be the one to serve, and rolling it out after the
    // runner would switch traffic back to it). Asked again under the workload's lock.
    let superseded = || state.runners().started_since(&key, mark);
    if superseded() {
        return;
    }
    // The gateway settings of `work` (no await since the check: a runner that starts later
    // applies its own settings after these).
    route_settings(state, &key, work);
    let Some(e) = engine.as_engine() else { return };
    let before: HashSet<&str> = listed
        .iter()
        .filter(|i| i.key == key && i.release == work.deployment.id)
        .map(|i| i.id.as_str())
        .collect();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let Some(outcome) = e
        .keep_serving(&spec, state.gateway().as_ref(), listed, &tx, superseded)
        .await
    else {
        return;
    };
    match outcome {
        Ok(after) => {
            // Liveness: instances that died or failed their probe were replaced; say so on
            // the serving deployment.
            let replaced = before
                .iter()
                .filter(|id| !after.iter().any(|i| i.id == **id))
                .count();
            let started = after
                .iter()
                .filter(|i| !before.contains(i.id.as_str()))
                .count();
            if started > 0 {
                let message = format!(
                    "liveness: {started} instance(s) started again ({replaced} were not running or failed the probe)"
                );
                info!(%key, %message);
                let _ = state
                    .store()
                    .add_deployment_event(&work.deployment.id, &message)
                    .await;
            }
        }
        Err(e) => {
            warn!(%key, error = %e, "reconcile: could not bring the serving release back")
        }
    }
}

/// The reconciler on Kubernetes: re-apply what is serving (server-side apply makes that a
/// no-op when nothing changed; a schedule change reaches its CronJob this way), and remove
/// the workloads in the cluster the store no longer wants.
#[cfg(feature = "kubernetes")]
async fn reconcile_kubernetes(
    state: &AppState,
    k8s: &berth_dataplane::kubernetes::Kubernetes,
    serving: &[DeploymentWork],
    mark: u64,
) {
    // A workload whose deploy started since `serving` was read (running or already done) is
    // left to its runner: applying the release read here could put the older one back.
    let superseded = |key: &WorkloadKey| state.runners().started_since(key, mark);
    let mut wanted = HashSet::new();
    for work in serving {
        let key = key_of(work);
        wanted.insert(key.clone());
        if superseded(&key) || work.component_type == ComponentType::ManualTask {
            continue;
        }
        let spec = match spec_for(state, work).await {
            Ok(s) => s,
            Err(reason) => {
                warn!(%key, %reason, "reconcile: cannot build the spec");
                continue;
            }
        };
        // Asked again under the workload's rollout lock, which a deploy's runner holds while
        // it rolls out: building the spec awaited the store.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        if let Some(Err(e)) = k8s.keep_serving(&spec, &tx, || superseded(&key)).await {
            warn!(%key, error = %e, "reconcile: applying the serving release failed");
        }
    }
    match k8s.managed_keys().await {
        Ok(keys) => {
            for key in keys {
                if wanted.contains(&key) {
                    continue;
                }
                match k8s
                    .remove_unless_superseded(&key, || superseded(&key))
                    .await
                {
                    Some(Ok(())) => info!(%key, "removed a workload the store does not want"),
                    Some(Err(e)) => {
                        warn!(%key, error = %e, "removing a workload the store does not want failed")
                    }
                    None => {}
                }
            }
        }
        Err(e) => warn!(error = %e, "reconcile: listing berth's workloads failed"),
    }
}

/// Runs when this server starts to lead: resume unfinished deployments, then reconcile
/// periodically (and, on a shared database, start the runners of deployments created through
/// the other servers).
pub fn start(state: AppState) {
    if state.store().backend() == berth_store::Backend::Postgres {
        let s = state.clone();
        state.leadership().spawn_led(async move {
            loop {
                tokio::time::sleep(PENDING_POLL).await;
                match s.store().unfinished_deployments().await {
                    Ok(work) => {
                        let keys: HashSet<WorkloadKey> = work.iter().map(key_of).collect();
                        for key in keys {
                            kick(&s, key);
                        }
                    }
                    Err(e) => warn!(error = %e, "reading unfinished deployments failed"),
                }
            }
        });
    }
    let s = state.clone();
    state.leadership().spawn_led(async move {
        let state = s;
        // Route what runs right away (one listing of the engine): after a restart the gateway
        // answers for every running instance at once, not as the first reconciler pass gets to
        // each workload. Before the runners start, so no rollout races this.
        let mut listed = sync_routes(&state).await;
        match state.store().unfinished_deployments().await {
            Ok(work) => {
                for w in &work {
                    let _ = state
                        .store()
                        .add_deployment_event(&w.deployment.id, "resumed after a server restart")
                        .await;
                }
                let keys: HashSet<WorkloadKey> = work.iter().map(key_of).collect();
                for key in keys {
                    kick(&state, key);
                }
            }
            Err(e) => error!(error = %e, "reading unfinished deployments failed"),
        }
        let mut first = true;
        loop {
            let started = std::time::Instant::now();
            // The first pass reuses the routing's listing.
            let workloads = reconcile_listed(&state, listed.take()).await;
            let ms = started.elapsed().as_millis();
            if first {
                info!(workloads, ms, "reconcile pass finished");
                first = false;
            } else {
                debug!(workloads, ms, "reconcile pass finished");
            }
            tokio::time::sleep(RECONCILE_EVERY).await;
        }
    });
}

/// A follower's loop: while another server leads, route this server's gateway as the leader
/// routes its own.
pub async fn follow(state: AppState) {
    loop {
        if !state.leadership().is_leader() {
            let _ = sync_routes(&state).await;
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Routes the gateway from the store (what serves) and the engine (where it runs), changing
/// nothing on the engine: each serving release goes to its running instances. Followers do
/// this all along; every server once before its gateway serves (see `Server::run`). While the
/// leader rolls a workload out, the old release's instances may be gone before the store says
/// the new one is ready; then whatever runs of that workload is routed. Returns the engine's
/// listing it routed from.
pub async fn sync_routes(state: &AppState) -> Option<Vec<berth_dataplane::Instance>> {
    let Ok(plane) = state.engine() else {
        return None;
    };
    // On Kubernetes the cluster routes; berth's gateway only fronts the engine's instances.
    let engine = plane.as_engine()?;
    let serving = match state.store().serving_deployments().await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "routing: reading the store failed");
            return None;
        }
    };
    let instances = match engine.list_managed().await {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "routing: listing instances failed");
            return None;
        }
    };
    let orgs: std::collections::BTreeSet<&str> =
        serving.iter().map(|w| w.deployment.org.as_str()).collect();
    for org in orgs {
        refresh_org_subnets(state, plane, org).await;
    }
    let mut routed = HashSet::new();
    for work in serving.iter().filter(|w| !w.component_type.is_task()) {
        let key = key_of(work);
        let running: Vec<_> = instances
            .iter()
            .filter(|i| i.key == key && i.state == berth_dataplane::InstanceState::Running)
            .filter_map(|i| i.address.map(|a| (a, i.release == work.deployment.id)))
            .collect();
        let backends: Vec<_> = if running.iter().any(|(_, serving)| *serving) {
            running
                .iter()
                .filter(|(_, s)| *s)
                .map(|(a, _)| *a)
                .collect()
        } else {
            running.iter().map(|(a, _)| *a).collect()
        };
        // Settings take effect at a switch: switch even to the same backends.
        route_settings(state, &key, work);
        berth_dataplane::RouteSwitch::switch(state.gateway().as_ref(), &key, &backends);
        routed.insert(key);
    }
    for key in state.gateway().routed_keys() {
        if !routed.contains(&key) {
            state.gateway().remove(&key);
        }
    }
    Some(instances)
}

/// The set of workloads with an active runner, and when each last started one.
#[derive(Debug, Default)]
pub struct Runners(std::sync::Mutex<RunnerSet>);

#[derive(Debug, Default)]
struct RunnerSet {
    active: HashSet<WorkloadKey>,
    /// Counts runner starts; `started` maps a workload to the count at its last start.
    starts: u64,
    started: HashMap<WorkloadKey, u64>,
}

impl Runners {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunnerSet> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// True when it was not there.
    pub fn insert(&self, key: WorkloadKey) -> bool {
        let mut set = self.lock();
        if !set.active.insert(key.clone()) {
            return false;
        }
        set.starts += 1;
        let n = set.starts;
        set.started.insert(key, n);
        true
    }
    pub fn remove(&self, key: &WorkloadKey) {
        self.lock().active.remove(key);
    }
    pub fn snapshot(&self) -> HashSet<WorkloadKey> {
        self.lock().active.clone()
    }
    /// The active runners and a mark to ask [`Runners::started_since`] with.
    pub fn snapshot_marked(&self) -> (HashSet<WorkloadKey>, u64) {
        let set = self.lock();
        (set.active.clone(), set.starts)
    }
    /// True when a runner of `key` is active or started after `mark` was taken (it may have
    /// finished already: what the caller read before may no longer be what serves).
    pub fn started_since(&self, key: &WorkloadKey, mark: u64) -> bool {
        let set = self.lock();
        set.active.contains(key) || set.started.get(key).is_some_and(|n| *n > mark)
    }
    /// Forgets every runner (their term ended and took them along).
    pub fn clear(&self) {
        self.lock().active.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(component: &str) -> WorkloadKey {
        WorkloadKey {
            org: "o".into(),
            project: "p".into(),
            component: component.into(),
            env: "development".into(),
        }
    }

    #[test]
    fn runners_tell_a_start_since_the_mark_even_after_it_ended() {
        let runners = Runners::default();
        assert!(runners.insert(key("a")));
        let (busy, mark) = runners.snapshot_marked();
        assert_eq!(busy, HashSet::from([key("a")]));
        // Active at the mark: still "started since" (it is the runner's workload).
        assert!(runners.started_since(&key("a"), mark));
        assert!(!runners.started_since(&key("b"), mark));
        // b starts and ends after the mark: what was read of b before may be stale.
        assert!(runners.insert(key("b")));
        assert!(!runners.insert(key("b")), "one runner per workload");
        runners.remove(&key("b"));
        assert!(runners.started_since(&key("b"), mark));
        // A later mark sees no start of b since.
        runners.remove(&key("a"));
        let (busy, later) = runners.snapshot_marked();
        assert!(busy.is_empty());
        assert!(!runners.started_since(&key("a"), later));
        assert!(!runners.started_since(&key("b"), later));
        runners.clear();
        assert!(runners.snapshot().is_empty());
    }
}
