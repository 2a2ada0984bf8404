//! The auto-deploy poller: every tick it checks the components whose interval elapsed (plus
//! jitter), asks the registry for the tag their policy chooses and deploys it to the first
//! environment (trigger `auto`, actor `auto-deploy`) when it is not what already runs there.
//! Registry errors are recorded and back off (longer on 429).

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::auto_deploy::{
    AutoDeployCheck, CheckDecision, PolicyKind, parse_range, parse_regex, select_regex,
    select_semver,
};
use berth_core::reference::ImageRef;
use berth_store::{AutoDeployCheckRecord, AutoDeployState, ComponentRef, Origin};
use tracing::{info, warn};

use crate::AppState;
use crate::api::components::{DeployWhat, deploy_component};
use crate::api::registries::client_for;

/// How often the poller looks for due components, unless `BERTH_AUTO_DEPLOY_TICK_MS` (test
/// only) says otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_secs(5);
/// Components checked per tick at most (the rest stay due for the next tick).
const BATCH: u32 = 50;
/// The longest back-off after errors.
const MAX_BACKOFF_SECONDS: u64 = 3600;

/// One check at a time: the poller and `POST …/auto-deploy/check` never race on a component.
static CHECKING: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

pub fn start(state: AppState) {
    let tick = std::env::var("BERTH_AUTO_DEPLOY_TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_TICK, Duration::from_millis);
    let s = state.clone();
    state.leadership().spawn_led(async move {
        loop {
            tokio::time::sleep(tick).await;
            poll(&s).await;
        }
    });
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Up to a tenth of the interval, so components set up together spread out.
fn jitter_ms(interval_seconds: u32, salt: &str) -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = salt.bytes().fold(u64::from(nanos), |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let span = u64::from(interval_seconds) * 100 + 1;
    i64::try_from(mixed % span).unwrap_or(0)
}

async fn poll(state: &AppState) {
    let due = match state.store().due_auto_deploys(now_ms(), BATCH).await {
        Ok(due) => due,
        Err(e) => {
            warn!(error = %e, "reading due auto-deploy settings failed");
            return;
        }
    };
    for s in due {
        let c = check(state, &s).await;
        if c.decision != CheckDecision::None {
            info!(
                org = %s.settings.org, project = %s.settings.project,
                component = %s.settings.component, decision = ?c.decision, message = %c.message,
                "auto-deploy check"
            );
        }
    }
}

/// A registry step failed: the message and, for 429, how long the registry asked to wait.
struct Failure {
    message: String,
    rate_limited: Option<u64>,
}

impl From<berth_registry::Error> for Failure {
    fn from(e: berth_registry::Error) -> Self {
        let rate_limited = match &e {
            berth_registry::Error::RateLimited { retry_after, .. } => {
                Some(retry_after.unwrap_or(0))
            }
            _ => None,
        };
        Failure {
            message: e.to_string(),
            rate_limited,
        }
    }
}

impl From<crate::error::ApiError> for Failure {
    fn from(e: crate::error::ApiError) -> Self {
        Failure {
            message: e.message,
            rate_limited: None,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            rate_limited: None,
        }
    }
}

/// Runs one check of a component now and records it: decides the target tag, deploys it when
/// it is new. Never fails: errors are the answer's `error` decision and the settings'
/// `lastError`.
pub async fn check(state: &AppState, s: &AutoDeployState) -> AutoDeployCheck {
    let _one = CHECKING.lock().await;
    let a = &s.settings;
    let target = ComponentRef {
        org: &a.org,
        project: &a.project,
        component: &a.component,
    };
    let outcome = decide_and_deploy(state, s).await;
    let interval_ms = i64::from(a.interval_seconds) * 1000;
    let (answer, record) = match outcome {
        Ok(answer) => {
            let next = now_ms() + interval_ms + jitter_ms(a.interval_seconds, &a.component);
            let record = AutoDeployCheckRecord {
                tag: None,
                digest: None,
                error: None,
                failures: 0,
                next_check_at: next,
            };
            (answer, record)
        }
        Err(f) => {
            let failures = s.failures.saturating_add(1);
            let wait = backoff_seconds(a.interval_seconds, failures, f.rate_limited);
            let record = AutoDeployCheckRecord {
                tag: None,
                digest: None,
                error: None,
                failures,
                next_check_at: now_ms()
                    + i64::try_from(wait.saturating_mul(1000)).unwrap_or(i64::MAX),
            };
            let answer = AutoDeployCheck {
                decision: CheckDecision::Error,
                tag: None,
                digest: None,
                deployment_id: None,
                message: f.message,
            };
            (answer, record)
        }
    };
    let record = AutoDeployCheckRecord {
        tag: answer.tag.as_deref(),
        digest: answer.digest.as_deref(),
        error: (answer.decision == CheckDecision::Error).then_some(answer.message.as_str()),
        ..record
    };
    if let Err(e) = state
        .store()
        .record_auto_deploy_check(target, &record)
        .await
    {
        warn!(component = %a.component, error = %e, "recording an auto-deploy check failed");
    }
    answer
}

async fn decide_and_deploy(
    state: &AppState,
    s: &AutoDeployState,
) -> Result<AutoDeployCheck, Failure> {
    let a = &s.settings;
    let target = ComponentRef {
        org: &a.org,
        project: &a.project,
        component: &a.component,
    };
    let component = state
        .store()
        .get_component(&a.org, &a.project, &a.component)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("component {:?} not found", a.component))?;
    let image = ImageRef::parse(&component.image)
        .map_err(|e| format!("stored image {:?}: {e}", component.image))?;
    let (_, settings) = state
        .store()
        .registry_settings(&a.org, &component.registry)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("registry {:?} not found", component.registry))?;
    let client = client_for(state, &settings)?;
    let repository = image.path();
    let tag = match a.policy {
        PolicyKind::Digest => a
            .tag
            .clone()
            .or_else(|| image.tag().map(str::to_owned))
            .unwrap_or_else(|| "latest".into()),
        PolicyKind::Semver => {
            let range = parse_range(a.range.as_deref().unwrap_or_default())
                .map_err(|e| format!("range: {e}"))?;
            let tags = client.list_tags(repository).await?;
            match select_semver(&range, &tags) {
                Some(t) => t.to_owned(),
                None => {
                    return Ok(nothing(
                        None,
                        None,
                        format!(
                            "no tag of {} is in range {:?} ({} tags)",
                            image.name(),
                            a.range.as_deref().unwrap_or_default(),
                            tags.len()
                        ),
                    ));
                }
            }
        }
        PolicyKind::Regex => {
            let re = parse_regex(a.regex.as_deref().unwrap_or_default())
                .map_err(|e| format!("regex: {e}"))?;
            let tags = client.list_tags(repository).await?;
            match select_regex(&re, a.sort.unwrap_or_default(), &tags) {
                Some(t) => t.to_owned(),
                None => {
                    return Ok(nothing(
                        None,
                        None,
                        format!(
                            "no tag of {} matches {:?} ({} tags)",
                            image.name(),
                            a.regex.as_deref().unwrap_or_default(),
                            tags.len()
                        ),
                    ));
                }
            }
        }
    };
    let digest = client.resolve(repository, &tag).await?.digest;
    if a.last_digest.as_deref() == Some(digest.as_str()) {
        return Ok(nothing(
            Some(tag.clone()),
            Some(digest),
            format!("{tag} is unchanged since the last check"),
        ));
    }
    let (d, new) = deploy_component(
        state,
        target,
        DeployWhat::Tag(tag.clone()),
        false,
        Origin {
            trigger: "auto",
            actor: "auto-deploy",
        },
    )
    .await?;
    if new {
        Ok(AutoDeployCheck {
            decision: CheckDecision::Deploy,
            message: format!("deploying {tag} ({}) to {}", d.digest, d.environment),
            tag: Some(tag),
            digest: Some(d.digest),
            deployment_id: Some(d.id),
        })
    } else {
        Ok(nothing(
            Some(tag.clone()),
            Some(d.digest.clone()),
            format!("{tag} ({}) already runs in {}", d.digest, d.environment),
        ))
    }
}

/// Seconds until the next check after `failures` consecutive errors: the interval doubled per
/// failure (up to an hour); after a 429 at least four intervals and never before the
/// registry's Retry-After.
fn backoff_seconds(interval_seconds: u32, failures: u32, rate_limited: Option<u64>) -> u64 {
    let base = u64::from(interval_seconds);
    let wait = base
        .saturating_mul(1u64 << failures.min(6))
        .min(MAX_BACKOFF_SECONDS);
    match rate_limited {
        Some(retry_after) => wait.max(base.saturating_mul(4)).max(retry_after),
        None => wait,
    }
}

fn nothing(tag: Option<String>, digest: Option<String>, message: String) -> AutoDeployCheck {
    AutoDeployCheck {
        decision: CheckDecision::None,
        tag,
        digest,
        deployment_id: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff() {
        assert_eq!(backoff_seconds(60, 1, None), 120);
        assert_eq!(backoff_seconds(60, 2, None), 240);
        assert_eq!(backoff_seconds(60, 40, None), MAX_BACKOFF_SECONDS);
        assert_eq!(backoff_seconds(60, 1, Some(0)), 240);
        assert_eq!(backoff_seconds(30, 1, Some(900)), 900);
        assert_eq!(backoff_seconds(60, 40, Some(7200)), 7200);
    }

    #[test]
    fn jitter_is_within_a_tenth() {
        for interval in [30, 60, 3600] {
            let j = jitter_ms(interval, "web");
            assert!((0..=i64::from(interval) * 100).contains(&j), "{j}");
        }
    }
}
