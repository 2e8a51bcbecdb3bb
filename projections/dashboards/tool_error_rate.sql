-- Tool-call error rate per tool (per company).
SELECT company_id, tool_name,
       count() AS calls,
       countIf(status = 'failed') AS failed,
       round(countIf(status = 'failed') / count(), 4) AS error_rate,
       round(avg(latency_ms), 1) AS avg_latency_ms
FROM tool_calls
WHERE status != 'requested' AND ({company:String} = '' OR company_id = {company:String})
GROUP BY company_id, tool_name
ORDER BY company_id, error_rate DESC
