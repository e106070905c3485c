-- Audio models (DESIGN.md §3, §5 "Other endpoints"): the control plane's models may be
-- transcription and speech models too. Rows of audio requests carry `units` in `seconds` or
-- `characters` (0008's columns).
ALTER TABLE models DROP CONSTRAINT IF EXISTS models_type_check;
ALTER TABLE models ADD CONSTRAINT models_type_check
    CHECK (type IN ('chat', 'embedding', 'rerank', 'moderation', 'image', 'transcription', 'speech'));

-- The hourly totals sum the units of their rows. One (key, model, provider, purpose) has one
-- unit (a model's purpose says which), so the sum is of like with like. Rows written before
-- this migration keep their units in request_logs only (0008 shipped days before it).
ALTER TABLE usage_hourly
    ADD COLUMN units numeric(30, 6) NOT NULL DEFAULT 0;

-- The control plane's models carry unit prices too (config: models[].price.per_*).
ALTER TABLE models
    ADD COLUMN per_1k_searches numeric(20, 9) CHECK (per_1k_searches >= 0),
    ADD COLUMN per_image       numeric(20, 9) CHECK (per_image >= 0),
    ADD COLUMN per_minute      numeric(20, 9) CHECK (per_minute >= 0),
    ADD COLUMN per_1m_chars    numeric(20, 9) CHECK (per_1m_chars >= 0);
