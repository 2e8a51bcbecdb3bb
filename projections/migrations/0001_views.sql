-- Facts tables: one row per source event, deduplicated by event id (ReplacingMergeTree + FINAL),
-- each carrying its source topic/partition/offset. The public views fold them per entity.

CREATE TABLE IF NOT EXISTS job_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, request_id String, task String, adapter_version Nullable(String),
    step Int32, latency_ms Float64, error String, error_kind LowCardinality(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, event_id);

CREATE VIEW IF NOT EXISTS company_automation_jobs AS
SELECT
    company_id, job_id,
    anyIf(request_id, event_type = 'job_accepted') AS request_id,
    anyIf(task, event_type = 'job_accepted') AS task,
    multiIf(countIf(event_type = 'job_failed') > 0, 'failed',
            countIf(event_type = 'job_completed') > 0, 'completed',
            countIf(event_type != 'job_accepted') > 0, 'running',
            'accepted') AS status,
    minIf(occurred_at, event_type = 'job_accepted') AS accepted_at,
    maxIf(occurred_at, event_type IN ('job_completed', 'job_failed')) AS finished_at,
    max(occurred_at) AS updated_at,
    countIf(event_type = 'step_started') AS steps,
    countIf(event_type = 'tool_call_requested') AS tool_calls,
    countIf(event_type = 'tool_call_failed') AS tool_call_failures,
    anyIf(adapter_version, event_type = 'job_accepted') AS adapter_version,
    maxIf(latency_ms, event_type IN ('job_completed', 'job_failed')) AS latency_ms,
    anyIf(error, event_type = 'job_failed') AS error,
    anyIf(error_kind, event_type = 'job_failed') AS error_kind
FROM job_facts FINAL
GROUP BY company_id, job_id;

CREATE TABLE IF NOT EXISTS tool_call_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, call_id String, attempt UInt16, step Int32, tool_name String,
    status_code Nullable(Int32), latency_ms Float64, error String, error_kind LowCardinality(String), retryable UInt8
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, call_id, attempt, event_id);

CREATE VIEW IF NOT EXISTS tool_calls AS
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

CREATE TABLE IF NOT EXISTS tool_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    tool_name String, description String, method LowCardinality(String), url String,
    parameters_schema_json String, secret_ref Nullable(String), timeout_ms Int32, reason Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, tool_name, event_id);

CREATE VIEW IF NOT EXISTS company_tools AS
SELECT
    company_id, tool_name,
    argMax(description, v) AS description,
    argMax(method, v) AS method,
    argMax(url, v) AS url,
    argMax(parameters_schema_json, v) AS parameters_schema_json,
    argMax(secret_ref, v) AS secret_ref,
    argMax(timeout_ms, v) AS timeout_ms,
    max(occurred_at) AS updated_at
FROM (SELECT *, (occurred_at, src_offset) AS v FROM tool_facts FINAL)
GROUP BY company_id, tool_name
HAVING argMax(event_type, v) = 'tool_registered';

CREATE TABLE IF NOT EXISTS adapter_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    request_id String, version String, adapter_name String, base_model String, rank Nullable(Int32),
    dataset_hash String, uri String, metrics Map(String, Float64), baseline_metrics Map(String, Float64),
    step Int32, total_steps Int32, loss Nullable(Float64), error String
) ENGINE = ReplacingMergeTree ORDER BY (company_id, request_id, event_id);

CREATE VIEW IF NOT EXISTS lora_adapter_runs AS
SELECT
    company_id, request_id,
    anyIf(version, version != '') AS version,
    multiIf(countIf(event_type = 'lora_adapter_ready') > 0, 'ready',
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
    maxIf(occurred_at, event_type = 'lora_adapter_ready') AS ready_at
FROM adapter_facts FINAL
GROUP BY company_id, request_id;

-- The active version of a company is its newest ready adapter.
CREATE VIEW IF NOT EXISTS lora_adapters AS
SELECT *,
    status = 'ready' AND ready_at = max(if(status = 'ready', ready_at, toDateTime64(0, 3, 'UTC')))
        OVER (PARTITION BY company_id) AS active
FROM lora_adapter_runs;

CREATE TABLE IF NOT EXISTS memory_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    entry_id String, session_id Nullable(String), kind LowCardinality(String), content String,
    tags Array(String), source_job_id Nullable(String), reason Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, entry_id, event_id);

CREATE VIEW IF NOT EXISTS company_memory AS
SELECT
    company_id, entry_id,
    argMax(session_id, v) AS session_id,
    argMax(kind, v) AS kind,
    argMax(content, v) AS content,
    argMax(tags, v) AS tags,
    argMax(source_job_id, v) AS source_job_id,
    max(occurred_at) AS updated_at
FROM (SELECT *, (occurred_at, src_offset) AS v FROM memory_facts FINAL)
GROUP BY company_id, entry_id
HAVING argMax(event_type, v) = 'memory_written';
