-- PostgreSQL twin of ../sqlite/0005_ci_tokens.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- CI tokens: bound to one component, good only for its deploy webhook and the status of its
-- deployments. Like api_tokens, only the SHA-256 hash is stored, never the token.
CREATE TABLE ci_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    component_id TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    name         TEXT COLLATE "C" NOT NULL,
    -- first characters of the token (`berth_ci_` + 8), to find candidates and to show in lists
    prefix       TEXT COLLATE "C" NOT NULL,
    -- hex SHA-256 of the whole token
    hash         TEXT COLLATE "C" NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    -- `user/token` of who created it
    created_by   TEXT COLLATE "C" NOT NULL,
    last_used_at TEXT COLLATE "C",
    expires_at   TEXT COLLATE "C",
    revoked_at   TEXT COLLATE "C",
    UNIQUE (component_id, name)
);
CREATE INDEX ci_tokens_prefix ON ci_tokens (prefix);

-- Answers of the deploy webhook by (token, Idempotency key), replayed for 24 hours.
CREATE TABLE ci_idempotency (
    token_id     TEXT COLLATE "C" NOT NULL REFERENCES ci_tokens(id) ON DELETE CASCADE,
    key          TEXT COLLATE "C" NOT NULL,
    -- hex SHA-256 of the request (image/tag/digest), to refuse a key reused for another request
    request_hash TEXT COLLATE "C" NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT COLLATE "C" NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (token_id, key)
);
CREATE INDEX ci_idempotency_created ON ci_idempotency (created_at);
