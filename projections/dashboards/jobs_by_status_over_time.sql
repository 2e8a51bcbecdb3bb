-- Jobs by status over time: jobs accepted per minute, split by their current status.
SELECT toStartOfMinute(accepted_at) AS t, status, count() AS jobs
FROM company_automation_jobs
WHERE ({company:String} = '' OR company_id = {company:String})
GROUP BY t, status
ORDER BY t, status
