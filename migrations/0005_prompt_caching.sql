-- Money with prompt caching (DESIGN.md §5): providers bill input read from their prompt cache
-- below the input price and (Anthropic) input written to it above; reasoning is part of the
-- output. `input_tokens` keeps meaning all input and `output_tokens` all output: these columns
-- are parts of them, so no token is priced twice and old rows (zeros) stay right.
-- A constant default makes each ADD COLUMN a catalogue change, not a rewrite, on tables of any
-- size; on a partitioned parent it reaches every partition.

ALTER TABLE request_logs
    ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens  bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens    bigint NOT NULL DEFAULT 0;

ALTER TABLE usage_hourly
    ADD COLUMN cached_input_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens  bigint NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens    bigint NOT NULL DEFAULT 0;

-- The control plane's models price cached input and cache writes too (NULL: the input price).
ALTER TABLE models
    ADD COLUMN cached_input_per_1m numeric(20, 9) CHECK (cached_input_per_1m >= 0),
    ADD COLUMN cache_write_per_1m  numeric(20, 9) CHECK (cache_write_per_1m >= 0);
