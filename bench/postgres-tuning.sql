-- The benchmark's PostgreSQL server, set up the way a production server for leads-api
-- would be (issue 13): sized for the machine, with room for large writes (an import of
-- hundreds of thousands of leads) between checkpoints. Also the recommended configuration
-- (README "PostgreSQL settings"). Nothing here trades durability: fsync,
-- synchronous_commit and full_page_writes stay on, so no acknowledged write can be lost.
--
--   psql -h 127.0.0.1 -U postgres -f bench/postgres-tuning.sql
--
-- The settings marked "restart" take effect only after the server restarts
-- (`pg_ctlcluster 15 main restart` on this machine, which drops every connection: other
-- users' tests and benchmarks fail during it); the others with the reload at the end.
-- `bench/machine.py` records every one of them with each result (postgres_settings).
-- `ALTER SYSTEM RESET name` (and a reload or restart) undoes one.

-- Memory. A quarter of the memory is the usual start for a dedicated server; 1 GB here
-- (24 GB machine, shared with the service, wrk and the benchmark itself). With the
-- default 128 MB, a large import evicted its own dirty pages: the importing backend wrote
-- them itself (pg_stat_bgwriter.buffers_backend), on its own time.
ALTER SYSTEM SET shared_buffers = '1GB';              -- restart
ALTER SYSTEM SET wal_buffers = '64MB';                -- restart (default: 1/32 of shared_buffers, at most 16 MB)

-- WAL and checkpoints. With max_wal_size at 1 GB, an import of a few hundred thousand
-- leads (every index written: about 3 KB of WAL per lead) forced a checkpoint every few
-- seconds, and each checkpoint makes the next change of every page write the whole page
-- to WAL again (full_page_writes). Fewer, spread-out checkpoints; compressed full-page
-- images (lz4: cheap on CPU).
ALTER SYSTEM SET max_wal_size = '8GB';                -- reload
ALTER SYSTEM SET min_wal_size = '1GB';                -- reload
ALTER SYSTEM SET checkpoint_timeout = '15min';        -- reload
ALTER SYSTEM SET checkpoint_completion_target = 0.9;  -- reload (the default since 14)
ALTER SYSTEM SET wal_compression = 'lz4';             -- reload

-- The background writer cleans dirty pages ahead of the backends that need buffers.
ALTER SYSTEM SET bgwriter_lru_maxpages = 1000;        -- reload

-- Index builds and VACUUM (migrations, the benchmark's VACUUM ANALYZE after a load).
ALTER SYSTEM SET maintenance_work_mem = '512MB';      -- reload

-- Not changed, on purpose: planner settings (random_page_cost, effective_cache_size, jit,
-- parallel workers) would change the query plans the read benchmarks compare; and every
-- setting that would lose acknowledged writes (fsync, synchronous_commit, full_page_writes).

SELECT pg_reload_conf();
SELECT name, setting, unit, pending_restart
FROM pg_settings
WHERE name IN ('shared_buffers', 'wal_buffers', 'max_wal_size', 'min_wal_size',
               'checkpoint_timeout', 'checkpoint_completion_target', 'wal_compression',
               'bgwriter_lru_maxpages', 'maintenance_work_mem')
ORDER BY name;
