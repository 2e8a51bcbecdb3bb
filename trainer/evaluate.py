"""Evaluation through the serving path: the adapter is loaded into the vLLM server and asked each held-out
task with guided decoding through the inference client (`inference.vllm_api.AsyncVllmApi`), exactly as the
agents will ask it. Exact tool-call accuracy (tool name and arguments) and JSON validity are measured for a
candidate and for the company's current model.

A server that is down, overloaded or restarted (it forgot the adapter: 404) is an outage, not a verdict:
each question is retried under `core.retry`, and what is still failing becomes `InferenceUnavailable`
(transient), so the trainer commits nothing and asks again when vLLM is back. Asking twice is harmless
here (nothing is executed), so read timeouts are retried too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from core.grounding import NO_GROUNDING, Grounding, narrow
from core.json_schemas import is_valid
from core.prompts import ANSWERS, ToolSpec, call_schema, parse_call, parse_prompt, render, same_call
from core.retry import RetryPolicy
from inference.errors import CompletionRefused, InferenceUnavailable
from inference.vllm_api import AsyncVllmApi
from trainer.errors import TrainerError
from trainer.examples import Example

KIND_EXACT = "kind_exact:"
KIND_EXAMPLES = "kind_examples:"
DEFAULT_POLICY = RetryPolicy(attempts=4, deadline_s=120.0, backoff_s=0.5, max_backoff_s=5.0)


class EvaluationError(TrainerError):
    """vLLM refused an evaluation request for a reason that retrying cannot change (a 4xx other than 404)."""


async def _ask(api: AsyncVllmApi, model: str, example: Example, tools: list[ToolSpec], max_tokens: int,
               grounding: Grounding) -> tuple[str, dict[str, Any]] | None:
    """The call `model` answers to `example` (None when its answer is not a call), under the schema the agents
    give that step, narrowed by the model's grounding rules as the gateway narrows it."""
    prompt = render(example.context(tools))  # narrowed from the prompt's text, exactly as the gateway does
    try:
        completion = await api.complete(model, prompt, max_tokens,
                                        narrow(call_schema(tools, example.first_step), parse_prompt(prompt), grounding))
    except CompletionRefused as exc:
        raise EvaluationError(f"vLLM refused the evaluation of {model}: {exc}") from exc
    except InferenceUnavailable as exc:  # down, overloaded, or it lost the adapter (a restart): asked again later
        raise InferenceUnavailable(f"vLLM did not answer the evaluation of {model}: {exc}") from exc
    return parse_call(completion.text)


def score(call: tuple[str, dict[str, Any]] | None, example: Example, tools: list[ToolSpec]) -> tuple[bool, bool]:
    """(exact, valid): the right tool with exactly the right arguments; a call that fits its tool's schema."""
    if call is None:
        return False, False
    tool = next((t for t in tools if t.name == call[0]), None)
    valid = (call[0] in ANSWERS and call[1] == {}) or (
        tool is not None and is_valid(tool.parameters, call[1]))
    return same_call(call[0], call[1], example.tool_name, example.arguments), valid


async def _answers(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int,
                   concurrency: int, policy: RetryPolicy, grounding: Grounding
                   ) -> list[tuple[str, dict[str, Any]] | None]:
    api = AsyncVllmApi(url, concurrency=concurrency, policy=policy, idempotent=True)
    try:
        return list(await asyncio.gather(*(_ask(api, model, e, tools, max_tokens, grounding) for e in examples)))
    finally:
        await api.close()


def answers(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int = 128,
            concurrency: int = 8, policy: RetryPolicy = DEFAULT_POLICY, grounding: Grounding = NO_GROUNDING
            ) -> list[tuple[str, dict[str, Any]] | None]:
    """The call `model` makes for each example, asked as the agents ask (guided decoding, temperature 0)."""
    return asyncio.run(_answers(url, model, examples, tools, max_tokens, concurrency, policy, grounding))


def evaluate(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int = 128,
             concurrency: int = 8, policy: RetryPolicy = DEFAULT_POLICY, grounding: Grounding = NO_GROUNDING
             ) -> dict[str, float]:
    """exact_match and json_valid of `model` (an adapter name or the base) on `examples`, and the exact match of
    each kind of task (`kind_exact:<tool>`, over `kind_examples:<tool>` examples) with the worst of them.

    Raises `InferenceUnavailable` (transient) when vLLM cannot be reached within `policy`."""
    calls = answers(url, model, examples, tools, max_tokens, concurrency, policy, grounding)
    results = [score(call, example, tools) for call, example in zip(calls, examples, strict=True)]
    n = max(len(results), 1)
    metrics = {"exact_match": sum(e for e, _ in results) / n, "json_valid": sum(v for _, v in results) / n,
               "eval_examples": float(len(results))}
    return {**metrics, **by_kind(examples, [e for e, _ in results])}


def by_kind(examples: list[Example], exact: list[bool]) -> dict[str, float]:
    """Exact match per kind of task (the tool of the right call): a mean can hide a kind the adapter gets wrong."""
    hits: dict[str, list[bool]] = {}
    for example, right in zip(examples, exact, strict=True):
        hits.setdefault(example.tool_name, []).append(right)
    out: dict[str, float] = {}
    for kind, scored in sorted(hits.items()):
        out[f"{KIND_EXACT}{kind}"] = sum(scored) / len(scored)
        out[f"{KIND_EXAMPLES}{kind}"] = float(len(scored))
    if hits:
        out["worst_kind_exact"] = min(v for k, v in out.items() if k.startswith(KIND_EXACT))
    return out


def kinds(metrics: dict[str, float]) -> dict[str, tuple[float, int]]:
    """{kind: (exact match, examples)} from metrics written by `evaluate`."""
    return {k.removeprefix(KIND_EXACT): (v, int(metrics.get(f"{KIND_EXAMPLES}{k.removeprefix(KIND_EXACT)}", 0)))
            for k, v in metrics.items() if k.startswith(KIND_EXACT)}
