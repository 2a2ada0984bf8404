//! The in-process server state the handler tests share: an in-memory store with a bootstrap
//! admin token and no engine (or the one a test gives).

use std::sync::Arc;

use berth_store::Store;
use berth_store::keys::MasterKey;

use crate::{AppState, RuntimeConfig};

pub(crate) struct Fixture {
    pub(crate) state: AppState,
    pub(crate) token: String,
    _dir: tempfile::TempDir,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with_engine(Err("no engine in this test".into())).await
}

pub(crate) async fn fixture_with_engine(
    engine: Result<berth_dataplane::engine::Engine, String>,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::load_or_create(dir.path()).unwrap();
    let store = Store::open_in_memory().await.unwrap().with_master_key(&key);
    let token = store.bootstrap().await.unwrap().unwrap().admin_token;
    let state = AppState::new(
        store,
        engine,
        RuntimeConfig {
            ssrf: berth_registry::SsrfPolicy::default(),
            ready_timeout: std::time::Duration::from_secs(5),
            drain: std::time::Duration::from_millis(10),
            public_url: "http://127.0.0.1:7400".into(),
            ci_rate_per_minute: 30,
            kubernetes: Default::default(),
        },
        Arc::new(crate::gateway::Gateway::new("http://127.0.0.1:7480".into())),
    );
    Fixture {
        state,
        token,
        _dir: dir,
    }
}
