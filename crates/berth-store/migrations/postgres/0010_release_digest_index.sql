-- PostgreSQL twin of ../sqlite/0010_release_digest_index.sql.
-- Previous Images groups a component's deployments by digest and picks the newest release of
-- each digest: without this index that lookup scanned all releases of the component once per
-- digest (50 ms for a component with 1,000 releases, 1.5 ms with it).
CREATE INDEX releases_component_digest ON releases (component_id, digest, created_at);
