CREATE OR REPLACE VIEW company_tools AS
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
