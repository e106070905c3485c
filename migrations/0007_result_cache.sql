-- The result cache (DESIGN.md §5 "Result cache"): a request answered from it writes a row with
-- usage_source 'cache', zero tokens and zero cost, and what the stored answer cost when it was
-- generated as cache_saved_cost; usage_hourly counts hits and sums what they saved.
--
-- The old CHECK on usage_source would refuse 'cache'. It is dropped, not replaced: adding a
-- CHECK to a partitioned table validates every row under an exclusive lock (NOT VALID is not
-- available on partitioned tables), which on a large ledger would stop writes for minutes. The
-- writer is the only producer and writes the column from a closed set.
ALTER TABLE request_logs DROP CONSTRAINT IF EXISTS request_logs_usage_source_check;

-- Constant defaults: catalogue changes, not rewrites, on tables of any size.
ALTER TABLE request_logs
    ADD COLUMN cache_saved_cost numeric(20, 10) NOT NULL DEFAULT 0;

ALTER TABLE usage_hourly
    ADD COLUMN cache_hits       bigint          NOT NULL DEFAULT 0,
    ADD COLUMN cache_saved_cost numeric(30, 10) NOT NULL DEFAULT 0;
