"""The adapter lifecycle: a consumer of `lora_adapter_ready` that loads each new version into the running
server, verifies it, switches the company to it in place, and says so as an event.

A version is checked on disk, loaded under a staging name, verified (listed and answering), then loaded
in place under the company's serving name; only then is `adapter_activated` published. Anything that
fails is refused with an `adapter_refused` event and the company keeps the adapter it had. After a
server (re)start, `restore` registers every company's active adapter again from `company_adapters`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path

from cda.settings import Settings
from inference.adapter_files import inspect_adapter, same_model
from inference.errors import AdapterInvalid, InferenceUnavailable
from inference.routing import ActiveAdapter, AdapterRouter, served_name, staging_name
from inference.vllm_api import VllmApi
from topics.consumer import EventConsumer
from topics.errors import TopicsError
from topics.events import Event
from topics.positions import Position
from topics.producer import EventProducer

log = logging.getLogger(__name__)
GROUP_ID = "cda-inference-adapters"
# The lifecycle reacts within milliseconds: do not let the broker hold fetches back.
FAST_FETCH = {"fetch.wait.max.ms": 10, "fetch.min.bytes": 1}


def adapter_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


class AdapterManager:
    """Loads, verifies, activates and restores company adapters on one vLLM server."""

    def __init__(self, settings: Settings, api: VllmApi, router: AdapterRouter, producer: EventProducer) -> None:
        self.settings = settings
        self.api = api
        self.router = router
        self.producer = producer

    # -- one new version --------------------------------------------------------------------------
    def handle_ready(self, ready: Event) -> Event:
        """Activate the version `ready` announces, or refuse it; returns the event published."""
        company, version = ready.company_id, str(ready["version"])
        current = self.router.get(company)
        if current is not None and current.version == version:
            return self._activated(ready, current, previous=None)  # redelivered: already active
        stage = staging_name(company, version)
        try:
            path = adapter_path(str(ready["uri"]))
            if not same_model(str(ready["base_model"]), self.settings.base_model_path):
                raise AdapterInvalid("wrong_base_model", f"adapter is for {ready['base_model']!r}, "
                                     f"the server serves {self.settings.base_model_path!r}")
            info = inspect_adapter(path, self.settings.base_model_path, self.settings.vllm_max_lora_rank)
            self._load(stage, path, inplace=False)
            self._verify(stage)
            name = served_name(company)
            self._load(name, path, inplace=current is not None)
            adapter = ActiveAdapter(company, version, name, str(ready["uri"]), self.settings.base_model_path, info.rank)
            previous = self.router.set(adapter)
            return self._activated(ready, adapter, previous)
        except AdapterInvalid as exc:
            return self._refused(ready, exc.kind, str(exc))
        finally:
            self._unload_quietly(stage)

    def _load(self, name: str, path: Path, inplace: bool) -> None:
        response = self.api.load_adapter(name, str(path), inplace=inplace)
        if response.status_code != 200:
            raise AdapterInvalid("load_failed", f"vLLM refused {path}: HTTP {response.status_code}: {response.text[:300]}")

    def _verify(self, name: str) -> None:
        if name not in self.api.models():
            raise AdapterInvalid("not_answering", f"{name} is not listed in /v1/models after loading")
        try:
            self.api.complete(name, "ping", max_tokens=1)
        except InferenceUnavailable as exc:
            raise AdapterInvalid("not_answering", f"{name} did not answer a completion: {exc}") from exc

    def _unload_quietly(self, name: str) -> None:
        try:
            self.api.unload_adapter(name)
        except InferenceUnavailable:
            log.warning("could not unload %s", name)

    def _activated(self, ready: Event, adapter: ActiveAdapter, previous: ActiveAdapter | None) -> Event:
        event = Event.new("adapter_activated", adapter.company_id, version=adapter.version,
                          served_name=adapter.served_name, uri=adapter.uri, base_model=adapter.base_model,
                          rank=adapter.rank, request_id=ready.data.get("request_id"),
                          previous_version=previous.version if previous else None)
        self._publish(event)
        return event

    def _refused(self, ready: Event, kind: str, reason: str) -> Event:
        log.warning("refused adapter %s of %s: %s", ready["version"], ready.company_id, reason)
        event = Event.new("adapter_refused", ready.company_id, version=str(ready["version"]), uri=str(ready["uri"]),
                          reason=reason, error_kind=kind, request_id=ready.data.get("request_id"))
        self._publish(event)
        return event

    def _publish(self, event: Event) -> None:
        self.producer.produce(event)
        self.producer.flush()

    # -- after a (re)start ------------------------------------------------------------------------
    def restore(self) -> list[ActiveAdapter]:
        """Register every company's active adapter again, from the compacted `company_adapters` topic."""
        latest: dict[str, Event] = {}
        with EventConsumer(self.settings, f"cda-inference-restore-{uuid.uuid4()}") as consumer:
            consumer.assign("company_adapters", Position.beginning(), until_end=True)
            for received in consumer:
                latest[received.event.company_id] = received.event
        restored = []
        for company, event in sorted(latest.items()):
            path = adapter_path(str(event["uri"]))
            try:
                self._load(served_name(company), path, inplace=True)
            except AdapterInvalid as exc:
                log.error("could not restore %s's adapter %s: %s", company, event["version"], exc)
                continue
            adapter = ActiveAdapter(company, str(event["version"]), served_name(company), str(event["uri"]),
                                    str(event["base_model"]), int(event["rank"]))
            self.router.set(adapter)
            restored.append(adapter)
        return restored

    # -- the consumer loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event, group_id: str = GROUP_ID) -> None:
        """Activate announced adapters until `stop`; a server outage re-joins from the committed offsets."""
        while not stop.is_set():
            try:
                self._consume(stop, group_id)
            except (InferenceUnavailable, TopicsError) as exc:
                log.error("adapter lifecycle interrupted, retrying from the last committed adapter: %s", exc)
                stop.wait(1.0)

    def _consume(self, stop: threading.Event, group_id: str) -> None:
        with EventConsumer(self.settings, group_id, **FAST_FETCH) as consumer:
            consumer.subscribe(["lora_adapter_ready"])
            while not stop.is_set():
                batch = consumer.poll(0.05, max_records=50)
                for received in batch:
                    self.handle_ready(received.event)
                if batch:
                    consumer.commit()
