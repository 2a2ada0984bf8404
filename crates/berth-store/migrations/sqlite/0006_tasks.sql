-- Scheduled and manual tasks: one schedule per (component, environment), the executions of
-- tasks with their logs, and per-day counts that outlive pruned executions.
-- Times are RFC 3339 UTC with milliseconds ('2026-01-01T00:00:00.000Z'): they sort as text.
CREATE TABLE task_schedules (
    component_id              TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id            TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    expr                      TEXT NOT NULL,
    zone                      TEXT NOT NULL DEFAULT 'UTC',
    concurrency               TEXT NOT NULL CHECK (concurrency IN ('allow', 'forbid', 'replace')),
    starting_deadline_seconds INTEGER CHECK (starting_deadline_seconds IS NULL OR starting_deadline_seconds >= 1),
    active_deadline_seconds   INTEGER CHECK (active_deadline_seconds IS NULL OR active_deadline_seconds >= 1),
    suspended                 INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    successful_history_limit  INTEGER NOT NULL CHECK (successful_history_limit >= 0),
    failed_history_limit      INTEGER NOT NULL CHECK (failed_history_limit >= 0),
    -- the next slot not yet handled; advanced (compare-and-swap) in the transaction that
    -- records the slot's execution
    next_fire_at              TEXT,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    PRIMARY KEY (component_id, environment_id)
);

CREATE TABLE task_executions (
    id                      TEXT PRIMARY KEY,
    component_id            TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id          TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    -- the deployment whose release ran (its id is the data plane revision); NULL when nothing
    -- was deployed (a missed slot)
    deployment_id           TEXT REFERENCES deployments(id) ON DELETE SET NULL,
    release_id              TEXT,
    image                   TEXT,
    digest                  TEXT,
    trigger                 TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'api', 'ci')),
    actor                   TEXT NOT NULL,
    -- JSON array of strings, appended after ENTRYPOINT/CMD
    args                    TEXT NOT NULL DEFAULT '[]',
    -- JSON array of the override names; values are never stored
    env_names               TEXT NOT NULL DEFAULT '[]',
    -- the scheduled time of a scheduled run: one slot never runs twice, also with several
    -- servers on one database (manual runs have none; NULLs do not collide)
    slot                    TEXT,
    status                  TEXT NOT NULL CHECK (status IN
                              ('running', 'succeeded', 'failed', 'timed-out', 'cancelled', 'missed')),
    exit_code               INTEGER,
    reason                  TEXT,
    active_deadline_seconds INTEGER,
    created_at              TEXT NOT NULL,
    started_at              TEXT,
    ended_at                TEXT,
    -- stdout and stderr, the newest 10 MB
    logs                    TEXT NOT NULL DEFAULT '',
    UNIQUE (component_id, environment_id, slot)
);
CREATE INDEX task_executions_component ON task_executions (component_id, environment_id, created_at);
CREATE INDEX task_executions_status ON task_executions (status);

CREATE TABLE task_execution_days (
    component_id   TEXT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    -- UTC day the execution ended, YYYY-MM-DD
    day            TEXT NOT NULL,
    status         TEXT NOT NULL,
    count          INTEGER NOT NULL,
    PRIMARY KEY (component_id, environment_id, day, status)
);
