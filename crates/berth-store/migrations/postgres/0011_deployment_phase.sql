-- The rollout phase of an unfinished deployment (pulling, starting, switching, draining);
-- NULL before the rollout starts and once the deployment has finished.
ALTER TABLE deployments ADD COLUMN phase TEXT;
