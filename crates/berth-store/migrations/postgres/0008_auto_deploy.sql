-- PostgreSQL twin of ../sqlite/0008_auto_deploy.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- Auto-deploy: at most one policy per component. The poller checks enabled rows whose
-- next_check_at (unix milliseconds) has passed; failures grows with consecutive registry errors
-- (back-off) and is reset by a successful check.
CREATE TABLE auto_deploy (
    component_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES components(id) ON DELETE CASCADE,
    -- `digest`, `semver` or `regex`
    policy           TEXT COLLATE "C" NOT NULL,
    -- digest: the tracked tag (NULL: the component's tag)
    tag              TEXT COLLATE "C",
    -- semver: the range, e.g. `^1.2`
    range_expr       TEXT COLLATE "C",
    -- regex: the pattern a whole tag must match, and `alphabetical` or `numeric`
    regex            TEXT COLLATE "C",
    sort             TEXT COLLATE "C",
    interval_seconds BIGINT NOT NULL DEFAULT 60 CHECK (interval_seconds >= 30),
    enabled          BIGINT NOT NULL DEFAULT 1,
    last_checked_at  TEXT COLLATE "C",
    last_tag         TEXT COLLATE "C",
    last_digest      TEXT COLLATE "C",
    last_error       TEXT COLLATE "C",
    failures         BIGINT NOT NULL DEFAULT 0,
    next_check_at    BIGINT NOT NULL DEFAULT 0,
    created_by       TEXT COLLATE "C" NOT NULL,
    updated_at       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX auto_deploy_due ON auto_deploy (enabled, next_check_at);

-- The secret a registry's notification endpoint sends (`Authorization: Bearer …`) so its push
-- events trigger auto-deploy checks at once. Only the SHA-256 hash is stored.
CREATE TABLE registry_notification_secrets (
    registry_id TEXT COLLATE "C" PRIMARY KEY REFERENCES registries(id) ON DELETE CASCADE,
    hash        TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL
);
