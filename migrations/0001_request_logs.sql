-- The usage ledger: one row per client request (plus one per summary call, purpose 'summary'),
-- range-partitioned by month on created_at (UTC boundaries). Partitions are named
-- request_logs_YYYY_MM and are created ahead and dropped past retention by the gateway itself.
CREATE TABLE request_logs (
    request_id      text           NOT NULL,
    created_at      timestamptz    NOT NULL,
    key_name        text,
    session_id      text,
    model_name      text           NOT NULL,
    provider_id     text,
    upstream_model  text,
    stream          boolean        NOT NULL DEFAULT false,
    input_tokens    bigint         NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   bigint         NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    usage_source    text           NOT NULL DEFAULT 'upstream' CHECK (usage_source IN ('upstream', 'estimated')),
    -- Exact decimal money: never a float.
    cost            numeric(20, 10) NOT NULL DEFAULT 0,
    latency_ms      integer,
    ttft_ms         integer,
    attempts        smallint       NOT NULL DEFAULT 1,
    status          text           NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
    http_status     smallint,
    error_message   text,
    purpose         text           NOT NULL DEFAULT 'chat',
    PRIMARY KEY (request_id, created_at)
) PARTITION BY RANGE (created_at);

-- For GET /v1/usage: totals by key, model or provider over a time range (each index is created
-- on every partition).
CREATE INDEX request_logs_key_created ON request_logs (key_name, created_at);
CREATE INDEX request_logs_model_created ON request_logs (model_name, created_at);
CREATE INDEX request_logs_provider_created ON request_logs (provider_id, created_at);
