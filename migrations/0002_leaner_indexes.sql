-- Fewer indexes to maintain on every insert. /v1/usage always filters on a time range (and, for a
-- non-admin key, on key_name); grouping by model or provider reads that range anyway, so their two
-- B-trees cost every row and served no query better than a time-range scan. A BRIN index on
-- created_at (rows arrive in time order) serves ranges inside a month for a few pages per partition.
DROP INDEX IF EXISTS request_logs_model_created;
DROP INDEX IF EXISTS request_logs_provider_created;
CREATE INDEX request_logs_created_brin ON request_logs USING brin (created_at);
