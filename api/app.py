"""The app factory: routers, error handlers, body limit and metrics; the context opened at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import errors, metrics
from api.context import ApiContext
from api.limits import BodyLimit
from api.routers import adapters, agent_settings, companies, dashboards, health, jobs, key, memory, sql, tools, training
from core.settings import Settings
from projections.store import ProjectionStore
from topics.errors import BrokerUnavailable

DESCRIPTION = """Company Data Automation: send company data, cda's agents call the company's tools with a model
fine-tuned on the company's own data. Every write is an event on Kafka (answered 202 once the broker has it);
every route is scoped to the company of the API key (`Authorization: Bearer cda_<id>.<secret>`): another
company's job, tool, adapter, training request, session or memory entry answers 404, like one that does not exist."""


def create_app(settings: Settings, store: ProjectionStore | None = None, context: ApiContext | None = None) -> FastAPI:
    """An app over the broker and store of `settings`; `store` shares a store already open (embedded chDB)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or ApiContext.open(settings, store)
        try:
            if not await run_in_threadpool(ctx.start, settings.agent_start_timeout_s):
                raise BrokerUnavailable(f"could not read company_keys and company_tools from {settings.kafka_bootstrap} "
                                        f"within {settings.agent_start_timeout_s:.0f}s")
        except Exception as exc:
            app.state.startup_error = exc  # uvicorn only logs it; whoever started the server may raise it
            ctx.close()
            raise
        app.state.ctx = ctx
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(title="cda — Company Data Automation", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    errors.install(app)
    for module in (jobs, tools, training, adapters, agent_settings, memory, dashboards, key, companies, sql,
                   health):
        app.include_router(module.router)
    metrics.install(app)
    return app
