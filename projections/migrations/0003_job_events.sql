-- Every event of every job as JSON (the request without its payload), so the REST API can show one job's
-- timeline, units, calls and results by folding its rows (streams/job_state.py), and list a company's jobs
-- including those still queued (a request the agents have not accepted yet).

CREATE TABLE IF NOT EXISTS job_event_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, request_id String, session_id String, task String, event_json String
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, event_id);
