-- Endpoints priced by what they do rather than by tokens (DESIGN.md §5 "Other endpoints"): a
-- row carries the units the upstream reported or the gateway counted (`searches` for rerank,
-- `images` for image generations; audio seconds and characters to come) and their kind. NULL for rows priced by tokens
-- only. Nullable columns without defaults: catalogue changes on tables of any size.
ALTER TABLE request_logs
    ADD COLUMN units numeric(20, 6),
    ADD COLUMN unit  text;

-- The control plane's models may be of the other types.
ALTER TABLE models DROP CONSTRAINT IF EXISTS models_type_check;
ALTER TABLE models ADD CONSTRAINT models_type_check
    CHECK (type IN ('chat', 'embedding', 'rerank', 'moderation', 'image'));
