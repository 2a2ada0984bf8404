-- PostgreSQL twin of ../sqlite/0007_sources.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- A component's source configuration: its endpoints file (endpoints.yaml, component.yaml or
-- component-config.yaml) and schema files, as uploaded. They become part of the next release.
CREATE TABLE component_sources (
    component_id TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    -- 'endpoints' (one per component, name = the file name) or 'schema' (name = relative path)
    kind         TEXT COLLATE "C" NOT NULL CHECK (kind IN ('endpoints', 'schema')),
    name         TEXT COLLATE "C" NOT NULL,
    content      TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (component_id, kind, name)
);
