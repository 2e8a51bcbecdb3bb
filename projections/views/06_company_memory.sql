CREATE OR REPLACE VIEW company_memory AS
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
