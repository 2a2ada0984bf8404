-- PostgreSQL twin of ../sqlite/0009_server_meta.sql.
-- Facts about the installation that every server on this database must agree on:
-- `master_key_check` (SHA-256 over a fixed label and the master key: a server started with
-- another key refuses to run instead of failing to decrypt) and, on PostgreSQL, `server_id`
-- (the owner label of the containers, shared by the servers of one database).
CREATE TABLE server_meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);
