"""Per-adapter request counts and latencies, exported in Prometheus text format on `/metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class InferenceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cda_inference_requests", "Completions per served model and outcome.",
                                ["model", "outcome"], registry=self.registry)
        self.latency = Histogram("cda_inference_latency_seconds", "Completion latency per served model.",
                                 ["model"], buckets=_BUCKETS, registry=self.registry)

    def observe(self, model: str, outcome: str, seconds: float) -> None:
        self.requests.labels(model=model, outcome=outcome).inc()
        self.latency.labels(model=model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
