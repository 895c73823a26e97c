-- 0470_backend_pools.sql: a deployment name may be served by several backends (a pool), each member with a priority
-- (1 is tried first) and a weight among members of the same priority; each backend has circuit-breaker settings.
-- A name on one backend stays the one-line case: priority 1, weight 1.

ALTER TABLE backend_deployments DROP CONSTRAINT backend_deployments_pkey;
ALTER TABLE backend_deployments ADD PRIMARY KEY (name, backend);
ALTER TABLE backend_deployments
    ADD COLUMN priority integer NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 100),
    ADD COLUMN weight   integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);

ALTER TABLE backends
    ADD COLUMN breaker_failures       integer NOT NULL DEFAULT 5  CHECK (breaker_failures BETWEEN 1 AND 1000),
    ADD COLUMN breaker_window_seconds integer NOT NULL DEFAULT 30 CHECK (breaker_window_seconds BETWEEN 1 AND 3600),
    ADD COLUMN breaker_open_seconds   integer NOT NULL DEFAULT 30 CHECK (breaker_open_seconds BETWEEN 1 AND 3600);
