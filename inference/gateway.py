"""The inference gateway: routes a company's request to its active adapter (or the base model, and says
so) on the company's vLLM server (`inference.backends`; the next one when it does not answer), asks for
schema-constrained JSON when a tool schema is given, validates the result, and keeps per-adapter metrics.
Readiness means a vLLM server answers, each company's server serves its adapter, and the workers behind the
gateway are alive."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import jsonschema
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from core.grounding import narrow
from core.prompts import parse_prompt
from core.workers import WorkerThread
from inference.backends import Backend, Backends
from inference.candidates import CandidateRequest, CandidateStage
from inference.completion import CompletionPublic, ToolCallPublic
from inference.errors import AdapterInvalid, CompletionRefused, InferenceUnavailable
from inference.metrics import InferenceMetrics
from inference.routing import ActiveAdapter, AdapterRouter
from inference.tool_calls import check_schema, parse_tool_call
from inference.vllm_api import AsyncVllmApi, Completion, VllmApi


class CompletionRequest(BaseModel):
    company_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    prompt: str = Field(min_length=1, max_length=200_000)
    max_tokens: int = Field(default=128, ge=1, le=4096)
    json_schema: dict[str, Any] | None = Field(default=None, description="Tool arguments schema: output is constrained to it.")
    use_adapter: bool = Field(default=True, description="Ask the company's adapter when it has one; false: the base model.")

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


class GatewayState:
    def __init__(self, router: AdapterRouter, api: AsyncVllmApi, base_name: str, backends: Backends | None = None,
                 ensure: Callable[[str, Backend], None] | None = None, candidates: CandidateStage | None = None) -> None:
        self.router = router
        self.candidates = candidates  # the gate's candidates, staged from the adapter store (`inference.candidates`)
        self.backends = backends or Backends([Backend(api.url, VllmApi(api.url), api)])
        self.ensure = ensure  # loads a company's adapter on the server it is routed to (`AdapterManager.ensure_on`)
        self.base_name = base_name
        self.metrics = InferenceMetrics()
        self.restored = False
        self.workers: list[WorkerThread] = []  # the lifecycle and the supervisor: readiness needs them alive

    @property
    def api(self) -> AsyncVllmApi:
        """The first server's client (with one server, the only one)."""
        return self.backends.first.async_api

    @api.setter
    def api(self, api: AsyncVllmApi) -> None:
        self.backends.first.async_api = api

    async def complete(self, company_id: str, model: str, adapter: ActiveAdapter | None, prompt: str, max_tokens: int,
                       json_schema: dict[str, Any] | None) -> Completion:
        """Ask the company's server; one that does not answer is marked down and the next in the company's
        ranking is asked, its adapter loaded there first (no request fails while any server answers)."""
        failure: InferenceUnavailable | None = None
        for backend in self.backends.ranked(company_id):
            try:
                if adapter is not None and self.ensure is not None:
                    await run_in_threadpool(self.ensure, company_id, backend)
                completion = await backend.async_api.complete(model, prompt, max_tokens, json_schema)
            except InferenceUnavailable as exc:
                self.backends.mark(backend, False)
                failure = exc
                continue
            if not backend.up:
                self.backends.mark(backend, True)
            return completion
        raise failure or InferenceUnavailable("no vLLM server answers")


def _gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


Gateway = Annotated[GatewayState, Depends(_gateway)]
T = TypeVar("T")


async def _on_stage(state: GatewayState, call: Callable[[CandidateStage], T]) -> T:
    """`call` on the gateway's candidate stage, off the event loop: 404 where it stages none, 422 naming why a
    candidate is refused, 503 while vLLM does not answer."""
    if state.candidates is None:
        raise HTTPException(status_code=404, detail="this gateway stages no candidates")
    stage = state.candidates
    try:
        return await run_in_threadpool(call, stage)
    except AdapterInvalid as exc:
        raise HTTPException(status_code=422, detail=f"{exc.kind}: {exc}") from None
    except InferenceUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None


def create_app(state: GatewayState) -> FastAPI:
    app = FastAPI(title="cda inference gateway")
    app.state.gateway = state

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready(state: Gateway, response: Response) -> dict[str, Any]:
        """Ready: vLLM answers, it lists every active adapter (a restarted server forgets them until they are
        registered again), and the lifecycle and supervisor threads are alive."""
        listings = {b.url: await b.async_api.models() for b in state.backends.all}
        answering = {url for url, listed in listings.items() if listed is not None}
        active = state.router.all()
        missing = []
        for adapter in active:  # each on the first server of its ranking that answers
            owner = next((b.url for b in state.backends.ranked(adapter.company_id) if b.url in answering), None)
            if owner is not None and adapter.served_name not in (listings[owner] or set()):
                missing.append(adapter.served_name)
        workers = {w.name: w.healthy for w in state.workers}
        ok = bool(answering) and state.restored and not missing and all(workers.values())
        response.status_code = 200 if ok else 503
        return {"ready": ok, "vllm": bool(answering), "vllm_servers": len(state.backends.all),
                "vllm_answering": len(answering), "adapters_registered": state.restored and not missing,
                "missing_adapters": sorted(missing), "workers": workers, "companies_with_adapters": len(active)}

    @app.get("/metrics")
    async def metrics(state: Gateway) -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/adapters")
    async def adapters(state: Gateway) -> list[dict[str, Any]]:
        return [{**a.__dict__, "grounding": a.grounding.to_json()} for a in state.router.all()]

    @app.post("/v1/candidates")
    async def stage_candidate(body: CandidateRequest, state: Gateway) -> dict[str, str]:
        """The trainer's gate: a candidate downloaded from the adapter store (hash checked) and loaded under its
        eval name on the server the gate asks; 422 names why a candidate is refused."""
        server = await _on_stage(state, lambda stage: stage.stage(body.company_id, body.name, body.uri))
        return {"name": body.name, "server": server}

    @app.delete("/v1/candidates/{company_id}/{name}", status_code=204)
    async def drop_candidate(company_id: str, name: str, state: Gateway) -> Response:
        await _on_stage(state, lambda stage: stage.drop(company_id, name))
        return Response(status_code=204)

    @app.post("/v1/complete", response_model=CompletionPublic)
    async def complete(body: CompletionRequest, state: Gateway) -> CompletionPublic:
        adapter = state.router.get(body.company_id) if body.use_adapter else None
        model = adapter.served_name if adapter else state.base_name
        started = time.perf_counter()
        asked = body.json_schema  # the adapter's grounded arguments narrowed to the values this prompt offers
        if asked is not None and adapter is not None and adapter.grounding.rules:
            asked = narrow(asked, parse_prompt(body.prompt), adapter.grounding)
        try:
            completion = await state.complete(body.company_id, model, adapter, body.prompt, body.max_tokens, asked)
        except InferenceUnavailable as exc:
            state.metrics.observe(model, "unavailable", time.perf_counter() - started)
            raise HTTPException(status_code=503, detail=str(exc)) from None
        except CompletionRefused as exc:
            state.metrics.observe(model, "refused", time.perf_counter() - started)
            raise HTTPException(status_code=exc.status_code if 400 <= exc.status_code < 500 else 400,
                                detail=str(exc)) from None
        elapsed = time.perf_counter() - started
        tool_call = None
        if body.json_schema is not None:
            outcome = parse_tool_call(completion.text, body.json_schema, completion.finish_reason)
            tool_call = ToolCallPublic(valid=outcome.valid, arguments=outcome.arguments, error=outcome.error)
        state.metrics.observe(model, "invalid_tool_call" if tool_call and not tool_call.valid else "ok", elapsed)
        return CompletionPublic(company_id=body.company_id, model=model,
                                adapter_version=adapter.version if adapter else None, used_base=adapter is None,
                                text=completion.text, finish_reason=completion.finish_reason,
                                latency_ms=elapsed * 1000, tool_call=tool_call)

    return app
