-- Rows a deleted company leaves: `ALTER TABLE ... DELETE` writes new parts without them, and the old parts (which
-- still hold the rows) are removed from disk within seconds instead of ClickHouse's default eight minutes. The
-- tables are rebuildable from the topics, so the crash margin those old parts give is not needed.

ALTER TABLE job_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE tool_call_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE tool_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE adapter_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE memory_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE job_event_facts MODIFY SETTING old_parts_lifetime = 1, cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
