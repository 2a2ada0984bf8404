//! The leader lock: with PostgreSQL several servers share one database, all serve the API and
//! the gateway, and exactly one — the holder of a session-level advisory lock — runs the
//! reconciler, the deploy runners, the scheduler and the auto-deploy poller.
//!
//! The lock lives as long as the database session that took it, so it is held on a connection
//! of its own, outside the pool: when the leader dies its session ends and the lock is free at
//! once. SQLite has a single server, which always leads, and no session.

use sqlx::{AnyConnection, Connection};

use crate::{Backend, Result, Store};

/// The advisory lock key: "berthldr" in ASCII.
pub const LEADER_LOCK_KEY: i64 = 0x6265_7274_686c_6472;

/// A database session that can take and hold the leader lock.
pub struct LeaderSession {
    conn: AnyConnection,
}

impl std::fmt::Debug for LeaderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderSession")
    }
}

impl Store {
    /// Opens a session for the leader lock (PostgreSQL); `None` on SQLite, where the only
    /// server always leads.
    pub async fn leader_session(&self) -> Result<Option<LeaderSession>> {
        match self.backend() {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let conn = AnyConnection::connect_with(&self.options).await?;
                Ok(Some(LeaderSession { conn }))
            }
        }
    }
}

impl LeaderSession {
    /// Takes the lock unless another session holds it; true when this session holds it now
    /// (also when it already did). Never waits for the holder.
    pub async fn try_acquire(&mut self) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await?)
    }

    /// Checks that the session is alive. Only the end of the session releases the lock (it is
    /// never unlocked explicitly), so an alive session still holds it.
    pub async fn check(&mut self) -> Result<()> {
        self.conn.ping().await?;
        Ok(())
    }

    /// Ends the session, which releases the lock.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn one_session_leads_until_it_ends() {
        let store = crate::test_store().await;
        let Some(mut a) = store.leader_session().await.unwrap() else {
            // SQLite: one server, always the leader.
            assert_eq!(store.backend(), crate::Backend::Sqlite);
            return;
        };
        let mut b = store.leader_session().await.unwrap().unwrap();
        assert!(a.try_acquire().await.unwrap());
        assert!(a.try_acquire().await.unwrap(), "the holder keeps it");
        assert!(!b.try_acquire().await.unwrap(), "only one leads");
        a.check().await.unwrap();
        a.close().await;
        // The server releases the lock as it ends the session, a moment after the goodbye.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !b.try_acquire().await.unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "free once the leader's session ends"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
