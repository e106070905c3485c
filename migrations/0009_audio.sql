-- Audio models (DESIGN.md §3, §5 "Other endpoints"): the control plane's models may be
-- transcription and speech models too. Rows of audio requests carry `units` in `seconds` or
-- `characters` (0008's columns).
ALTER TABLE models DROP CONSTRAINT IF EXISTS models_type_check;
ALTER TABLE models ADD CONSTRAINT models_type_check
    CHECK (type IN ('chat', 'embedding', 'rerank', 'moderation', 'image', 'transcription', 'speech'));
