-- Hourly totals of the ledger: what /v1/usage (and budgets, the dashboard) read, so their cost
-- does not grow with the number of requests. The writer adds to them in the same statement that
-- inserts the rows, from the rows that statement really inserted (RETURNING after ON CONFLICT DO
-- NOTHING): a replayed or retried row never counts twice. No key or no provider is '' here
-- (these columns are part of the key). Partitioned by month like request_logs, premade and
-- dropped with it.
CREATE TABLE usage_hourly (
    hour            timestamptz    NOT NULL,
    key_name        text           NOT NULL,
    model_name      text           NOT NULL,
    provider_id     text           NOT NULL,
    purpose         text           NOT NULL,
    requests        bigint         NOT NULL,
    input_tokens    bigint         NOT NULL,
    output_tokens   bigint         NOT NULL,
    cost            numeric(30, 10) NOT NULL,
    PRIMARY KEY (hour, key_name, model_name, provider_id, purpose)
) PARTITION BY RANGE (hour);

-- A partition for every month request_logs has one for, with the same bounds.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'request_logs'::regclass
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_hourly %s',
                       'usage_hourly' || substr(part.name, length('request_logs') + 1), part.bound);
    END LOOP;
END $$;

-- The rows already written.
INSERT INTO usage_hourly (hour, key_name, model_name, provider_id, purpose, requests,
                          input_tokens, output_tokens, cost)
SELECT date_trunc('hour', created_at, 'UTC'), coalesce(key_name, ''), model_name,
       coalesce(provider_id, ''), purpose, count(*), sum(input_tokens), sum(output_tokens), sum(cost)
FROM request_logs
GROUP BY 1, 2, 3, 4, 5;
