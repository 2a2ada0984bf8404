-- PostgreSQL twin of ../sqlite/0006_tasks.sql: the same tables, columns and constraints. Integers are
-- BIGINT, bytes BYTEA, identities GENERATED, and text compares byte-wise (COLLATE "C") as in SQLite.
-- Scheduled and manual tasks: one schedule per (component, environment), the executions of
-- tasks with their logs, and per-day counts that outlive pruned executions.
-- Times are RFC 3339 UTC with milliseconds ('2026-01-01T00:00:00.000Z'): they sort as text.
CREATE TABLE task_schedules (
    component_id              TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id            TEXT COLLATE "C" NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    expr                      TEXT COLLATE "C" NOT NULL,
    zone                      TEXT COLLATE "C" NOT NULL DEFAULT 'UTC',
    concurrency               TEXT COLLATE "C" NOT NULL CHECK (concurrency IN ('allow', 'forbid', 'replace')),
    starting_deadline_seconds BIGINT CHECK (starting_deadline_seconds IS NULL OR starting_deadline_seconds >= 1),
    active_deadline_seconds   BIGINT CHECK (active_deadline_seconds IS NULL OR active_deadline_seconds >= 1),
    suspended                 BIGINT NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    successful_history_limit  BIGINT NOT NULL CHECK (successful_history_limit >= 0),
    failed_history_limit      BIGINT NOT NULL CHECK (failed_history_limit >= 0),
    -- the next slot not yet handled; advanced (compare-and-swap) in the transaction that
    -- records the slot's execution
    next_fire_at              TEXT COLLATE "C",
    created_at                TEXT COLLATE "C" NOT NULL,
    updated_at                TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (component_id, environment_id)
);

CREATE TABLE task_executions (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    component_id            TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id          TEXT COLLATE "C" NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    -- the deployment whose release ran (its id is the data plane revision); NULL when nothing
    -- was deployed (a missed slot)
    deployment_id           TEXT COLLATE "C" REFERENCES deployments(id) ON DELETE SET NULL,
    release_id              TEXT COLLATE "C",
    image                   TEXT COLLATE "C",
    digest                  TEXT COLLATE "C",
    trigger                 TEXT COLLATE "C" NOT NULL CHECK (trigger IN ('schedule', 'manual', 'api', 'ci')),
    actor                   TEXT COLLATE "C" NOT NULL,
    -- JSON array of strings, appended after ENTRYPOINT/CMD
    args                    TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    -- JSON array of the override names; values are never stored
    env_names               TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    -- the scheduled time of a scheduled run: one slot never runs twice, also with several
    -- servers on one database (manual runs have none; NULLs do not collide)
    slot                    TEXT COLLATE "C",
    status                  TEXT COLLATE "C" NOT NULL CHECK (status IN
                              ('running', 'succeeded', 'failed', 'timed-out', 'cancelled', 'missed')),
    exit_code               BIGINT,
    reason                  TEXT COLLATE "C",
    active_deadline_seconds BIGINT,
    created_at              TEXT COLLATE "C" NOT NULL,
    started_at              TEXT COLLATE "C",
    ended_at                TEXT COLLATE "C",
    -- stdout and stderr, the newest 10 MB
    logs                    TEXT COLLATE "C" NOT NULL DEFAULT '',
    UNIQUE (component_id, environment_id, slot)
);
CREATE INDEX task_executions_component ON task_executions (component_id, environment_id, created_at);
CREATE INDEX task_executions_status ON task_executions (status);

CREATE TABLE task_execution_days (
    component_id   TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    -- UTC day the execution ended, YYYY-MM-DD
    day            TEXT COLLATE "C" NOT NULL,
    status         TEXT COLLATE "C" NOT NULL,
    count          BIGINT NOT NULL,
    PRIMARY KEY (component_id, environment_id, day, status)
);
