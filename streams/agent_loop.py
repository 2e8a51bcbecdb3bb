"""The agent loop, as plain async code with its boundaries passed in: the model (through the inference
gateway), the API bridge, and `emit` (which records an event on the log). Faust only feeds it requests.

For each unit, step by step: `step_started` -> the model's decision under the call schema ->
`tool_call_requested` (recorded and acknowledged *before* the call is sent) -> the bridge call ->
`tool_call_completed` (its answer shown in the next step's prompt) / `tool_call_failed` (the unit ends), until the
model answers `done` or `none` (no tool fits), or the unit runs out of steps: `unit_ended`. Then
`job_completed` with every unit's result (the job `partially_failed` when some failed), or `job_failed` with the
reason (`units_failed` when every unit failed).
A job resumes from the fold of its recorded events; every event id is derived from job, unit and step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from context.memory import AUTOMATION, automation_content
from context.prompt_context import decision_context
from context.units import Unit, split_payload
from core.prompts import DECLINE, DONE, PROMPT_VERSION, call_schema, render, render_step
from core.retry import outlast_async
from streams.ids import call_id, event_id, idempotency_key, prompt_hash, step_number
from streams.job_run import Bridge, Decision, Emit, JobLimits, JobRun, Model, Observer, UnitTiming
from streams.job_state import CallRecord, JobState, UnitProgress, fold, mutate
from streams.sizes import bounded_answer, bounded_results
from streams.tools import Tool
from streams.truth import expected_calls, judge
from topics.events import Event

log = logging.getLogger(__name__)


class JobRunner:
    """Runs jobs against a model and a bridge, recording every fact through `emit`."""

    def __init__(self, model: Model, bridge: Bridge, emit: Emit, limits: JobLimits = JobLimits(),
                 observer: Observer | None = None) -> None:
        self.model = model
        self.bridge = bridge
        self._emit = emit
        self.limits = limits
        self.observer = observer

    async def run(self, job: JobRun, history: list[Event] | None = None, deadline_s: float | None = None) -> JobState:
        """Run the job from where its recorded `history` leaves it. Past `deadline_s` (seconds left of the job's
        deadline) it fails `deadline`, whatever it was doing: a call in flight is resumed by no one."""
        job.state = fold(history or [])
        if job.state.finished:
            return job.state  # redelivered after it ended: nothing to do
        if deadline_s is not None and deadline_s <= 0:
            await self.fail(job, "the job passed its deadline before it could run", "deadline")
            return job.state
        scope = asyncio.timeout(deadline_s)
        try:
            async with scope:
                return await self._run(job)
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout of the job's own, not its deadline
            await self.fail(job, f"the job ran past its deadline ({deadline_s:.0f} s left when it started)", "deadline")
            return job.state

    async def fail(self, job: JobRun, error: str, kind: str) -> None:
        """End the job `job_failed` with `error`: every way a job can end writes its end on the log."""
        if not job.state.finished:
            await self._accept(job)
            await self._finish_failed(job, error[:2000], kind)

    async def _run(self, job: JobRun) -> JobState:
        refusal = self._refusal(job)
        if refusal is not None:
            await self._accept(job)
            await self._finish_failed(job, *refusal)
            return job.state
        split = split_payload(json.loads(str(job.request["payload_json"])))
        units = list(split.units)
        if not units:
            await self._accept(job)
            await self._finish_failed(job, "no records in the data: " + "; ".join(why for _, why in split.left_out),
                                      "no_records")
            return job.state
        if len(units) > job.agent.step_limit:
            await self._accept(job)
            await self._finish_failed(job, f"{len(units)} units exceed the company's step limit of "
                                           f"{job.agent.step_limit}", "step_limit")
            return job.state
        await self._accept(job)
        slots = asyncio.Semaphore(max(1, job.agent.concurrency))

        async def one(unit: Unit) -> None:
            async with slots:
                await self._run_unit(job, unit)

        await asyncio.gather(*(one(u) for u in units))
        await self._finish_completed(job, units, split.left_out)
        return job.state

    # -- acceptance ---------------------------------------------------------------------------------
    def _refusal(self, job: JobRun) -> tuple[str, str] | None:
        if len(str(job.request["payload_json"]).encode()) > self.limits.max_payload_bytes:
            return (f"payload of {len(str(job.request['payload_json']).encode())} bytes exceeds "
                    f"{self.limits.max_payload_bytes}", "payload_too_large")
        if not job.known_company:
            return f"company {job.company} is not known here (no tools, no agent settings)", "unknown_company"
        if not job.tools:
            return f"company {job.company} has no registered tools", "no_tools"
        if job.session_refusal is not None:
            return job.session_refusal
        foreign = [name for name in job.request.data.get("tools") or () if name not in job.tools]
        if foreign:
            return (f"tool(s) {', '.join(foreign)} are not tools of company {job.company}", "unknown_tool")
        return None

    def _allowed_tools(self, job: JobRun) -> list[Tool]:
        named = job.request.data.get("tools") or ()
        return [t for name, t in sorted(job.tools.items()) if not named or name in named]

    async def _accept(self, job: JobRun) -> None:
        if job.state.accepted:
            return
        await self.emit(job, Event.new(
            "job_accepted", job.company, event_id=event_id(job.job_id, "job_accepted"),
            job_id=job.job_id, request_id=str(job.request["request_id"]), task=str(job.request["task"]),
            tools=[t.name for t in self._allowed_tools(job)], session_id=job.request.data.get("session_id"),
            adapter_version=None), wait=False)

    # -- one unit -----------------------------------------------------------------------------------
    async def _run_unit(self, job: JobRun, unit: Unit) -> None:
        timing = UnitTiming(job.job_id, unit.index)
        started = time.perf_counter()
        try:
            await self._unit_steps(job, unit, timing)
        finally:
            timing.wall_s = time.perf_counter() - started
            if self.observer is not None:
                self.observer(timing)

    async def _unit_steps(self, job: JobRun, unit: Unit, timing: UnitTiming) -> None:
        """Decide, call, show the answer, decide again, until the model answers `done` or `none`, a call fails,
        or the unit runs out of steps. A resumed unit goes on from its log: a pending call is sent again."""
        progress = job.state.unit(unit.index)
        while not progress.done:
            call = progress.pending_call
            if call is None:
                own = len(progress.calls)  # the unit's own step: one decision per call made so far
                if progress.calls and progress.adapter_version is None and own >= self.limits.base_steps:
                    await self._end_unit(job, unit, "completed", "one_step", f"the base model takes {own} step(s) "
                                         "per unit (CDA_AGENT_BASE_STEPS); an adapter trained on steps answers done")
                    return
                if own >= self.limits.unit_steps:
                    await self._end_unit(job, unit, "failed", "step_limit", f"the unit took {own} steps without the "
                                         f"model answering done (CDA_AGENT_UNIT_STEPS={self.limits.unit_steps})")
                    return
                if not await self._decide(job, unit, step_number(unit.index, own), timing):
                    return
                call = progress.pending_call
                if call is None:  # the model answered done or none: the unit ended
                    return
            await self._send(job, progress, call, timing)

    async def _send(self, job: JobRun, progress: UnitProgress, call: CallRecord, timing: UnitTiming) -> None:
        tool = job.tools.get(call.tool)
        if tool is None:  # the decision named a tool the company no longer has
            await self._call_failed(job, call.step, progress, f"tool {call.tool} is not a tool of {job.company}",
                                    "unknown_tool", retryable=False)
            return
        called = time.perf_counter()
        outcome = await self.bridge.call(tool, call.arguments, idempotency_key(job.company, job.job_id, call.step),
                                         job.agent)
        timing.tool_s += time.perf_counter() - called
        if outcome.ok:
            await self.emit(job, Event.new(
                "tool_call_completed", job.company, event_id=event_id(job.job_id, "tool_call_completed", call.step),
                job_id=job.job_id, step=call.step, call_id=call_id(job.job_id, call.step), tool_name=tool.name,
                attempt=outcome.attempts, status_code=outcome.status_code,
                result_json=bounded_answer(outcome.result_json, self.limits.max_result_bytes),
                latency_ms=outcome.latency_ms), wait=False)
        else:
            await self._call_failed(job, call.step, progress, outcome.error, outcome.error_kind, outcome.retryable,
                                    attempts=outcome.attempts, latency_ms=outcome.latency_ms)

    async def _decide(self, job: JobRun, unit: Unit, step: int, timing: UnitTiming) -> bool:
        """Ask the model for the unit's next step and record its answer: a call (requested and acknowledged before
        it is sent), the unit's end (`done`, `none`), or a failure (an answer that is no call of the company's).
        False when the unit ended on a failure."""
        tools = self._allowed_tools(job)
        specs = [t.spec() for t in tools]
        progress = job.state.unit(unit.index)
        steps = [render_step(c.tool, c.arguments, c.result) for c in progress.calls]
        made = decision_context(str(job.request["task"]), unit.data_json, specs, job.recall, job.earlier, steps)
        prompt = render(made.context)
        asked = time.perf_counter()
        decision = await self._ask(job, prompt, call_schema(specs, first_step=not steps))
        timing.model_s += time.perf_counter() - asked
        await self.emit(job, Event.new(
            "step_started", job.company, event_id=event_id(job.job_id, "step_started", step), job_id=job.job_id,
            step=step, model=decision.model, unit=unit.index, adapter_version=decision.adapter_version,
            prompt_hash=prompt_hash(prompt), memory_entries=list(made.entry_ids),
            session_jobs=list(made.session_jobs), prompt=prompt, prompt_version=PROMPT_VERSION),
            wait=False)
        answer = decision.tool if decision.valid else None
        if answer == DONE and steps:
            await self._end_unit(job, unit, "completed", DONE, f"the model answered done after {len(steps)} call(s)")
            return True
        if answer == DECLINE and not steps:
            await self._end_unit(job, unit, "skipped", DECLINE, "the model found no tool of the company that fits "
                                 "this record; nothing was sent")
            return True
        if answer is None or answer not in {t.name for t in tools}:
            await self._call_failed(job, step, progress, decision.error or f"model answer {decision.raw_text[:200]!r} "
                                    f"is not a call to a tool of {job.company}", "invalid_output", retryable=False,
                                    raw_output=decision.raw_text)
            return False
        # recorded and acknowledged before anything is sent: a crash after this point resends, never re-asks
        await self.emit(job, Event.new(
            "tool_call_requested", job.company, event_id=event_id(job.job_id, "tool_call_requested", step),
            job_id=job.job_id, step=step, call_id=call_id(job.job_id, step), tool_name=answer, attempt=1,
            arguments_json=json.dumps(decision.arguments or {}, sort_keys=True, separators=(",", ":"))), wait=True)
        return True

    async def _end_unit(self, job: JobRun, unit: Unit, status: str, answer: str, reason: str) -> None:
        progress = job.state.unit(unit.index)
        await self.emit(job, Event.new(
            "unit_ended", job.company, event_id=event_id(job.job_id, "unit_ended", unit.index), job_id=job.job_id,
            unit=unit.index, step=max(progress.step, step_number(unit.index)), status=status, answer=answer,
            reason=reason), wait=False)

    async def _ask(self, job: JobRun, prompt: str, schema: dict[str, Any]) -> Decision:
        """The model's decision; while inference is unavailable the job waits (it is not failed)."""
        return await outlast_async(lambda: self.model.decide(job.company, prompt, schema, job.use_adapter),
                                   f"job {job.job_id} waits for inference, asking again",
                                   first_s=self.limits.model_retry_pause_s, max_s=self.limits.model_retry_max_pause_s)

    async def _call_failed(self, job: JobRun, step: int, progress: UnitProgress, error: str, kind: str,
                           retryable: bool, attempts: int = 1, latency_ms: float = 0.0,
                           raw_output: str | None = None) -> None:
        await self.emit(job, Event.new(
            "tool_call_failed", job.company, event_id=event_id(job.job_id, "tool_call_failed", step),
            job_id=job.job_id, step=step, call_id=call_id(job.job_id, step), tool_name=progress.tool or "",
            attempt=attempts, error=error[:2000], error_kind=kind, retryable=retryable, latency_ms=latency_ms,
            raw_output=raw_output[:4000] if raw_output is not None else None), wait=False)

    # -- the end ------------------------------------------------------------------------------------
    async def _finish_completed(self, job: JobRun, units: list[Unit], left_out: tuple[tuple[str, str], ...] = ()
                                ) -> None:
        summaries = [{**job.state.unit(u.index).summary(), **({"source": u.source} if u.source else {})} for u in units]
        await self._remember(job, summaries)
        ok = sum(1 for s in summaries if s["status"] == "completed")
        skipped = sum(1 for s in summaries if s["status"] == "skipped")
        if summaries and not ok and not skipped:  # nothing done: the job failed, whatever each unit's reason
            first = next((s for s in summaries if s.get("error")), summaries[0])
            await self._finish_failed(job, f"every unit failed ({len(summaries)} of {len(summaries)}); the first: "
                                           f"{first.get('error_kind') or ''} {first.get('error') or ''}".strip()[:2000],
                                      "units_failed")
            return
        result: dict[str, Any] = {"units": summaries, "completed": ok, "skipped": skipped,
                                  "failed": len(summaries) - ok - skipped}
        if left_out:
            result["left_out"] = [{"where": where, "why": why} for where, why in left_out]
        right = judge(job.state, summaries, expected_calls(job.request.data.get("expected_json")))
        if right is not None:
            result |= {"right": right, "right_units": sum(1 for s in summaries if s["right"])}
        await self.emit(job, Event.new(
            "job_completed", job.company, event_id=event_id(job.job_id, "job_completed"), job_id=job.job_id,
            steps=job.state.steps, tool_calls=job.state.tool_calls,
            result_json=bounded_results(result, self.limits.max_event_bytes),
            latency_ms=(time.monotonic() - job.started) * 1000), wait=True)

    async def _remember(self, job: JobRun, summaries: list[dict[str, Any]]) -> None:
        """The company's automation history: one `automation` entry per unit (task, tool, arguments, outcome),
        written before `job_completed`, so the session's next job finds it. Ids come from job and unit, so a
        resumed job rewrites the same entries."""
        task = str(job.request["task"])
        for summary in summaries:
            unit = int(summary["unit"])
            progress = job.state.unit(unit)
            result = summary.get("result") if summary["status"] == "completed" else {"error": summary.get("error")}
            await self.emit(job, Event.new(
                "memory_written", job.company, event_id=event_id(job.job_id, "memory_written", unit),
                entry_id=f"job-{job.job_id}-{unit}", session_id=job.session_id, kind=AUTOMATION,
                content=automation_content(task, progress.tool or "", progress.arguments, str(summary["status"]), result),
                tags=[t for t in ("automation", progress.tool) if t], source_job_id=job.job_id), wait=False)

    async def _finish_failed(self, job: JobRun, error: str, kind: str) -> None:
        await self.emit(job, Event.new(
            "job_failed", job.company, event_id=event_id(job.job_id, "job_failed"), job_id=job.job_id,
            error=error, error_kind=kind, steps=job.state.steps, tool_calls=job.state.tool_calls,
            latency_ms=(time.monotonic() - job.started) * 1000), wait=True)

    async def emit(self, job: JobRun, event: Event, wait: bool) -> None:
        await self._emit(event, wait)
        mutate(job.state, event)
