-- A component's source configuration: its endpoints file (endpoints.yaml, component.yaml or
-- component-config.yaml) and schema files, as uploaded. They become part of the next release.
CREATE TABLE component_sources (
    component_id TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    -- 'endpoints' (one per component, name = the file name) or 'schema' (name = relative path)
    kind         TEXT NOT NULL CHECK (kind IN ('endpoints', 'schema')),
    name         TEXT NOT NULL,
    content      TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (component_id, kind, name)
);
