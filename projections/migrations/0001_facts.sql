-- Facts tables: one row per source event, deduplicated by event id (ReplacingMergeTree + FINAL),
-- each carrying its source topic/partition/offset. The public views (projections/views/) fold them per
-- entity.

CREATE TABLE IF NOT EXISTS job_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, request_id String, task String, adapter_version Nullable(String),
    step Int32, latency_ms Float64, error String, error_kind LowCardinality(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, event_id);

CREATE TABLE IF NOT EXISTS tool_call_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    job_id String, call_id String, attempt UInt16, step Int32, tool_name String,
    status_code Nullable(Int32), latency_ms Float64, error String, error_kind LowCardinality(String), retryable UInt8
) ENGINE = ReplacingMergeTree ORDER BY (company_id, job_id, call_id, attempt, event_id);

CREATE TABLE IF NOT EXISTS tool_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    tool_name String, description String, method LowCardinality(String), url String,
    parameters_schema_json String, secret_ref Nullable(String), timeout_ms Int32, reason Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, tool_name, event_id);

CREATE TABLE IF NOT EXISTS adapter_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    request_id String, version String, adapter_name String, base_model String, rank Nullable(Int32),
    dataset_hash String, uri String, metrics Map(String, Float64), baseline_metrics Map(String, Float64),
    step Int32, total_steps Int32, loss Nullable(Float64), error String
) ENGINE = ReplacingMergeTree ORDER BY (company_id, request_id, event_id);

CREATE TABLE IF NOT EXISTS memory_facts (
    src_topic LowCardinality(String), src_partition UInt32, src_offset UInt64,
    event_id UUID, event_type LowCardinality(String), company_id String,
    occurred_at DateTime64(3, 'UTC'), stored_at DateTime64(3, 'UTC') DEFAULT now64(3),
    entry_id String, session_id Nullable(String), kind LowCardinality(String), content String,
    tags Array(String), source_job_id Nullable(String), reason Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (company_id, entry_id, event_id);
