-- An adapter run's refusal (`adapter_refused`) carries its reason and error kind (views/04_lora_adapter_runs.sql).

ALTER TABLE adapter_facts ADD COLUMN IF NOT EXISTS error_kind LowCardinality(String) DEFAULT '';
ALTER TABLE adapter_facts ADD COLUMN IF NOT EXISTS reason String DEFAULT '';
