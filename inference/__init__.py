"""The vLLM multi-LoRA server: one base model, one adapter per company, loaded at runtime."""
