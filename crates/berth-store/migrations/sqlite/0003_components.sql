-- Components, their immutable releases, and deployments of releases to environments.
CREATE TABLE components (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE RESTRICT,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL CHECK (type IN ('service', 'web-app', 'scheduled-task', 'manual-task')),
    -- the registry the current image comes from; a registry in use cannot be deleted
    registry_id  TEXT NOT NULL REFERENCES registries(id) ON DELETE RESTRICT,
    -- normalized reference with tag, no digest (the "image URL" the user sees)
    image        TEXT NOT NULL,
    port         INTEGER,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE releases (
    id           TEXT PRIMARY KEY,
    component_id TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    registry_id  TEXT NOT NULL REFERENCES registries(id) ON DELETE RESTRICT,
    -- repository name without tag or digest, e.g. 127.0.0.1:5000/test/web
    repository   TEXT NOT NULL,
    tag          TEXT,
    digest       TEXT NOT NULL,
    port         INTEGER,
    endpoints    TEXT NOT NULL DEFAULT '[]',
    config       TEXT NOT NULL DEFAULT '{}',
    trigger      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX releases_component ON releases (component_id, created_at);

CREATE TABLE deployments (
    id             TEXT PRIMARY KEY,
    component_id   TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE RESTRICT,
    release_id     TEXT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    status         TEXT NOT NULL CHECK (status IN
                     ('pending', 'pulling', 'starting', 'ready', 'failed', 'rolled-back', 'superseded')),
    reason         TEXT,
    trigger        TEXT NOT NULL,
    actor          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX deployments_component_env ON deployments (component_id, environment_id, created_at);
CREATE INDEX deployments_status ON deployments (status);

CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    at            TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);
