"""The adapter lifecycle: a consumer of `lora_adapter_ready` that loads each new version into the running
server, verifies it, switches the company to it in place, and says so as an event.

A version is checked (its files lie in the registry folder of *its* company, are complete, and fit the
served base model), loaded under a staging name, verified (listed and answering), then loaded in place
under the company's serving name; only then is `adapter_activated` published. Every load is in place, so a
repeated one (a retried POST, a kill between load and unload) never refuses a good adapter. Anything that
fails is refused with an `adapter_refused` event and the company keeps the adapter it had. A record that
cannot be handled at all is dead-lettered with the reason; the lifecycle goes on with the next one.

After a server (re)start, `restore` registers every company's active adapter again from
`company_adapters` (checked like a new version), and `resync` puts back what the router says is served.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from core.errors import is_transient
from core.prompts import PROMPT_VERSION
from core.settings import Settings
from core.workers import run_until_stopped
from inference.active import active_adapters
from inference.adapter_files import check_prompt_version, inspect_adapter, read_grounding, same_model
from inference.adapter_places import checked_staging_name, company_adapter_dir
from inference.backends import Backend, Backends
from inference.errors import AdapterInvalid, InferenceUnavailable, NotAnAdapterAnnouncement, WaitingForTopics
from inference.routing import ActiveAdapter, AdapterRouter, is_staging_name, served_name
from inference.vllm_api import AsyncVllmApi, VllmApi
from topics.consumer import EventConsumer, Received
from topics.errors import UnknownTopic
from topics.events import Event
from topics.handling import handle_each
from topics.producer import EventProducer

log = logging.getLogger(__name__)
GROUP_ID = "cda-inference-adapters"
# The lifecycle reacts within milliseconds: do not let the broker hold fetches back.
FAST_FETCH = {"fetch.wait.max.ms": 10, "fetch.min.bytes": 1}
READY_TOPIC = "lora_adapter_ready"


class AdapterManager:
    """Loads, verifies, activates and restores company adapters on the vLLM servers (`inference.backends`):
    a new version on the server the company is routed to, and on any other the first time it goes there.

    One lock orders every change of what vLLM serves (a new version, a restore, a re-registration), so
    a re-registration after a restart can never put back a version that a newer activation replaced.
    """

    def __init__(self, settings: Settings, api: VllmApi, router: AdapterRouter, producer: EventProducer,
                 backends: Backends | None = None) -> None:
        self.settings = settings
        self.backends = backends or Backends([Backend(api.url, api, AsyncVllmApi(api.url))])
        self.api = self.backends.first.api  # the first server (the one the trainer's gate asks too)
        self.router = router
        self.producer = producer
        self._lock = threading.RLock()

    # -- one new version --------------------------------------------------------------------------
    def handle_ready(self, ready: Event) -> Event:
        """Activate the version `ready` announces, or refuse it; returns the event published.

        Transient failures (vLLM down) propagate, so the caller commits nothing and tries again later.
        """
        if ready.type != READY_TOPIC:
            raise NotAnAdapterAnnouncement(f"a {ready.type} event is no {READY_TOPIC} announcement")
        company, version = ready.company_id, str(ready["version"])
        with self._lock:
            current = self.router.get(company)
            if current is not None and current.version == version and current.uri == str(ready["uri"]):
                return self._activated(ready, current, previous=None)  # redelivered: already active
            stage: str | None = None
            backend = self.backends.owner(company)
            api = backend.api
            try:
                path = company_adapter_dir(self.settings, company, str(ready["uri"]))
                stage = checked_staging_name(company, version)
                if not same_model(str(ready["base_model"]), self.settings.base_model_path):
                    raise AdapterInvalid("wrong_base_model", f"adapter is for {ready['base_model']!r}, "
                                         f"the server serves {self.settings.base_model_path!r}")
                info = inspect_adapter(path, self.settings.base_model_path, self.settings.vllm_max_lora_rank)
                check_prompt_version(path, PROMPT_VERSION)
                grounding = read_grounding(path)
                self._load(api, stage, path)
                self._verify(api, stage)
                name = served_name(company)
                self._load(api, name, path)
                self.backends.record(backend, company, version)
                adapter = ActiveAdapter(company, version, name, str(ready["uri"]), self.settings.base_model_path, info.rank,
                                        grounding)
                previous = self.router.set(adapter)
                self._drop_elsewhere(company, backend)
            except AdapterInvalid as exc:
                return self._refused(ready, exc.kind, str(exc))
            finally:
                if stage is not None:
                    self._unload_quietly(api, stage)
            return self._activated(ready, adapter, previous)

    def _drop_elsewhere(self, company: str, kept: Backend) -> None:
        """Other servers that hold an older version of the company's adapter unload it: the company is served
        the new one there too, loaded when it is routed there next (`ensure_on`)."""
        for backend in self.backends.holders(company):
            if backend is not kept:
                self.backends.record(backend, company, None)
                self._unload_quietly(backend.api, served_name(company))

    def ensure_on(self, company: str, backend: Backend) -> None:
        """The company's active adapter loaded on `backend`, where the gateway routed it (the server it was on
        went away, or a version came while it was elsewhere); a no-op when it holds that version already."""
        adapter = self.router.get(company)
        if adapter is None or self.backends.holds(backend, company) == adapter.version:
            return
        with self._lock:
            adapter = self.router.get(company)
            if adapter is None or self.backends.holds(backend, company) == adapter.version:
                return
            path = company_adapter_dir(self.settings, company, adapter.uri)
            self._load(backend.api, adapter.served_name, path)
            self.backends.record(backend, company, adapter.version)

    @staticmethod
    def _load(api: VllmApi, name: str, path: Path) -> None:
        """Load `name` in place (a repeated load replaces, never refuses)."""
        api.load_or_refuse(name, str(path))

    @staticmethod
    def _verify(api: VllmApi, name: str) -> None:
        if name not in api.models():
            raise AdapterInvalid("not_answering", f"{name} is not listed in /v1/models after loading")
        try:
            api.complete(name, "ping", max_tokens=1)
        except Exception as exc:
            if is_transient(exc) and (not api.ready() or name not in api.models()):
                raise  # the server went away (or restarted) meanwhile: not the adapter's fault
            raise AdapterInvalid("not_answering", f"{name} did not answer a completion: {exc}") from exc

    @staticmethod
    def _unload_quietly(api: VllmApi, name: str) -> None:
        try:
            api.unload_adapter(name)
        except InferenceUnavailable:
            log.warning("could not unload %s", name)

    def _activated(self, ready: Event, adapter: ActiveAdapter, previous: ActiveAdapter | None) -> Event:
        event = Event.new("adapter_activated", adapter.company_id, version=adapter.version,
                          served_name=adapter.served_name, uri=adapter.uri, base_model=adapter.base_model,
                          rank=adapter.rank, request_id=ready.data.get("request_id"),
                          previous_version=previous.version if previous else None)
        self._publish(event)
        return event

    def _refused(self, source: Event, kind: str, reason: str) -> Event:
        log.warning("refused adapter %s of %s: %s", source["version"], source.company_id, reason)
        event = Event.new("adapter_refused", source.company_id, version=str(source["version"]), uri=str(source["uri"]),
                          reason=reason, error_kind=kind, request_id=source.data.get("request_id"))
        self._publish(event)
        return event

    def _publish(self, event: Event) -> None:
        self.producer.produce(event)
        self.producer.flush()

    # -- after a (re)start ------------------------------------------------------------------------
    def restore(self) -> list[ActiveAdapter]:
        """Register every company's active adapter again, from the compacted `company_adapters` topic.

        Each is checked like a new version (its company's registry folder, files, base model); one that
        fails is refused with its reason and its company is served by the base model.
        """
        latest = active_adapters(self.settings)
        restored = []
        with self._lock:
            self.clear_staging()
            for company, event in sorted(latest.items()):
                try:
                    adapter = self._register(event, self.backends.owner(company))
                except AdapterInvalid as exc:
                    self._refused(event, exc.kind, f"not restored: {exc}")
                    continue
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    log.exception("could not restore %s's adapter %s", company, event.data.get("version"))
                    continue
                self.router.set(adapter)
                restored.append(adapter)
        return restored

    def _register(self, activated: Event, backend: Backend) -> ActiveAdapter:
        company, uri = activated.company_id, str(activated["uri"])
        path = company_adapter_dir(self.settings, company, uri)
        info = inspect_adapter(path, self.settings.base_model_path, self.settings.vllm_max_lora_rank)
        check_prompt_version(path, PROMPT_VERSION)  # an adapter served before the format changed is not restored
        grounding = read_grounding(path)
        self._load(backend.api, served_name(company), path)
        self.backends.record(backend, company, str(activated["version"]))
        return ActiveAdapter(company, str(activated["version"]), served_name(company), uri,
                             self.settings.base_model_path, info.rank, grounding)

    def clear_staging(self) -> list[str]:
        """Unload staging copies that a lifecycle killed between load and unload left behind (on every server
        that answers)."""
        stale = []
        with self._lock:
            for backend in self.backends.all:
                try:
                    names = [name for name in backend.api.models() if is_staging_name(name)]
                except InferenceUnavailable:
                    if backend is self.backends.first:
                        raise
                    continue
                for name in names:
                    log.info("unloading stale staging adapter %s from %s", name, backend.url)
                    self._unload_quietly(backend.api, name)
                stale += names
            return stale

    def missing(self) -> list[ActiveAdapter]:
        """Active adapters the server each company is routed to does not list (it restarted and forgot its
        runtime adapters, or the company moved to it when its own went away). A server that forgot what it
        held is noticed here, and what it held is loaded again when a company goes there."""
        listings: dict[str, set[str]] = {}
        for backend in self.backends.all:
            try:
                listings[backend.url] = set(backend.api.models())
            except InferenceUnavailable:
                self.backends.mark(backend, False)
                continue
            self.backends.mark(backend, True)
            for company in list(backend.loaded):
                if served_name(company) not in listings[backend.url]:
                    self.backends.record(backend, company, None)
        if not listings:
            raise InferenceUnavailable("no vLLM server answers")
        return [a for a in self.router.all()
                if a.served_name not in listings.get(self.backends.owner(a.company_id).url, set())]

    def resync(self) -> list[ActiveAdapter]:
        """Load every adapter the router says is served and the server does not list; returns those put back.

        One that can no longer be served (its files gone) is refused and its company falls back to the base.
        """
        with self._lock:
            back = []
            for adapter in self.missing():
                backend = self.backends.owner(adapter.company_id)
                try:
                    path = company_adapter_dir(self.settings, adapter.company_id, adapter.uri)
                    inspect_adapter(path, self.settings.base_model_path, self.settings.vllm_max_lora_rank)
                    self._load(backend.api, adapter.served_name, path)
                    self.backends.record(backend, adapter.company_id, adapter.version)
                except AdapterInvalid as exc:
                    self.router.remove(adapter.company_id)
                    self._publish(Event.new("adapter_refused", adapter.company_id, version=adapter.version,
                                            uri=adapter.uri, reason=f"could not register it again: {exc}",
                                            error_kind=exc.kind, request_id=None))
                    continue
                back.append(adapter)
            return back

    # -- the consumer loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event, group_id: str = GROUP_ID) -> None:
        """Activate announced adapters until `stop`; an outage (vLLM, broker) re-joins from the committed
        offsets. Only a bug escapes, and the worker thread records it for readiness."""
        run_until_stopped(stop, lambda s: self._session(s, group_id), name="adapter lifecycle")

    def _session(self, stop: threading.Event, group_id: str) -> None:
        with EventConsumer(self.settings, group_id, **FAST_FETCH) as consumer:
            try:
                consumer.subscribe([READY_TOPIC])
            except UnknownTopic as exc:
                raise WaitingForTopics(str(exc)) from exc
            while not stop.is_set():
                batch = consumer.poll(0.05, max_records=50)
                handle_each(consumer, batch, self._handle_received)
                if batch:
                    consumer.commit()

    def _handle_received(self, received: Received) -> None:
        """Handle one record. A deterministic failure of an announcement is refused (kind `internal`) before
        `handle_each` dead-letters the record with its reason, so one wrong record never stops the lifecycle."""
        try:
            self.handle_ready(received.event)
        except Exception as exc:
            if not is_transient(exc) and received.event.type == READY_TOPIC:
                try:
                    self._refused(received.event, "internal", f"{type(exc).__name__}: {exc}")
                except Exception as refusal_error:
                    if is_transient(refusal_error):
                        raise
                    log.exception("could not refuse %s's adapter %s", received.event.company_id,
                                  received.event.data.get("version"))
            raise
