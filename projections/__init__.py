"""ClickHouse views folded from the topics: idempotent, and rebuildable by replay."""
