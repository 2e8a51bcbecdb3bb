"""`POST /company-automation/train-adapter` and a training request's progress, metrics and the gate's decision."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from api import reads
from api.deps import CompanyDep, ContextDep, same_company
from api.errors import ApiError, not_found
from api.routers.jobs import IdempotencyKey, request_id_of
from api.schemas.common import ERRORS, NOT_FOUND, OTHER_COMPANY
from api.schemas.training import TrainAdapterRequest, TrainingAccepted, TrainingPublic
from api.urls import training_url
from core.identifiers import ID_PATTERN
from topics.events import Event

router = APIRouter(prefix="/company-automation", tags=["training"], responses=ERRORS)
GATE = {"ready": "passed", "refused": "passed", "rejected": "rejected"}


def _check_bounds(body: TrainAdapterRequest, ctx: ContextDep) -> None:
    """The server's own bounds (settings), named by field; the schema holds the absolute ones."""
    s = ctx.settings
    for field, value, low, high in (("rank", body.rank, 1, s.vllm_max_lora_rank), ("steps", body.steps, 1, s.trainer_max_steps),
                                    ("learning_rate", body.learning_rate, s.trainer_min_learning_rate,
                                     s.trainer_max_learning_rate),
                                    ("max_examples", body.max_examples, 1, s.trainer_max_examples)):
        if value is not None and not low <= value <= high:
            raise ApiError(422, f"body.{field}: expected a value from {low:g} to {high:g}, got {value!r}")


def _examples(ctx: ContextDep, company: str, body: TrainAdapterRequest, request_id: str) -> dict[str, Any]:
    """Inline examples, or a reference to them stored under CDA_HOME when too large for one record (as `cda train`)."""
    if body.examples is None:
        return {"examples": []}
    from trainer.examples_store import encode_examples, store_examples

    try:
        examples = [record for e in body.examples for record in e.records()]
    except ValueError:
        raise ApiError(422, "body.examples: numbers must be finite (no NaN or Infinity)") from None
    if len(encode_examples(examples)) <= ctx.settings.trainer_inline_examples_bytes:
        return {"examples": examples}
    return {"examples": [], "examples_ref": store_examples(ctx.settings, company, examples, request_id)}


QUOTA_WINDOW_S = 24 * 3600  # a request not ended after a day no longer counts (the trainer lost it)


async def _within_quota(ctx: ContextDep, company: str) -> None:
    """A company has at most `api_training_quota` training requests in flight (queued or training): the one
    trainer queue is shared, and past the quota a company would hold every other company's training back.
    Checked per API process against the views, so two requests at the same instant may both pass."""
    known = await run_in_threadpool(reads.training_runs_open, ctx.store, company, QUOTA_WINDOW_S)
    open_runs = {r for r, status in known.items() if status in ("requested", "training")}
    open_runs |= {r for r in ctx.recent.names(company, "training") if r not in known}  # not folded yet
    quota = ctx.settings.api_training_quota
    if len(open_runs) >= quota:
        raise ApiError(429, f"company {company} has {len(open_runs)} training requests in flight, its quota is "
                            f"{quota}; send this one when one of them has ended", {"Retry-After": "60"})


@router.post("/train-adapter", status_code=202, response_model=TrainingAccepted,
             responses=OTHER_COMPANY, summary="Train the company's adapter")
async def train_adapter(body: TrainAdapterRequest, request: Request, caller: CompanyDep, ctx: ContextDep,
                        idempotency_key: IdempotencyKey = None) -> TrainingAccepted:
    """One `lora_training_requested`; the trainer trains, evaluates, and the gate announces the adapter or not."""
    _check_bounds(body, ctx)
    same_company(caller, body.company_id)
    company = caller.company_id
    request_id = request_id_of(idempotency_key, None)
    accepted = TrainingAccepted(request_id=request_id, status="requested", url=training_url(request, request_id))
    if idempotency_key and (ctx.recent.get(company, "training", request_id) is not None or
                            await run_in_threadpool(reads.training_run, ctx.store, company, request_id) is not None):
        return accepted
    await _within_quota(ctx, company)
    inline = await run_in_threadpool(_examples, ctx, company, body, request_id)
    event = Event.new("lora_training_requested", company, request_id=request_id, base_model=ctx.settings.base_model_path,
                      source="FROM_HISTORY" if body.from_history else "INLINE", method=body.method,
                      allow_fallback=body.allow_fallback, force=body.force, rank=body.rank, max_steps=body.steps,
                      learning_rate=body.learning_rate, max_examples=body.max_examples, **inline)
    await ctx.producer.send([event])
    ctx.recent.add(company, "training", request_id, {})
    return accepted


@router.get("/training/{request_id}", response_model=TrainingPublic, responses=NOT_FOUND, name="get_training",
            summary="A training request's progress and outcome")
async def get_training(request_id: Annotated[str, Path(pattern=ID_PATTERN, max_length=128)], caller: CompanyDep,
                       ctx: ContextDep) -> TrainingPublic:
    row = await run_in_threadpool(reads.training_run, ctx.store, caller.company_id, request_id)
    if row is None:
        if ctx.recent.get(caller.company_id, "training", request_id) is not None:
            return TrainingPublic(request_id=request_id, status="requested")
        raise not_found("training request", request_id)
    return TrainingPublic(
        request_id=request_id, status=row["status"], version=row["version"] or None, step=row["progress_step"],
        total_steps=row["progress_total"], loss=row["last_loss"], metrics=dict(row["eval_metrics"] or {}),
        baseline_metrics=dict(row["baseline_metrics"] or {}), gate=GATE.get(row["status"], "pending"), error=row["error"],
        error_kind=row["error_kind"], reason=row["reason"], active=bool(row["active"]),
        created_at=_real(row["created_at"]), ready_at=_real(row["ready_at"]))


def _real(value: Any) -> Any:
    """ClickHouse answers the epoch for a time that never happened (maxIf of nothing)."""
    return value if value is not None and getattr(value, "year", 1970) > 1970 else None
