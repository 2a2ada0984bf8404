//! Leadership: which `berth serve` runs the reconciler, the deploy runners, the scheduler and
//! the auto-deploy poller.
//!
//! On SQLite there is one server and it always leads. On PostgreSQL several servers may share
//! the database: every one serves the API and the gateway, and the one whose database session
//! holds the leader lock ([`berth_store::leader`]) does the work that must happen once. The
//! others try to take the lock every [`TRY_EVERY`]; when the leader dies its session ends, the
//! lock is free and one of them takes over, adopting what runs as a restarted server does.
//!
//! Each stretch of leading is a *term*. Leader work is spawned with [`Leadership::spawn_led`]
//! and is dropped when its term ends, so a server that loses its lock session stops leading at
//! once (its half-done rollouts are resumed by the next leader, as after a crash).

use std::future::Future;
use std::time::Duration;

use berth_store::Backend;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::AppState;

/// How often a follower tries to take the lock.
const TRY_EVERY: Duration = Duration::from_secs(2);
/// How often the leader checks that its lock session is alive, and how long a check may take.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// A new leader waits this long after taking the lock before it leads. A leader whose session
/// was ended by the database (not by its own death) notices within `CHECK_EVERY +
/// CHECK_TIMEOUT` and stops first, so two servers never lead at once.
const TAKEOVER_GRACE: Duration = Duration::from_secs(5);

/// The current term: `Some(n)` while this server leads.
#[derive(Debug)]
pub struct Leadership {
    term: watch::Sender<Option<u64>>,
}

impl Leadership {
    /// Leading from the start (the only server of a SQLite store), or not until it takes the
    /// lock.
    pub fn new(leading: bool) -> Self {
        Self {
            term: watch::Sender::new(leading.then_some(1)),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.term.borrow().is_some()
    }

    /// Runs `work` in the background until it ends or the current term does. Returns false
    /// (and drops `work`) when this server does not lead.
    pub fn spawn_led<F>(&self, work: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut rx = self.term.subscribe();
        let term = *rx.borrow_and_update();
        if term.is_none() {
            return false;
        }
        tokio::spawn(async move {
            tokio::select! {
                () = work => {}
                _ = rx.wait_for(|t| *t != term) => {}
            }
        });
        true
    }

    fn set(&self, term: Option<u64>) {
        self.term.send_replace(term);
    }

    fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.term.subscribe()
    }
}

/// Starts the leader election (PostgreSQL) or leads at once (SQLite), and the leader's work at
/// the start of each term.
pub fn start(state: AppState) {
    // SQLite: this server leads from the start (`AppState::new`).
    if state.store().backend() == Backend::Postgres {
        tokio::spawn(campaign(state.clone()));
        tokio::spawn(crate::deploy::follow(state.clone()));
    }
    tokio::spawn(lead(state));
}

/// At the start of each term: the work only the leader does (each piece ends with the term).
async fn lead(state: AppState) {
    let mut rx = state.leadership().subscribe();
    loop {
        let Ok(term) = rx.wait_for(Option::is_some).await.map(|t| *t) else {
            return;
        };
        crate::deploy::start(state.clone());
        crate::tasks::start(state.clone());
        crate::auto_deploy::start(state.clone());
        if rx.wait_for(|t| *t != term).await.is_err() {
            return;
        }
        // The term's runners were dropped with it; the next term starts its own.
        state.runners().clear();
    }
}

/// Tries to take the leader lock until it gets it, leads while its session lives, and starts
/// over when the session is lost.
async fn campaign(state: AppState) {
    let mut term = 0;
    let mut session = None;
    loop {
        if session.is_none() {
            match state.store().leader_session().await {
                Ok(s) => session = s,
                Err(e) => warn!(error = %e, "leader election: connecting to the database failed"),
            }
        }
        if let Some(s) = session.as_mut() {
            match tokio::time::timeout(CHECK_TIMEOUT, s.try_acquire()).await {
                Ok(Ok(true)) => {
                    info!(
                        grace = ?TAKEOVER_GRACE,
                        "took the leader lock; leading after the grace period"
                    );
                    tokio::time::sleep(TAKEOVER_GRACE).await;
                    term += 1;
                    state.leadership().set(Some(term));
                    info!(
                        term,
                        "leading: running the reconciler, the scheduler and the auto-deploy poller"
                    );
                    loop {
                        tokio::time::sleep(CHECK_EVERY).await;
                        match tokio::time::timeout(CHECK_TIMEOUT, s.check()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                warn!(error = %e, "the leader lock's database session failed");
                                break;
                            }
                            Err(_) => {
                                warn!(timeout = ?CHECK_TIMEOUT, "the leader lock's database session does not answer");
                                break;
                            }
                        }
                    }
                    state.leadership().set(None);
                    warn!(term, "no longer leading; the other servers take over");
                    // A new session for the next try; closing this one frees the lock in case
                    // the database still thinks it lives.
                    if let Some(s) = session.take() {
                        let _ = tokio::time::timeout(CHECK_TIMEOUT, s.close()).await;
                    }
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "leader election: trying the lock failed");
                    session = None;
                }
                Err(_) => {
                    warn!("leader election: trying the lock timed out");
                    session = None;
                }
            }
        }
        tokio::time::sleep(TRY_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn led_work_ends_with_its_term() {
        let l = Leadership::new(false);
        assert!(!l.is_leader());
        assert!(!l.spawn_led(async {}), "a follower runs no leader work");
        l.set(Some(1));
        assert!(l.is_leader());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        assert!(l.spawn_led(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        }));
        l.set(None);
        // The work was dropped with its term: its sender is gone.
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the led work was dropped");
        assert!(!l.is_leader());
    }
}
