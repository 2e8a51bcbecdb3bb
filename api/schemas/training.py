"""Training an adapter: a request (inline examples or the company's history) and its progress and verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue, model_validator

from api.schemas.common import Identifier, Request, UtcDatetime


class TrainingExample(Request):
    task: str = Field(min_length=1, max_length=2000)
    data: JsonValue
    tool: Identifier
    arguments: dict[str, JsonValue]


class TrainAdapterRequest(Request):
    examples: list[TrainingExample] | None = Field(default=None, min_length=1, max_length=50_000)
    training_data: list[TrainingExample] | None = Field(default=None, min_length=1, max_length=50_000, description=(
        "The seed's name for `examples` (the same labelled records); give one of the two."))
    company_id: Identifier | None = Field(default=None, description="The key's company, where the caller names it "
                                          "(403 when it names another).")
    from_history: bool = Field(default=False, description="Train on the company's completed jobs instead.")
    method: Literal["LORA", "QLORA"] = "LORA"
    allow_fallback: bool = Field(default=True, description="QLORA without CUDA falls back to LORA (else it fails).")
    force: bool = Field(default=False, description="Announce the adapter even if it does not beat the current one.")
    rank: int | None = Field(default=None, ge=1, le=1024, description="LoRA rank (at most the server's maximum).")
    steps: int | None = Field(default=None, ge=1, le=10_000_000, description="Training steps (at most the trainer's).")
    learning_rate: float | None = Field(default=None, gt=0, le=1.0)
    max_examples: int | None = Field(default=None, ge=1, le=100_000_000)

    @model_validator(mode="after")
    def _one_source(self) -> TrainAdapterRequest:
        if self.training_data is not None:
            if self.examples is not None:
                raise ValueError("give examples or training_data, not both (they are the same records)")
            self.examples, self.training_data = self.training_data, None
        if (self.examples is None) == (not self.from_history):
            raise ValueError("give examples or from_history: true (exactly one)")
        return self


class TrainingAccepted(BaseModel):
    request_id: str
    status: Literal["requested"]
    url: str


class TrainingPublic(BaseModel):
    request_id: str
    status: Literal["requested", "training", "failed", "rejected", "ready", "refused"] = Field(
        description="ready: the gate passed and the adapter was announced; rejected: the gate kept the current one; "
                    "refused: the inference server would not load it.")
    version: str | None = None
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="The candidate's evaluation.")
    baseline_metrics: dict[str, float] = Field(default_factory=dict, description="What it was compared with (the gate).")
    gate: Literal["pending", "passed", "rejected"] = "pending"
    error: str = ""
    error_kind: str = ""
    reason: str = ""
    active: bool = False
    created_at: UtcDatetime | None = None
    ready_at: UtcDatetime | None = None
