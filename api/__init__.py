"""The public REST API of cda (`cda api serve`): every write is an event, every read is scoped to the caller's company."""
