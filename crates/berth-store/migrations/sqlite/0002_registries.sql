-- Container registries, per organization. Passwords are AES-256-GCM ciphertexts (crypto.rs).
CREATE TABLE registries (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE RESTRICT,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- canonical host[:port] (Docker Hub aliases stored as docker.io)
    host         TEXT NOT NULL,
    auth_type    TEXT NOT NULL CHECK (auth_type IN ('anonymous', 'basic', 'docker-config', 'implicit')),
    username     TEXT,
    password     BLOB,
    ca_pem       TEXT,
    insecure     INTEGER NOT NULL DEFAULT 0,
    platform     TEXT NOT NULL DEFAULT 'linux/amd64',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (org_id, name)
);
