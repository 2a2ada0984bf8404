-- Configs and secrets of a component per environment. Secret values are AES-256-GCM
-- ciphertexts; plain values are UTF-8 bytes.
CREATE TABLE component_configs (
    id             TEXT PRIMARY KEY,
    component_id   TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('env', 'secret-env', 'file', 'secret-file')),
    -- 'env' for both env kinds, 'file' for both file kinds: names are unique within a class
    class          TEXT NOT NULL CHECK (class IN ('env', 'file')),
    name           TEXT NOT NULL,
    value          BLOB NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (component_id, environment_id, class, name)
);
