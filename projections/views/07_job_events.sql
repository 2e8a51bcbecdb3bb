CREATE OR REPLACE VIEW job_events AS
SELECT company_id, job_id, event_id, event_type, occurred_at, src_topic, src_offset, event_json
FROM job_event_facts FINAL;
