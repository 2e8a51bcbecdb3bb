-- One row per training run of a company's adapter, from request to served. Refusals (`adapter_refused`) fold into
-- the run they belong to as status 'refused', with reason and error_kind.
-- Why the gate held a candidate back (`training_rejected`'s reason: which kind of task fell under the floor,
-- or too few held-out examples to score one) is the run's reason too, beside an inference refusal's.
-- A refusal or activation without a request id belongs to the run whose ready event named its version.
CREATE OR REPLACE VIEW lora_adapter_runs AS
SELECT
    company_id,
    any(run_request_id) AS request_id,
    anyIf(version, version != '') AS version,
    multiIf(argMaxIf(event_type, (occurred_at, event_type = 'adapter_refused'),
                     event_type IN ('lora_adapter_ready', 'adapter_refused', 'adapter_activated')) = 'adapter_refused',
            'refused',
            countIf(event_type IN ('lora_adapter_ready', 'adapter_activated')) > 0, 'ready',
            countIf(event_type = 'training_rejected') > 0, 'rejected',
            countIf(event_type = 'training_failed') > 0, 'failed',
            countIf(event_type = 'training_progress') > 0, 'training',
            'requested') AS status,
    anyIf(base_model, base_model != '') AS base_model,
    max(rank) AS rank,
    anyIf(adapter_name, event_type = 'lora_adapter_ready') AS adapter_name,
    anyIf(uri, event_type = 'lora_adapter_ready') AS uri,
    anyIf(dataset_hash, event_type = 'lora_adapter_ready') AS dataset_hash,
    argMaxIf(metrics, occurred_at, event_type IN ('lora_adapter_ready', 'training_rejected')) AS eval_metrics,
    anyIf(baseline_metrics, event_type = 'training_rejected') AS baseline_metrics,
    maxIf(step, event_type = 'training_progress') AS progress_step,
    maxIf(total_steps, event_type = 'training_progress') AS progress_total,
    argMaxIf(loss, step, event_type = 'training_progress') AS last_loss,
    anyIf(error, event_type = 'training_failed') AS error,
    minIf(occurred_at, event_type = 'lora_training_requested') AS created_at,
    maxIf(occurred_at, event_type = 'lora_adapter_ready') AS ready_at,
    argMaxIf(error_kind, occurred_at, event_type IN ('training_failed', 'adapter_refused')) AS error_kind,
    argMaxIf(reason, occurred_at, event_type IN ('training_rejected', 'adapter_refused')) AS reason,
    maxIf(occurred_at, event_type = 'adapter_activated') AS activated_at
FROM (
    SELECT facts.*,
        if(facts.request_id != '', facts.request_id, ifNull(ready.ready_request_id, '')) AS run_request_id,
        if(run_request_id != '', run_request_id, concat('version ', facts.version)) AS run_key
    FROM adapter_facts AS facts FINAL
    LEFT JOIN (
        SELECT company_id AS ready_company_id, version AS ready_version, any(request_id) AS ready_request_id
        FROM adapter_facts FINAL
        WHERE event_type = 'lora_adapter_ready'
        GROUP BY company_id, version
    ) AS ready ON facts.company_id = ready.ready_company_id AND facts.version = ready.ready_version
)
GROUP BY company_id, run_key;
