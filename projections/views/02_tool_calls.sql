CREATE OR REPLACE VIEW tool_calls AS
SELECT
    company_id, job_id, call_id, attempt,
    any(tool_name) AS tool_name,
    max(step) AS step,
    multiIf(countIf(event_type = 'tool_call_failed') > 0, 'failed',
            countIf(event_type = 'tool_call_completed') > 0, 'completed',
            'requested') AS status,
    minIf(occurred_at, event_type = 'tool_call_requested') AS requested_at,
    maxIf(occurred_at, event_type != 'tool_call_requested') AS finished_at,
    maxIf(latency_ms, event_type != 'tool_call_requested') AS latency_ms,
    maxIf(status_code, event_type != 'tool_call_requested') AS status_code,
    anyIf(error, event_type = 'tool_call_failed') AS error,
    anyIf(error_kind, event_type = 'tool_call_failed') AS error_kind,
    maxIf(retryable, event_type = 'tool_call_failed') AS retryable
FROM tool_call_facts FINAL
GROUP BY company_id, job_id, call_id, attempt;
