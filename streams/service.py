"""The automation service behind the Faust agent: decode a request, find what its company may use, fold
the job's recorded events, run the job. Bad records go to `dead_letters` with the reason; outages are
waited out (the job resumes from the log); nothing here ever stops the partition."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from context.events import retention, session_fold
from context.memory import AUTOMATION, MEMORY_EVENTS, CompanyMemory, MemoryEntry
from context.prompt_context import company_recall, recallable
from context.sessions import CompanySessions, idle_close_event
from core.retry import Stopped, outlast_async
from core.settings import Settings
from inference.client import InferenceClient
from streams.agent_loop import Bridge, JobLimits, JobRun, JobRunner, Model, Observer
from streams.agent_settings import AgentSettings
from streams.followers import CompanyTables
from streams.gateway_model import GatewayModel
from streams.job_log import JobLog
from streams.job_state import fold
from streams.scheduler import FairScheduler, Work
from topics.async_producer import AsyncProducer
from topics.catalog import topic as catalog_topic
from topics.dead_letters import DeadLetters, Rejected
from topics.errors import EventValidationError, SchemaNotFound, SerializationError
from topics.events import Event
from topics.serde import serde_from
from topics.tables import TopicTable

log = logging.getLogger(__name__)
REQUEST_TYPES = catalog_topic("company_data").event_types


class AgentService:
    def __init__(self, settings: Settings, model: Model | None = None, bridge: Bridge | None = None,
                 observer: Observer | None = None) -> None:
        self.settings = settings
        self.serde = serde_from(settings)
        self.tables = CompanyTables(settings)
        self.memory = CompanyMemory()
        self.sessions = CompanySessions()
        self.memory_table = TopicTable(settings, "company_memory", self.memory.apply)
        self.sessions_table = TopicTable(settings, "company_sessions", self.sessions.apply)
        self.emitter = AsyncProducer(settings, name="agents-producer")
        self.job_log = JobLog(settings, self.serde)
        self.client: InferenceClient | None = None
        if model is None:
            self.client = InferenceClient(settings)
            model = GatewayModel(self.client)
        if bridge is None:
            from streams.bridge import ApiBridge

            bridge = ApiBridge(settings)
        self.bridge = bridge
        self.runner = JobRunner(model, bridge, self._emit, JobLimits(max_payload_bytes=settings.agent_max_payload_bytes,
                                                                     unit_steps=settings.agent_unit_steps,
                                                                     base_steps=settings.agent_base_steps,
                                                                     max_result_bytes=settings.agent_max_result_bytes),
                                observer)
        self.dead_letters = DeadLetters(settings, self.group_id)
        self._retaining = asyncio.Lock()
        self.scheduler = FairScheduler(settings.agent_jobs, settings.agent_company_jobs, settings.agent_waiting_jobs)
        self.stop = threading.Event()
        self.jobs_done = 0

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.settings.agents_group}"

    def start(self) -> None:
        """Read the tools, agent-settings, memory and session tables up to today's end before taking any request."""
        self.tables.start(self.stop)
        self.memory_table.start(self.stop)
        self.sessions_table.start(self.stop)
        timeout = self.settings.agent_start_timeout_s
        if not (self.tables.wait_caught_up(timeout) and self.memory_table.wait_caught_up(timeout)
                and self.sessions_table.wait_caught_up(timeout)):
            log.warning("tables not caught up within %.0fs; starting anyway", timeout)

    async def _emit(self, event: Event, wait: bool) -> None:
        """Record an event; memory the agents write is folded here at once, so the session's next job sees it
        even before the follower reads it back from the topic."""
        await self.emitter.emit(event, wait)
        if event.type in MEMORY_EVENTS:
            self.memory.apply(event)

    async def close_idle_sessions(self, now_ms: int) -> int:
        """Close the sessions unused for `session_idle_s` (no job since they opened or since their last job)."""
        idle_ms = self.settings.session_idle_s * 1000
        closed = 0
        for session in self.sessions.open_sessions():
            used = [e.written_ms for e in self.memory.session_results(session.company_id, session.session_id)]
            if now_ms - max([session.opened_ms, *used]) >= idle_ms:
                event = idle_close_event(session.company_id, session.session_id)
                await self.emitter.emit(event, True)
                self.sessions.apply(event)
                closed += 1
        return closed

    async def fold_closed_sessions(self) -> int:
        """Fold the results of each session closed since the last call into one summary entry, the results
        deleted with tombstones: a closed session is never an `Earlier:` again, and its detail need not be held."""
        by_company: dict[str, set[str]] = {}
        for company, session in self.sessions.take_closed():
            by_company.setdefault(company, set()).add(session)
        folded = 0
        for company, closed in by_company.items():
            results: dict[str, list[MemoryEntry]] = {}
            for entry in self.memory.entries_of(company):
                if entry.kind == AUTOMATION and entry.session_id is not None and entry.session_id in closed:
                    results.setdefault(entry.session_id, []).append(entry)
            try:
                for session, entries in results.items():
                    summary, deletions = session_fold(company, session, entries)
                    async with self._retaining:
                        await self._record_memory([summary, *deletions], deletions)
                    folded += 1
            except BaseException:
                self.sessions.fold_later([(c, s) for c, sessions in by_company.items() for s in sessions])
                raise
        return folded

    async def admit(self, value: bytes | None, topic: str, partition: int, offset: int, key: bytes | None,
                    timestamp_ms: int) -> Work | None:
        """A record of `company_data` as a job to schedule; a bad one is dead-lettered here (None)."""
        try:
            request = self.serde.decode(value or b"", topic).check()
            if request.type not in REQUEST_TYPES:
                raise SerializationError(f"a {request.type} event does not belong on topic company_data")
        except (SerializationError, SchemaNotFound, EventValidationError) as exc:
            await self._dead_letter(Rejected(topic, partition, offset, key, value, str(exc), type(exc).__name__))
            return None
        job = str(request.data.get("job_id"))
        session = request.data.get("session_id")

        async def run() -> None:
            try:
                await outlast_async(lambda: self._run(request, timestamp_ms),
                                    f"job {job} interrupted by an outage, resuming from its log", self.stop)
                self.jobs_done += 1
            except Stopped:
                raise asyncio.CancelledError from None  # the agents stop: the job did not end, its record comes again
            except Exception as exc:  # not transient: outlast_async waits out the rest
                log.exception("job %s of %s cannot be run", job, request.company_id)
                await self._dead_letter(Rejected(topic, partition, offset, key, value, f"{type(exc).__name__}: {exc}",
                                                 type(exc).__name__))
                await self._fail(request, f"{type(exc).__name__}: {exc}", timestamp_ms)
                return
            try:  # after the job's end, and no part of it: a failure here neither fails nor dead-letters the job
                await outlast_async(lambda: self._retain(request.company_id),
                                    f"memory retention of {request.company_id} waits for the broker", self.stop)
            except Stopped:
                return
            except Exception:  # noqa: BLE001 - retention runs again after the company's next job
                log.exception("memory retention of %s failed", request.company_id)

        return Work(request.company_id, str(session) if session else None, run, key=f"{request.company_id}/{job}")

    async def _run(self, request: Event, timestamp_ms: int) -> None:
        company = request.company_id
        tools = self.tables.tools_of(company)
        agent = self.tables.agent_of(company)
        job = JobRun(request, tools, agent or AgentSettings(company), known_company=bool(tools) or agent is not None)
        settings = self.settings
        job.recall = company_recall(recallable(self.memory, company, settings), settings)
        if job.session_id:
            job.session_refusal = self.sessions.refusal(company, job.session_id)
            own = [e for e in self.memory.session_results(company, job.session_id) if e.source_job_id != job.job_id]
            job.earlier = own[-settings.session_prompt_jobs:]
        history = await asyncio.to_thread(self.job_log.history, company, str(request["job_id"]), timestamp_ms)
        deadline_s = job.agent.job_deadline_s or settings.agent_job_deadline_s
        left_s = deadline_s - (time.time() * 1000 - timestamp_ms) / 1000
        await self.runner.run(job, history, deadline_s=left_s)

    async def _retain(self, company: str) -> None:
        """Keep the company's latest `memory_automation_kept` automation entries: the older are deleted, with a
        tombstone each on the compacted topic, so neither the topic nor the agents' memory grows with every job."""
        async with self._retaining:  # jobs ending together must not each delete the same entries
            open_sessions = {x.session_id for x in self.sessions.open_sessions() if x.company_id == company}
            deletions = retention(self.memory.entries_of(company), self.settings.memory_automation_kept, open_sessions)
            if deletions:
                await self._record_memory(deletions, deletions)

    async def _record_memory(self, events: list[Event], tombstones: list[Event]) -> None:
        """Memory events the agents write themselves, tombstones beside, folded here once the broker has them."""
        await self.emitter.send(events, tombstones=tombstones)
        for event in events:
            self.memory.apply(event)

    async def _fail(self, request: Event, error: str, timestamp_ms: int) -> None:
        """A job that cannot be run still ends: `job_failed` (kind `internal`), so it never reads running forever."""
        job = JobRun(request, {}, AgentSettings(request.company_id), known_company=False)
        try:
            history = await asyncio.to_thread(self.job_log.history, request.company_id, str(request["job_id"]),
                                              timestamp_ms)
            job.state = fold(history)
            await self.runner.fail(job, error, "internal")
        except Exception:  # noqa: BLE001 - the request is in dead_letters with the reason either way
            log.exception("job %s of %s: its failure could not be recorded", request["job_id"], request.company_id)

    async def _dead_letter(self, rejected: Rejected) -> None:
        log.warning("dead-lettering %s[%d]@%d: %s", rejected.topic, rejected.partition, rejected.offset, rejected.reason)
        self.dead_letters.send(rejected)
        await asyncio.to_thread(self.dead_letters.flush)

    @property
    def healthy(self) -> bool:
        return self.tables.healthy and all(t.worker is not None and t.worker.healthy
                                           for t in (self.memory_table, self.sessions_table))

    async def aclose(self) -> None:
        self.stop.set()
        await self.scheduler.cancel()
        if self.client is not None:
            await self.client.close()
        close = getattr(self.bridge, "aclose", None)
        if close is not None:
            await close()
        self.emitter.close()
        self.job_log.close()
