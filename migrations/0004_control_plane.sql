-- The control plane (DESIGN.md §5): models, routing rules (seed spec 003's shape) and gateway
-- keys, shared live by every replica. A change to any of them bumps control_state.generation
-- and notifies channel switchyard_control in the same transaction, whoever made it (the admin
-- API, `switchyard keys`, or an operator's psql): replicas re-read on the notification, and
-- compare the generation on their periodic resync for notifications they missed.

-- One row: the change counter, and whether the config file has seeded the tables yet (it does
-- once; from then on the tables are the source of truth, even when emptied).
CREATE TABLE control_state (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  bigint      NOT NULL DEFAULT 0,
    seeded_at   timestamptz
);
INSERT INTO control_state DEFAULT VALUES;

CREATE TABLE models (
    name            text        PRIMARY KEY CHECK (name <> ''),
    type            text        NOT NULL DEFAULT 'chat' CHECK (type IN ('chat', 'embedding')),
    context_window  integer     CHECK (context_window > 0),
    input_per_1m    numeric(20, 9) CHECK (input_per_1m >= 0),
    output_per_1m   numeric(20, 9) CHECK (output_per_1m >= 0),
    tokenizer       text        CHECK (tokenizer IN ('o200k_base', 'cl100k_base', 'o200k_harmony')),
    -- clock_timestamp(): rows seeded in one transaction keep the config's order.
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((input_per_1m IS NULL) = (output_per_1m IS NULL))
);

CREATE TABLE routing_rules (
    id              bigserial   PRIMARY KEY,
    model_name      text        NOT NULL REFERENCES models (name) ON DELETE CASCADE ON UPDATE CASCADE,
    provider_id     text        NOT NULL CHECK (provider_id <> ''),
    upstream_model  text        NOT NULL CHECK (upstream_model <> ''),
    priority        integer     NOT NULL DEFAULT 1 CHECK (priority >= 0),
    weight          integer     NOT NULL DEFAULT 1 CHECK (weight >= 1),
    max_rps         integer     CHECK (max_rps > 0),
    is_enabled      boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX routing_rules_model ON routing_rules (model_name);

-- Keys are kept as their SHA-256 only, with a short prefix for humans. A rotated key keeps its
-- old digest until previous_valid_until.
CREATE TABLE api_keys (
    name                  text        PRIMARY KEY CHECK (name <> ''),
    key_sha256            bytea       NOT NULL UNIQUE CHECK (octet_length(key_sha256) = 32),
    prefix                text        NOT NULL,
    is_admin              boolean     NOT NULL DEFAULT false,
    models                text[],
    rpm                   integer     CHECK (rpm > 0),
    tpm                   integer     CHECK (tpm > 0),
    budget_usd            numeric(30, 10) CHECK (budget_usd >= 0),
    budget_period         text        CHECK (budget_period IN ('day', 'month')),
    expires_at            timestamptz,
    revoked_at            timestamptz,
    previous_sha256       bytea       CHECK (octet_length(previous_sha256) = 32),
    previous_valid_until  timestamptz,
    created_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((budget_usd IS NULL) = (budget_period IS NULL))
);

CREATE FUNCTION switchyard_control_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE control_state SET generation = generation + 1;
    PERFORM pg_notify('switchyard_control', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_control_changed();
CREATE TRIGGER routing_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON routing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_control_changed();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_control_changed();
