-- PostgreSQL twin of ../sqlite/0002_registries.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- Container registries, per organization. Passwords are AES-256-GCM ciphertexts (crypto.rs).
CREATE TABLE registries (
    id           TEXT COLLATE "C" PRIMARY KEY,
    org_id       TEXT COLLATE "C" NOT NULL REFERENCES orgs(id) ON DELETE RESTRICT,
    name         TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    -- canonical host[:port] (Docker Hub aliases stored as docker.io)
    host         TEXT COLLATE "C" NOT NULL,
    auth_type    TEXT COLLATE "C" NOT NULL CHECK (auth_type IN ('anonymous', 'basic', 'docker-config', 'implicit')),
    username     TEXT COLLATE "C",
    password     BYTEA,
    ca_pem       TEXT COLLATE "C",
    insecure     BIGINT NOT NULL DEFAULT 0,
    platform     TEXT COLLATE "C" NOT NULL DEFAULT 'linux/amd64',
    created_at   TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    UNIQUE (org_id, name)
);
