-- The model a job's steps were decided by (`step_started.model`): with `adapter_version`, read from the step
-- events that know them (`job_accepted` is written before any model is chosen; views/01_company_automation_jobs.sql).
-- And how many of a completed job's units failed (its result counts them): such a job is `partially_failed`.

ALTER TABLE job_facts ADD COLUMN IF NOT EXISTS model String DEFAULT '';
ALTER TABLE job_facts ADD COLUMN IF NOT EXISTS units_failed UInt32 DEFAULT 0;
