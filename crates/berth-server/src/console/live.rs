//! What changes while you watch: the environment cards and the latest deployment's events
//! (streamed over Server-Sent Events while a deployment runs), and a component's runtime logs
//! (the last lines, or followed over SSE).
//!
//! Streams end by themselves: the deployment stream when nothing is in progress any more (after
//! a last update and a `done` event, which makes the page close its `EventSource` instead of
//! reconnecting) or after [`LIVE_MAX`]; the log stream when the instance stops. Both end when the
//! session's token stops being valid, and when the browser leaves (the response body is
//! dropped, and with it the store polling or the engine's log stream; keep-alive comments make a
//! vanished client show up as a failed write within [`KEEP_ALIVE`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use berth_core::api::{Deployment, DeploymentEvent, DeploymentStatus, Environment};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use super::components::{ComponentPath, Head, base_url, head};
use super::{Chrome, Console, PageResult, render, short_digest};
use crate::AppState;
use crate::api::components::{DeploymentsQuery, EventsQuery};
use crate::extract::{Json, Path, Query};

/// How often a running deployment is looked at for the stream.
const TICK: Duration = Duration::from_millis(500);
/// The longest a deployment stream stays open (a deployment waiting for an engine can wait
/// for ever; the page then shows its state and a reload starts a new stream).
const LIVE_MAX: Duration = Duration::from_secs(30 * 60);
/// Comment lines sent on idle streams (proxies keep them open; a vanished client is noticed).
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How often a followed log re-checks the session's token.
const AUTH_RECHECK: Duration = Duration::from_secs(15);

pub struct EnvView {
    pub name: String,
    pub display_name: String,
    /// Status of the newest deployment, or `none`.
    pub status: String,
    /// Why the newest deployment failed.
    pub reason: Option<String>,
    pub serving: Option<String>,
    pub serving_label: String,
    pub url: Option<String>,
    /// The next environment (name, display name) when something runs here to promote.
    pub promote_to: Option<(String, String)>,
}

/// The part of the Deploy page that changes while a deployment runs.
pub struct LiveView {
    pub base: String,
    pub csrf: String,
    pub is_task: bool,
    pub envs: Vec<EnvView>,
    pub latest: Option<Deployment>,
    pub latest_digest: String,
    pub events: Vec<DeploymentEvent>,
    /// The latest deployment's rollout phases while it runs (empty once it finished).
    pub phases: Vec<PhaseStep>,
    /// Something is still in progress: the page streams updates.
    pub polling: bool,
    pub promote_error: Option<String>,
}

/// One phase of a running rollout: `done`, `current` or `todo`.
pub struct PhaseStep {
    pub label: &'static str,
    pub state: &'static str,
}

/// The rollout's phases in order, marked against the deployment's phase (`Pulling` is current
/// while the deployment waits to start).
fn phase_steps(d: &Deployment) -> Vec<PhaseStep> {
    use berth_core::api::DeploymentPhase as P;
    if d.status.is_final() {
        return Vec::new();
    }
    let current = match d.phase {
        Some(P::Pulling) | None => 0,
        Some(P::Starting) => 1,
        Some(P::Switching) => 2,
        Some(P::Draining) => 3,
        Some(P::Unknown) => return Vec::new(),
    };
    [
        "Pulling the image",
        "Starting and probing",
        "Switching traffic",
        "Draining the old version",
    ]
    .into_iter()
    .enumerate()
    .map(|(i, label)| PhaseStep {
        label,
        state: match i.cmp(&current) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Greater => "todo",
        },
    })
    .collect()
}

#[derive(Template)]
#[template(path = "console/component_live.html")]
struct LiveFragment {
    live: LiveView,
}

/// The environment cards and the latest deployment, from the API's views of them.
pub(super) async fn live_view(
    state: &AppState,
    c: &Console,
    (org, project, name): (&str, &str, &str),
    promote_error: Option<String>,
) -> PageResult<LiveView> {
    let path = || Path((org.to_owned(), project.to_owned(), name.to_owned()));
    let Json(component) =
        crate::api::components::get_component(State(state.clone()), c.auth(), path()).await?;
    let Json(states) =
        crate::api::components::environments(State(state.clone()), c.auth(), path()).await?;
    let envs = state.store().list_environments(org).await?;
    let mut views = Vec::new();
    let mut polling = false;
    for s in states.items {
        let display_name = envs
            .iter()
            .find(|e| e.name == s.environment)
            .map_or_else(|| s.environment.clone(), |e| e.display_name.clone());
        let next = envs
            .iter()
            .position(|e| e.name == s.environment)
            .and_then(|p| envs.get(p + 1));
        if s.latest.as_ref().is_some_and(|d| !d.status.is_final()) {
            polling = true;
        }
        let reason = s
            .latest
            .as_ref()
            .filter(|d| d.status != DeploymentStatus::Ready)
            .and_then(|d| d.reason.clone());
        let serving_label = s
            .current
            .as_ref()
            .map_or_else(String::new, |d| match &d.tag {
                Some(t) => format!("{t} @ {}", short_digest(&d.digest)),
                None => short_digest(&d.digest),
            });
        views.push(EnvView {
            display_name,
            status: s
                .latest
                .as_ref()
                .map_or("none", |d| d.status.as_str())
                .to_owned(),
            reason,
            serving: s.current.as_ref().map(|d| d.digest.clone()),
            serving_label,
            url: s.url,
            promote_to: s
                .current
                .as_ref()
                .and(next)
                .map(|n| (n.name.clone(), n.display_name.clone())),
            name: s.environment,
        });
    }
    let Json(latest) = crate::api::components::list_deployments(
        State(state.clone()),
        c.auth(),
        path(),
        crate::extract::Query(DeploymentsQuery {
            env: None,
            limit: Some(1),
            cursor: None,
        }),
    )
    .await?;
    let latest = latest.items.into_iter().next();
    let events = match &latest {
        Some(d) => {
            if !d.status.is_final() {
                polling = true;
            }
            let Json(list) = crate::api::components::deployment_events(
                State(state.clone()),
                c.auth(),
                Path(d.id.clone()),
                crate::extract::Query(EventsQuery { after: None }),
            )
            .await?;
            list.items
        }
        None => Vec::new(),
    };
    Ok(LiveView {
        base: base_url(org, project, name),
        csrf: c.csrf.clone(),
        is_task: component.kind.is_task(),
        envs: views,
        latest_digest: latest
            .as_ref()
            .map(|d| short_digest(&d.digest))
            .unwrap_or_default(),
        phases: latest.as_ref().map(phase_steps).unwrap_or_default(),
        latest,
        events,
        polling,
        promote_error,
    })
}

struct LiveStream {
    state: AppState,
    console: Console,
    names: (String, String, String),
    /// The last fragment sent (only changes are sent).
    last: Option<String>,
    queue: VecDeque<Event>,
    finished: bool,
    first: bool,
    deadline: Instant,
}

fn done_event(why: &str) -> Event {
    // An event with empty data is never dispatched by browsers: say why it ended.
    Event::default().event("done").data(why)
}

impl LiveStream {
    /// The next event: a changed fragment (`live`), then `done` once nothing runs.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            if !self.first {
                tokio::time::sleep(TICK).await;
            }
            self.first = false;
            if !self.console.still_valid(&self.state).await {
                self.finished = true;
                self.queue.push_back(done_event("signed out"));
                continue;
            }
            let (org, project, name) = &self.names;
            match live_view(&self.state, &self.console, (org, project, name), None).await {
                Ok(view) => {
                    let running = view.polling;
                    match (LiveFragment { live: view }).render() {
                        Ok(html) => {
                            if self.last.as_deref() != Some(html.as_str()) {
                                self.queue
                                    .push_back(Event::default().event("live").data(&html));
                                self.last = Some(html);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "rendering the live fragment failed");
                            self.finished = true;
                            self.queue.push_back(done_event("error"));
                            continue;
                        }
                    }
                    if !running {
                        self.finished = true;
                        self.queue.push_back(done_event("finished"));
                    } else if Instant::now() >= self.deadline {
                        self.finished = true;
                        self.queue.push_back(done_event("timeout"));
                    }
                }
                Err(e) => {
                    // The component went away (or the store failed): nothing more to show.
                    self.finished = true;
                    self.queue.push_back(done_event(&e.message));
                }
            }
        }
    }
}

/// `GET …/live/events`: Server-Sent Events while a deployment of the component runs. Each
/// `live` event carries the re-rendered environment cards and events (only when they changed);
/// `done` ends the stream once every deployment is final.
pub async fn events(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
) -> PageResult<Response> {
    // A missing component is a 404 now, not an empty stream.
    head(&state, &c, (&org, &project, &name), "deploy").await?;
    let stream = LiveStream {
        state,
        console: c,
        names: (org, project, name),
        last: None,
        queue: VecDeque::new(),
        finished: false,
        first: true,
        deadline: Instant::now() + LIVE_MAX,
    };
    let events = futures_util::stream::unfold(stream, LiveStream::next);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Runtime logs

#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    follow: Option<String>,
}

/// Lines shown (and sent before following).
const TAIL: u64 = 200;

#[derive(Template)]
#[template(path = "console/logs.html")]
struct LogsPage {
    chrome: Chrome,
    head: Head,
    envs: Vec<Environment>,
    env: String,
    follow: bool,
    instance: Option<String>,
    lines: Vec<String>,
    error: Option<String>,
    tail: u64,
}

/// `GET …/logs?env=…[&follow=1]`: the last lines of the running instance; with `follow`, an
/// empty pane that the stream fills.
pub async fn logs_page(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(q): Query<LogsQuery>,
) -> PageResult {
    let head = head(&state, &c, (&org, &project, &name), "logs").await?;
    let envs = state.store().list_environments(&head.org.name).await?;
    let env = q
        .env
        .filter(|e| envs.iter().any(|x| &x.name == e))
        .or_else(|| envs.first().map(|e| e.name.clone()))
        .unwrap_or_default();
    let follow = q.follow.is_some_and(|f| !f.is_empty() && f != "0");
    let (instance, lines, error) = if follow {
        (None, Vec::new(), None)
    } else {
        match crate::api::components::logs(
            State(state.clone()),
            c.auth(),
            Path((org.clone(), project.clone(), name.clone())),
            crate::extract::Query(crate::api::components::LogsQuery {
                env: Some(env.clone()),
                tail: Some(TAIL),
            }),
        )
        .await
        {
            Ok(Json(logs)) => (Some(logs.instance), logs.lines, None),
            Err(e) => (None, Vec::new(), Some(e.message)),
        }
    };
    render(&LogsPage {
        chrome: c.chrome(
            &head.org.name,
            "overview",
            format!("Logs · {}", head.component.display_name),
        ),
        head,
        envs,
        env,
        follow,
        instance,
        lines,
        error,
        tail: TAIL,
    })
}

#[derive(Template)]
#[template(path = "console/log_line.html")]
struct LogLine<'a> {
    text: &'a str,
    class: &'a str,
}

fn line_event(text: &str, class: &str) -> Event {
    let html = (LogLine { text, class })
        .render()
        .unwrap_or_else(|_| String::from("<div class=\"log-line\">?</div>"));
    Event::default().event("line").data(html)
}

struct LogFollow {
    console: Console,
    state: AppState,
    lines: Option<berth_dataplane::BoxLogStream>,
    queue: VecDeque<Event>,
    next_check: Instant,
}

impl LogFollow {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            let lines = self.lines.as_mut()?;
            let step = tokio::select! {
                line = lines.next() => Step::Line(line),
                () = tokio::time::sleep_until(self.next_check) => Step::Check,
            };
            match step {
                Step::Line(Some(Ok(l))) => {
                    return Some((Ok(line_event(&l.text, "log-line")), self));
                }
                Step::Line(Some(Err(e))) => {
                    self.lines = None;
                    self.queue.push_back(line_event(
                        &format!("[berth] reading the logs failed: {e}"),
                        "log-line log-note",
                    ));
                    self.queue.push_back(done_event("error"));
                }
                Step::Line(None) => {
                    self.lines = None;
                    self.queue.push_back(line_event(
                        "[berth] the instance stopped; its log ended",
                        "log-line log-note",
                    ));
                    self.queue.push_back(done_event("ended"));
                }
                Step::Check => {
                    self.next_check = Instant::now() + AUTH_RECHECK;
                    if !self.console.still_valid(&self.state).await {
                        self.lines = None;
                        self.queue.push_back(done_event("signed out"));
                    }
                }
            }
        }
    }
}

enum Step {
    Line(Option<berth_dataplane::Result<berth_dataplane::LogLine>>),
    Check,
}

/// `GET …/logs/stream?env=…`: the last lines, then every new one as a `line` event (an escaped
/// HTML fragment) until the instance stops (`done`), the token is revoked or the browser leaves.
pub async fn logs_stream(
    State(state): State<AppState>,
    c: Console,
    Path((org, project, name)): ComponentPath,
    Query(q): Query<LogsQuery>,
) -> PageResult<Response> {
    let opened =
        crate::api::components::open_logs(&state, (&org, &project, &name), q.env, TAIL, true).await;
    let follow = match opened {
        Ok((_, lines)) => LogFollow {
            console: c,
            state,
            lines: Some(lines),
            queue: VecDeque::new(),
            next_check: Instant::now() + AUTH_RECHECK,
        },
        Err(e) if !e.status.is_server_error() || e.code == "engine_unavailable" => {
            // Nothing runs (or no engine): say so in the pane and end the stream.
            LogFollow {
                console: c,
                state,
                lines: None,
                queue: VecDeque::from([
                    line_event(&format!("[berth] {}", e.message), "log-line log-note"),
                    done_event("unavailable"),
                ]),
                next_check: Instant::now() + AUTH_RECHECK,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let events = futures_util::stream::unfold(follow, LogFollow::next);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_sent_as_escaped_fragments() {
        let html = (LogLine {
            text: r#"<script>alert("x")</script> & "quotes""#,
            class: "log-line",
        })
        .render()
        .unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.starts_with(r#"<div class="log-line">"#), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(html.contains("&#38;") || html.contains("&amp;"), "{html}");
    }
}
