-- PostgreSQL twin of ../sqlite/0012_list_pages.sql: the same table, backfill and indexes.
-- Pages of the lists that grow without bound, each read from an index in its own order
-- (keyset pagination: WHERE (sort key, id) < (cursor) ORDER BY ... LIMIT n).

-- Previous Images: one row per (component, digest), kept in the transaction that records a
-- deployment, so that a page is read from index component_images_newest instead of grouping
-- all of the component's deployments by digest (88 ms p99 under load for a component with
-- 1,334 deployments of 251 digests).
CREATE TABLE component_images (
    component_id      TEXT COLLATE "C" NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    digest            TEXT COLLATE "C" NOT NULL,
    -- the newest release with this digest (deploying it again uses this one)
    release_id        TEXT COLLATE "C" NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    -- the first and the last deployment of the digest (created_at of the deployments)
    first_deployed_at TEXT COLLATE "C" NOT NULL,
    last_deployed_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (component_id, digest)
);
CREATE INDEX component_images_newest ON component_images (component_id, last_deployed_at, digest);

INSERT INTO component_images (component_id, digest, release_id, first_deployed_at, last_deployed_at)
SELECT x.component_id, x.digest,
       (SELECT r2.id FROM releases r2 WHERE r2.component_id = x.component_id AND r2.digest = x.digest
        ORDER BY r2.created_at DESC, r2.id DESC LIMIT 1),
       x.first_at, x.last_at
FROM (SELECT d.component_id, r.digest, MIN(d.created_at) AS first_at, MAX(d.created_at) AS last_at
      FROM deployments d JOIN releases r ON r.id = d.release_id
      GROUP BY d.component_id, r.digest) x;

-- A component's deployments newest first (its deployments list), and per environment (the
-- newest one there: the environments view, the same-digest check of a deploy). The old index
-- lacked the id that breaks ties of created_at, so every such lookup sorted all of the
-- (component, environment)'s deployments.
DROP INDEX deployments_component_env;
CREATE INDEX deployments_component_env ON deployments (component_id, environment_id, created_at, id);
CREATE INDEX deployments_component_newest ON deployments (component_id, created_at, id);
-- The deployment serving in each (component, environment): the newest ready one. Usually one
-- row per pair (a ready deployment supersedes the one before it).
CREATE INDEX deployments_serving ON deployments (component_id, environment_id, created_at, id)
    WHERE status = 'ready';

