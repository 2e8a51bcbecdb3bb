-- Every event of every job as JSON (the request without its payload), so the REST API can show one job's
-- timeline, units, calls and results by folding its rows (streams/job_state.py), and list a company's jobs
-- including those still queued (a request the agents have not accepted yet).

CREATE TABLE IF NOT EXISTS job_event_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, request_id String, session_id String, task String, event_json String
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, event_id);

CREATE VIEW IF NOT EXISTS job_events AS
SELECT company_id, job_id, event_id, event_type, occurred_at, src_topic, src_offset, event_json
FROM job_event_facts FINAL;

CREATE VIEW IF NOT EXISTS job_requests AS
SELECT
    company_id, job_id,
    anyIf(request_id, event_type = 'data_process_requested') AS request_id,
    anyIf(session_id, event_type = 'data_process_requested') AS session_id,
    anyIf(task, event_type IN ('data_process_requested', 'job_accepted')) AS task,
    multiIf(countIf(event_type = 'job_failed') > 0, 'failed',
            countIf(event_type = 'job_completed') > 0, 'completed',
            countIf(event_type NOT IN ('data_process_requested', 'job_accepted')) > 0, 'running',
            countIf(event_type = 'job_accepted') > 0, 'accepted',
            'queued') AS status,
    min(occurred_at) AS requested_at,
    maxIf(occurred_at, event_type IN ('job_completed', 'job_failed')) AS finished_at,
    countIf(event_type = 'tool_call_requested') AS tool_calls
FROM job_event_facts FINAL
GROUP BY company_id, job_id;
