-- PostgreSQL twin of ../sqlite/0004_configs.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- Configs and secrets of a component per environment. Secret values are AES-256-GCM
-- ciphertexts; plain values are UTF-8 bytes.
CREATE TABLE component_configs (
    id             TEXT COLLATE "C" PRIMARY KEY,
    component_id   TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind           TEXT COLLATE "C" NOT NULL CHECK (kind IN ('env', 'secret-env', 'file', 'secret-file')),
    -- 'env' for both env kinds, 'file' for both file kinds: names are unique within a class
    class          TEXT COLLATE "C" NOT NULL CHECK (class IN ('env', 'file')),
    name           TEXT COLLATE "C" NOT NULL,
    value          BYTEA NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL,
    UNIQUE (component_id, environment_id, class, name)
);
