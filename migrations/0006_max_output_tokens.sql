-- A control-plane model's output cap (DESIGN.md §3 `max_output_tokens`): sent upstream as
-- `max_tokens` where a client sets none and the upstream needs one (Anthropic's Messages API).
-- NULL: the gateway's default (4096). A nullable column without a default is a catalogue change.

ALTER TABLE models
    ADD COLUMN max_output_tokens integer CHECK (max_output_tokens > 0);
