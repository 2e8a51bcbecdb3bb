-- Job-level truth: where the request said which calls are right (`expected` on POST /process), the job's results
-- say whether every unit's call was; the listing shows it beside the status (NULL where nothing was expected).
CREATE OR REPLACE VIEW job_requests AS
SELECT
    company_id, job_id,
    anyIf(request_id, event_type = 'data_process_requested') AS request_id,
    anyIf(session_id, event_type = 'data_process_requested') AS session_id,
    anyIf(task, event_type IN ('data_process_requested', 'job_accepted')) AS task,
    multiIf(countIf(event_type = 'job_failed') > 0, 'failed',
            maxIf(JSONExtractUInt(JSONExtractString(event_json, 'result_json'), 'failed'),
                  event_type = 'job_completed') > 0, 'partially_failed',
            countIf(event_type = 'job_completed') > 0, 'completed',
            countIf(event_type NOT IN ('data_process_requested', 'job_accepted')) > 0, 'running',
            countIf(event_type = 'job_accepted') > 0, 'accepted',
            'queued') AS status,
    min(occurred_at) AS requested_at,
    maxIf(occurred_at, event_type IN ('job_completed', 'job_failed')) AS finished_at,
    countIf(event_type = 'tool_call_requested') AS tool_calls,
    anyIf(JSONExtract(JSONExtractString(event_json, 'result_json'), 'right', 'Nullable(Bool)'),
          event_type = 'job_completed') AS right
FROM job_event_facts FINAL
GROUP BY company_id, job_id;
