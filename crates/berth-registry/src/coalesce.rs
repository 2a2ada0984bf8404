//! Request coalescing for manifest resolution.
//!
//! Many callers asking for the same `repository:reference` at once (a CI fan-out, a burst of
//! webhook calls) share registry round trips instead of each sending its own HEAD. A caller is
//! only ever answered by a lookup that *started after it asked*: when a lookup is already in
//! flight, new callers wait for the next one, which starts as soon as the current one ends and
//! answers all of them. So a tag pushed just before the call is never answered with the digest
//! it pointed to before — coalescing changes the number of requests, never the freshness.
//!
//! Digest references name immutable content: once a digest resolved, the answer is kept for a
//! while (bounded) and given without asking the registry again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Waiter<V, E> = oneshot::Sender<Result<V, E>>;
/// Callers waiting for the next lookup, per key with a lookup task running.
type Waiting<K, V, E> = Arc<Mutex<HashMap<K, Vec<Waiter<V, E>>>>>;

/// Coalesces concurrent lookups per key; see the module documentation.
pub struct Coalescer<K, V, E> {
    slots: Waiting<K, V, E>,
}

impl<K, V, E> Default for Coalescer<K, V, E> {
    fn default() -> Self {
        Self {
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, V, E> Coalescer<K, V, E>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
    E: Clone + Send + 'static,
{
    /// Runs `lookup` for `key`, sharing it with the callers that asked while no lookup had
    /// started yet. `lookup` runs on a spawned task, so a caller that goes away (a dropped
    /// request) never cancels the answer of the others.
    pub async fn run<F, Fut>(&self, key: K, lookup: F) -> Result<V, E>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: From<Canceled>,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(tx);
                    false
                }
                None => {
                    slots.insert(key.clone(), vec![tx]);
                    true
                }
            }
        };
        if start {
            let slots = self.slots.clone();
            tokio::spawn(async move {
                loop {
                    // Everyone waiting now is answered by a lookup that starts now; callers
                    // arriving meanwhile wait for the next round.
                    let waiters = {
                        let mut map = slots.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(waiting) = map.get_mut(&key) else {
                            break;
                        };
                        if waiting.is_empty() {
                            map.remove(&key);
                            break;
                        }
                        std::mem::take(waiting)
                    };
                    let answer = lookup().await;
                    for w in waiters {
                        let _ = w.send(answer.clone());
                    }
                }
            });
        }
        rx.await.unwrap_or_else(|_| Err(E::from(Canceled)))
    }
}

/// The lookup task ended without answering (the runtime is shutting down).
#[derive(Debug, Clone, Copy)]
pub struct Canceled;

/// Successful answers kept for `ttl`, at most `capacity` of them (oldest dropped first).
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, PartialEq)]
    struct Gone;
    impl From<Canceled> for Gone {
        fn from(_: Canceled) -> Self {
            Gone
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_lookups_that_started_after_they_asked() {
        let c: Arc<Coalescer<&'static str, usize, Gone>> = Arc::new(Coalescer::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let lookup = {
            let calls = calls.clone();
            move || {
                let calls = calls.clone();
                let mut release = release_rx.clone();
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = release.wait_for(|r| *r).await;
                    Ok::<_, Gone>(n)
                }
            }
        };
        // The first caller starts lookup 1, which blocks until released.
        let first = tokio::spawn({
            let (c, l) = (c.clone(), lookup.clone());
            async move { c.run("k", l).await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Fifty more callers ask while lookup 1 is in flight: none may get its answer.
        let later: Vec<_> = (0..50)
            .map(|_| {
                let (c, l) = (c.clone(), lookup.clone());
                tokio::spawn(async move { c.run("k", l).await })
            })
            .collect();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        release_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        for h in later {
            assert_eq!(
                h.await.unwrap(),
                Ok(2),
                "answered by the lookup after theirs began"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "51 callers, 2 lookups");
        // The slot is gone: a new caller starts a fresh lookup.
        assert_eq!(c.run("k", lookup).await, Ok(3));
    }

    #[tokio::test]
    async fn errors_are_shared_too_and_keys_are_independent() {
        let c: Coalescer<u8, u8, Gone> = Coalescer::default();
        assert_eq!(c.run(1, || async { Err::<u8, _>(Gone) }).await, Err(Gone));
        assert_eq!(c.run(2, || async { Ok::<_, Gone>(7) }).await, Ok(7));
    }

    #[test]
    fn ttl_cache_expires_and_stays_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.put(i, i * 10);
        }
        assert_eq!(cache.get(&9), Some(90));
        assert_eq!(cache.get(&0), None, "oldest dropped");
        assert!(cache.entries.lock().unwrap().len() <= 3);
        let short = TtlCache::new(Duration::ZERO, 3);
        short.put(1, 1);
        assert_eq!(short.get(&1), None, "expired");
    }
}
