"""Evaluation through the serving path: the adapter is loaded into the vLLM server and asked each held-out
task with guided decoding, exactly as the agents will ask it. Exact tool-call accuracy (tool name and
arguments) and JSON validity are measured for a candidate and for the company's current model.

A server that is down, overloaded or restarted (it forgot the adapter: 404) is an outage, not a verdict:
each question is retried under `core.retry`, and what is still failing becomes `InferenceUnavailable`
(transient), so the trainer commits nothing and asks again when vLLM is back. Asking twice is harmless
here (nothing is executed), so read timeouts are retried too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jsonschema

from core.prompts import ToolSpec, call_schema, parse_call, render, same_call
from core.retry import RetryPolicy, http_transient, raise_for_retry
from inference.errors import InferenceUnavailable
from trainer.errors import TrainerError
from trainer.examples import Example

KIND_EXACT = "kind_exact:"
KIND_EXAMPLES = "kind_examples:"
DEFAULT_POLICY = RetryPolicy(attempts=4, deadline_s=120.0, backoff_s=0.5, max_backoff_s=5.0)


class EvaluationError(TrainerError):
    """vLLM refused an evaluation request for a reason that retrying cannot change (a 4xx other than 404)."""


async def _ask(http: httpx.AsyncClient, model: str, example: Example, tools: list[ToolSpec],
               schema: dict[str, Any], max_tokens: int, policy: RetryPolicy) -> tuple[str, dict[str, Any]] | None:
    """The call `model` answers to `example` (None when its answer is not a call)."""
    body = {"model": model, "prompt": render(example.context(tools)),
            "max_tokens": max_tokens, "temperature": 0, "structured_outputs": {"json": schema}}

    async def attempt(remaining_s: float) -> httpx.Response:
        return raise_for_retry(await http.post("/v1/completions", json=body, timeout=remaining_s))

    try:
        response = await policy.call_async(attempt, retry_if=http_transient(resend_after_read_timeout=True))
    except Exception as exc:
        if not _is_retryable(exc):
            raise
        raise InferenceUnavailable(f"vLLM at {http.base_url} did not answer the evaluation of {model}: {exc}") from exc
    if response.status_code == 404:  # the server lost the adapter (a restart): load it again on the next try
        raise InferenceUnavailable(f"vLLM at {http.base_url} does not know {model} (restarted?): {response.text[:200]}")
    if response.status_code != 200:
        raise EvaluationError(f"vLLM refused the evaluation of {model}: HTTP {response.status_code}: {response.text[:300]}")
    return parse_call(response.json()["choices"][0]["text"])


def score(call: tuple[str, dict[str, Any]] | None, example: Example, tools: list[ToolSpec]) -> tuple[bool, bool]:
    """(exact, valid): the right tool with exactly the right arguments; a call that fits its tool's schema."""
    if call is None:
        return False, False
    tool = next((t for t in tools if t.name == call[0]), None)
    valid = tool is not None and jsonschema.Draft202012Validator(tool.parameters).is_valid(call[1])
    return same_call(call[0], call[1], example.tool_name, example.arguments), valid


def _is_retryable(exc: BaseException) -> bool:
    return http_transient(resend_after_read_timeout=True)(exc)


async def _answers(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int,
                   concurrency: int, policy: RetryPolicy) -> list[tuple[str, dict[str, Any]] | None]:
    schema = call_schema(tools)
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=policy.deadline_s) as http:
        async def one(example: Example) -> tuple[str, dict[str, Any]] | None:
            async with slots:
                return await _ask(http, model, example, tools, schema, max_tokens, policy)

        return list(await asyncio.gather(*(one(e) for e in examples)))


def answers(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int = 128,
            concurrency: int = 8, policy: RetryPolicy = DEFAULT_POLICY) -> list[tuple[str, dict[str, Any]] | None]:
    """The call `model` makes for each example, asked as the agents ask (guided decoding, temperature 0)."""
    return asyncio.run(_answers(url, model, examples, tools, max_tokens, concurrency, policy))


def evaluate(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int = 128,
             concurrency: int = 8, policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, float]:
    """exact_match and json_valid of `model` (an adapter name or the base) on `examples`, and the exact match of
    each kind of task (`kind_exact:<tool>`, over `kind_examples:<tool>` examples) with the worst of them.

    Raises `InferenceUnavailable` (transient) when vLLM cannot be reached within `policy`."""
    calls = answers(url, model, examples, tools, max_tokens, concurrency, policy)
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
