-- Adapters per company with their eval metrics; the active one is flagged.
SELECT company_id, version, status, active, base_model, rank,
       eval_metrics['exact_match'] AS exact_match, eval_metrics['json_valid'] AS json_valid,
       created_at, ready_at
FROM lora_adapters
WHERE ({company:String} = '' OR company_id = {company:String})
ORDER BY company_id, created_at
