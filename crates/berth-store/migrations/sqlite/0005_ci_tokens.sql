-- CI tokens: bound to one component, good only for its deploy webhook and the status of its
-- deployments. Like api_tokens, only the SHA-256 hash is stored, never the token.
CREATE TABLE ci_tokens (
    id           TEXT PRIMARY KEY,
    component_id TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- first characters of the token (`berth_ci_` + 8), to find candidates and to show in lists
    prefix       TEXT NOT NULL,
    -- hex SHA-256 of the whole token
    hash         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    -- `user/token` of who created it
    created_by   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT,
    UNIQUE (component_id, name)
);
CREATE INDEX ci_tokens_prefix ON ci_tokens (prefix);

-- Answers of the deploy webhook by (token, Idempotency key), replayed for 24 hours.
CREATE TABLE ci_idempotency (
    token_id     TEXT NOT NULL REFERENCES ci_tokens(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    -- hex SHA-256 of the request (image/tag/digest), to refuse a key reused for another request
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (token_id, key)
);
CREATE INDEX ci_idempotency_created ON ci_idempotency (created_at);
