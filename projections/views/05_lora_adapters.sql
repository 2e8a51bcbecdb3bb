-- One truth of "the active adapter": the version named by the company's latest `adapter_activated`
-- (topic company_adapters: what the inference server serves), not the newest ready one.
-- `active`: this run's version is the one the company's latest activation names (a rollback is an
-- activation of an earlier version, so it moves `active` back).
CREATE OR REPLACE VIEW lora_adapters AS
SELECT runs.*, runs.version != '' AND ifNull(runs.version = served.active_version, 0) AS active
FROM lora_adapter_runs AS runs
LEFT JOIN (
    SELECT company_id, argMax(version, (occurred_at, src_offset)) AS active_version
    FROM adapter_facts FINAL
    WHERE event_type = 'adapter_activated'
    GROUP BY company_id
) AS served ON runs.company_id = served.company_id;
