-- p50/p95 job latency per company over finished jobs.
SELECT company_id,
       count() AS finished_jobs,
       round(quantile(0.5)(latency_ms), 1) AS p50_ms,
       round(quantile(0.95)(latency_ms), 1) AS p95_ms
FROM company_automation_jobs
WHERE status IN ('completed', 'partially_failed', 'failed') AND ({company:String} = '' OR company_id = {company:String})
GROUP BY company_id
ORDER BY company_id
