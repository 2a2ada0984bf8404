-- Auto-deploy: at most one policy per component. The poller checks enabled rows whose
-- next_check_at (unix milliseconds) has passed; failures grows with consecutive registry errors
-- (back-off) and is reset by a successful check.
CREATE TABLE auto_deploy (
    component_id     TEXT PRIMARY KEY REFERENCES components(id) ON DELETE CASCADE,
    -- `digest`, `semver` or `regex`
    policy           TEXT NOT NULL,
    -- digest: the tracked tag (NULL: the component's tag)
    tag              TEXT,
    -- semver: the range, e.g. `^1.2`
    range_expr       TEXT,
    -- regex: the pattern a whole tag must match, and `alphabetical` or `numeric`
    regex            TEXT,
    sort             TEXT,
    interval_seconds INTEGER NOT NULL DEFAULT 60 CHECK (interval_seconds >= 30),
    enabled          INTEGER NOT NULL DEFAULT 1,
    last_checked_at  TEXT,
    last_tag         TEXT,
    last_digest      TEXT,
    last_error       TEXT,
    failures         INTEGER NOT NULL DEFAULT 0,
    next_check_at    INTEGER NOT NULL DEFAULT 0,
    created_by       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX auto_deploy_due ON auto_deploy (enabled, next_check_at);

-- The secret a registry's notification endpoint sends (`Authorization: Bearer …`) so its push
-- events trigger auto-deploy checks at once. Only the SHA-256 hash is stored.
CREATE TABLE registry_notification_secrets (
    registry_id TEXT PRIMARY KEY REFERENCES registries(id) ON DELETE CASCADE,
    hash        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
