-- Adapters per company with their eval metrics; the active one is flagged. The gate scores each kind of task
-- (each tool) on its own: worst_kind_exact is the weakest, kind_exact has them all.
SELECT company_id, version, status, active, base_model, rank,
       eval_metrics['exact_match'] AS exact_match, eval_metrics['json_valid'] AS json_valid,
       eval_metrics['worst_kind_exact'] AS worst_kind_exact,
       mapApply((k, v) -> (substring(k, 12), v), mapFilter((k, v) -> startsWith(k, 'kind_exact:'), eval_metrics)) AS kind_exact,
       created_at, ready_at
FROM lora_adapters
WHERE ({company:String} = '' OR company_id = {company:String})
ORDER BY company_id, created_at
