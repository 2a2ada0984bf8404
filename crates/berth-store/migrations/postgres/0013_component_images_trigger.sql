-- PostgreSQL twin of ../sqlite/0013_component_images_trigger.sql.
-- Previous Images' summary (component_images, 0012) is kept by the database itself: every
-- deployment recorded updates it in the same transaction, whichever server version wrote it —
-- a server from before 0012, still running during a rolling upgrade, records deployments
-- without knowing the table.
--
-- The digest's first and last deployment, and its newest release; a deployment that commits
-- after a newer one of the same digest (another server) leaves the newer release in place.
CREATE FUNCTION deployments_component_images() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO component_images (component_id, digest, release_id, first_deployed_at, last_deployed_at)
    SELECT NEW.component_id, r.digest,
           (SELECT r2.id FROM releases r2
            WHERE r2.component_id = NEW.component_id AND r2.digest = r.digest
            ORDER BY r2.created_at DESC, r2.id DESC LIMIT 1),
           NEW.created_at, NEW.created_at
    FROM releases r WHERE r.id = NEW.release_id
    ON CONFLICT (component_id, digest) DO UPDATE SET
        release_id = CASE
            WHEN excluded.last_deployed_at >= component_images.last_deployed_at
            THEN excluded.release_id ELSE component_images.release_id END,
        first_deployed_at = CASE
            WHEN excluded.first_deployed_at < component_images.first_deployed_at
            THEN excluded.first_deployed_at ELSE component_images.first_deployed_at END,
        last_deployed_at = CASE
            WHEN excluded.last_deployed_at > component_images.last_deployed_at
            THEN excluded.last_deployed_at ELSE component_images.last_deployed_at END;
    RETURN NULL;
END
$$;
CREATE TRIGGER deployments_component_images AFTER INSERT ON deployments
    FOR EACH ROW EXECUTE FUNCTION deployments_component_images();
