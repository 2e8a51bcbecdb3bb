"""A company's context, shared by the agents and the trainer: its memory and sessions folded from their
topics, what recall picks for a task, and the prompt context both build from them. It stands on `topics/`
and `core/`, below every process."""
