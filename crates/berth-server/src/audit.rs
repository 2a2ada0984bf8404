//! Group commit of audit rows for the deploy webhook: a call hands its row to one writer task
//! and waits until the row is committed. The writer takes every row queued while it was busy
//! and writes them in one transaction, so a burst of calls costs a few commits instead of one
//! each, and no call is answered before its row is in the database (a crash loses no row of an
//! answered call; graceful shutdown lets in-flight calls finish, which waits for their rows).
//!
//! An idle writer starts a batch at once: a lone call waits for one commit, as with a plain
//! INSERT.

use std::sync::OnceLock;

use berth_store::{AuditRow, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

/// Rows one transaction takes at most (a bigger queue is written in several).
const MAX_BATCH: usize = 1000;

type Pending = (AuditRow, oneshot::Sender<()>);

/// The audit writer of one server (see the module docs).
pub struct AuditWriter {
    store: Store,
    /// Started by the first row, on the runtime of the caller.
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
}

impl AuditWriter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            queue: OnceLock::new(),
        }
    }

    /// Writes `row` together with the rows queued meanwhile; returns once it is committed.
    /// A failed write is logged, as a failed single INSERT was: the call's answer stands.
    pub async fn write(&self, row: AuditRow) {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.store.clone(), rx));
            tx
        });
        let (done, committed) = oneshot::channel();
        match queue.send((row, done)) {
            Ok(()) => {
                let _ = committed.await;
            }
            // The writer is gone (its runtime shut down): write this row alone.
            Err(mpsc::error::SendError((row, _))) => {
                if let Err(e) = self.store.insert_audit_rows(&[row]).await {
                    error!(error = %e, "writing the audit row failed");
                }
            }
        }
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, waiters): (Vec<AuditRow>, Vec<oneshot::Sender<()>>) = batch.drain(..).unzip();
        if let Err(e) = store.insert_audit_rows(&rows).await {
            error!(error = %e, rows = rows.len(), "writing audit rows failed");
        }
        for done in waiters {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn row(n: usize) -> AuditRow {
        AuditRow::now(&berth_store::NewAuditEntry {
            actor: &format!("ci:web/t{n}"),
            method: "POST",
            path: "/api/v1/hooks/deploy",
            status: 200,
            request_id: &format!("r{n}"),
            source: "127.0.0.1",
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_row_is_committed_before_its_call_returns() {
        let store = Store::open_in_memory().await.unwrap();
        let writer = Arc::new(AuditWriter::new(store.clone()));
        // A lone row: in the database when `write` returns.
        writer.write(row(0)).await;
        assert_eq!(store.list_audit(10).await.unwrap().len(), 1);
        // A burst: every call sees its own row when it returns; all 300 are there, once each.
        let calls: Vec<_> = (1..=300)
            .map(|n| {
                let (writer, store) = (writer.clone(), store.clone());
                tokio::spawn(async move {
                    writer.write(row(n)).await;
                    let rows = store.list_audit(1000).await.unwrap();
                    assert!(
                        rows.iter().any(|r| r.request_id == format!("r{n}")),
                        "row {n} not committed when its call returned"
                    );
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        let rows = store.list_audit(1000).await.unwrap();
        assert_eq!(rows.len(), 301);
        let mut ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 301);
        assert!(
            rows.iter()
                .all(|r| r.path == "/api/v1/hooks/deploy" && r.status == 200)
        );
    }
}
