"""Workers that train, evaluate and publish per-company LoRA adapters."""
