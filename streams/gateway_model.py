"""The model, as the agents ask it: through the inference gateway with the call schema, so the answer is a
call to one of the company's tools or is recorded as invalid with its raw text (never executed)."""

from __future__ import annotations

from typing import Any

from core.errors import is_transient
from inference.client import InferenceClient
from inference.errors import InferenceError
from streams.agent_loop import Decision

MAX_CALL_TOKENS = 256


class GatewayModel:
    def __init__(self, client: InferenceClient, max_tokens: int = MAX_CALL_TOKENS) -> None:
        self.client = client
        self.max_tokens = max_tokens

    async def decide(self, company_id: str, prompt: str, schema: dict[str, Any], use_adapter: bool) -> Decision:
        try:
            answer = await self.client.complete(company_id, prompt, self.max_tokens, schema, use_adapter=use_adapter)
        except InferenceError as exc:
            if is_transient(exc):
                raise  # the job waits for the gateway to come back
            return Decision(False, None, None, "", "", None, f"inference refused the request: {exc}")
        checked = answer.tool_call
        call = (checked.arguments if checked else None) or {}
        tool, arguments = call.get("tool"), call.get("arguments")
        valid = bool(checked and checked.valid) and isinstance(tool, str) and isinstance(arguments, dict)
        return Decision(valid, tool if valid else None, arguments if valid else None, answer.text, answer.model,
                        answer.adapter_version, "" if valid else ((checked.error if checked else None) or "not a call"))
