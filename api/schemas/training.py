"""Training an adapter: a request (inline examples or the company's history) and its progress and verdict."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, model_validator

from api.schemas.common import Identifier, Request, UtcDatetime, exactly_one
from core.prompts import DECLINE, DONE


class LabelledCall(Request):
    tool: Identifier
    arguments: dict[str, JsonValue]
    result: JsonValue = Field(description="What the tool answered (shown to the model in the next step's prompt).")


class TrainingExample(Request):
    """One labelled record: the right call (`tool`, `arguments`), `tool: "none"` when no tool of the company fits
    it, or `calls` when it takes several (a lookup, then the action with what the lookup returned)."""

    task: str = Field(min_length=1, max_length=2000)
    data: JsonValue
    tool: Identifier | None = None
    arguments: dict[str, JsonValue] | None = None
    calls: list[LabelledCall] | None = Field(default=None, min_length=1, max_length=16, description=(
        "The record's calls in order, each with what its tool answered; the model learns each step and `done` after."))

    @model_validator(mode="after")
    def _one_answer(self) -> TrainingExample:
        exactly_one(self, "tool", "calls",
                    why="give tool (with arguments; tool \"none\" when no tool fits) or calls (exactly one)")
        if self.tool == DECLINE:
            if self.arguments:
                raise ValueError("tool \"none\" (no tool fits) takes no arguments")
        elif self.tool is not None and self.arguments is None:
            raise ValueError("arguments: required with tool")
        names = [self.tool] if self.tool is not None else [c.tool for c in self.calls or ()]
        if DONE in names or (self.calls and DECLINE in names):
            raise ValueError(f"{DONE!r} and {DECLINE!r} are the model's answers, not tools that can be called")
        return self

    def records(self) -> list[dict[str, str]]:
        """The record as the training request carries it: one decision per step, each with the calls before it
        (`steps_json`), `done` after the last call; the steps of one record share a `unit_key`."""
        payload = json.dumps(self.data, allow_nan=False)
        if self.calls is None:
            return [{"task": self.task, "payload_json": payload, "tool_name": str(self.tool),
                     "arguments_json": json.dumps(self.arguments or {}, allow_nan=False)}]
        key = hashlib.sha256(json.dumps([self.task, self.data, [c.model_dump() for c in self.calls]],
                                        sort_keys=True, allow_nan=False).encode()).hexdigest()
        out, steps = [], []
        for call in [*self.calls, None]:
            tool, arguments = (call.tool, call.arguments) if call is not None else (DONE, {})
            out.append({"task": self.task, "payload_json": payload, "tool_name": tool,
                        "arguments_json": json.dumps(arguments, allow_nan=False),
                        "steps_json": json.dumps(steps, allow_nan=False), "unit_key": key})
            if call is not None:
                steps = [*steps, {"tool": call.tool, "arguments": call.arguments, "answer": call.result}]
        return out


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
