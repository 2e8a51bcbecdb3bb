"""Whether the store has a job (and its request's hash), asked by many requests at once and answered by one query per company.

Every `POST /process` with an Idempotency-Key (or a request id) that this process has not seen asks the store:
one chDB query each cost ~3 ms of CPU, three times what accepting the job costs, and 200 keyed requests/s
saturated the 2-core machine. Requests that arrive while a query runs wait for the next one, which asks for all of
them: under load the queries stay one at a time and grow instead of multiplying."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from api import reads
from projections.store import ProjectionStore


class JobLookups:
    def __init__(self, store: ProjectionStore) -> None:
        self.store = store
        self.queries = 0  # how many store queries answered the lookups (tests, metrics)
        self._pending: dict[tuple[str, str], list[asyncio.Future[str | None]]] = {}
        self._drainer: asyncio.Task[None] | None = None

    async def request_hash(self, company_id: str, job_id: str) -> str | None:
        """None when the store has no such job; else its request's hash ("" when not recorded)."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((company_id, job_id), []).append(future)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            by_company: dict[str, list[str]] = {}
            for company_id, job_id in batch:
                by_company.setdefault(company_id, []).append(job_id)
            try:
                found: dict[tuple[str, str], str] = {}
                for company_id, job_ids in by_company.items():
                    self.queries += 1
                    known = await run_in_threadpool(reads.jobs_existing, self.store, company_id, job_ids)
                    found |= {(company_id, j): h for j, h in known.items()}
            except Exception as exc:  # noqa: BLE001 - each waiting request answers it (503 for an outage)
                failure: BaseException | None = exc
            else:
                failure = None
            for key, futures in batch.items():
                for future in futures:
                    if future.done():  # a request whose client went away was cancelled
                        continue
                    if failure is not None:
                        future.set_exception(failure)
                    else:
                        future.set_result(found.get(key))
