CREATE OR REPLACE VIEW company_automation_jobs AS
SELECT
    company_id, job_id,
    anyIf(request_id, event_type = 'job_accepted') AS request_id,
    anyIf(task, event_type = 'job_accepted') AS task,
    multiIf(countIf(event_type = 'job_failed') > 0, 'failed',
            maxIf(units_failed, event_type = 'job_completed') > 0, 'partially_failed',
            countIf(event_type = 'job_completed') > 0, 'completed',
            countIf(event_type != 'job_accepted') > 0, 'running',
            'accepted') AS status,
    minIf(occurred_at, event_type = 'job_accepted') AS accepted_at,
    maxIf(occurred_at, event_type IN ('job_completed', 'job_failed')) AS finished_at,
    max(occurred_at) AS updated_at,
    countIf(event_type = 'step_started') AS steps,
    countIf(event_type = 'tool_call_requested') AS tool_calls,
    countIf(event_type = 'tool_call_failed') AS tool_call_failures,
    -- the latest step's model and adapter: a job is accepted before any model is chosen, and an adapter
    -- activated mid-job serves the steps after it
    argMaxIf(adapter_version, occurred_at, event_type = 'step_started' AND isNotNull(adapter_version)) AS adapter_version,
    argMaxIf(model, occurred_at, event_type = 'step_started') AS model,
    maxIf(latency_ms, event_type IN ('job_completed', 'job_failed')) AS latency_ms,
    anyIf(error, event_type = 'job_failed') AS error,
    anyIf(error_kind, event_type = 'job_failed') AS error_kind
FROM job_facts FINAL
GROUP BY company_id, job_id;
