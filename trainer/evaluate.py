"""Evaluation through the serving path: the adapter is loaded into the vLLM server and asked each held-out
task with guided decoding, exactly as the agents will ask it. Exact tool-call accuracy (tool name and
arguments) and JSON validity are measured for a candidate and for the company's current model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema

from cda.prompts import ToolSpec, call_schema, parse_call, render_prompt
from trainer.examples import Example


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


async def _ask(http: httpx.AsyncClient, model: str, example: Example, tools: list[ToolSpec],
               schema: dict[str, Any], max_tokens: int) -> tuple[bool, bool]:
    body = {"model": model, "prompt": render_prompt(example.task, example.payload_json, tools),
            "max_tokens": max_tokens, "temperature": 0, "structured_outputs": {"json": schema}}
    response = await http.post("/v1/completions", json=body)
    response.raise_for_status()
    text = response.json()["choices"][0]["text"]
    call = parse_call(text)
    if call is None:
        return False, False
    tool = next((t for t in tools if t.name == call[0]), None)
    valid = tool is not None and jsonschema.Draft202012Validator(tool.parameters).is_valid(call[1])
    exact = call[0] == example.tool_name and _same(call[1], example.arguments)
    return exact, valid


async def _evaluate(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int,
                    concurrency: int) -> dict[str, float]:
    schema = call_schema(tools)
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async def one(example: Example) -> tuple[bool, bool]:
            async with slots:
                return await _ask(http, model, example, tools, schema, max_tokens)

        results = await asyncio.gather(*(one(e) for e in examples))
    n = max(len(results), 1)
    return {"exact_match": sum(e for e, _ in results) / n, "json_valid": sum(v for _, v in results) / n,
            "eval_examples": float(len(results))}


def evaluate(url: str, model: str, examples: list[Example], tools: list[ToolSpec], max_tokens: int = 128,
             concurrency: int = 8) -> dict[str, float]:
    """exact_match and json_valid of `model` (an adapter name or the base) on `examples`."""
    return asyncio.run(_evaluate(url, model, examples, tools, max_tokens, concurrency))
