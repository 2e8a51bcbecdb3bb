"""What the trainer's tests ask of the log: requests produced, their outcomes read back, commits checked."""

from __future__ import annotations

import json
import uuid

from core.settings import Settings
from tests.helpers import eventually
from topics.catalog import topic as catalog_topic
from topics.connection import topic_name
from topics.consumer import EventConsumer, Received
from topics.events import Event
from topics.producer import EventProducer
from topics.reads import read_to_end
from trainer.synthetic import DEMO_TOOLS, demo_examples
from trainer.worker import GROUP_ID

TOPICS = ("company_tools", "company_data", "company_automation_jobs", "company_memory", "lora_training_requests",
          "lora_training_status", "lora_adapter_ready", "company_adapters", "dead_letters")


def read_all(settings: Settings, topic: str) -> list[Received]:
    return list(read_to_end(settings, topic, "check"))


def dead_letters_of(settings: Settings, source_topic: str) -> list[Received]:
    return [r for r in read_all(settings, "dead_letters") if r.event["source_topic"] == source_topic]


def outcomes(settings: Settings, request_id: str) -> list[Event]:
    return [r.event for topic in ("lora_training_status", "lora_adapter_ready") for r in read_all(settings, topic)
            if r.event.data.get("request_id") == request_id and r.event.type != "training_progress"]


def outcome(settings: Settings, request_id: str, timeout_s: float = 60) -> Event:
    found: list[Event] = []
    eventually(lambda: bool(found.extend(outcomes(settings, request_id)) or found), timeout_s, f"an outcome of {request_id}")
    return found[0]


def request(settings: Settings, company: str, examples: list[dict[str, str]] | None = None, **fields: object) -> str:
    request_id = str(uuid.uuid4())
    with EventProducer(settings) as producer:
        producer.produce(Event.new("lora_training_requested", company, request_id=request_id,
                                   base_model=settings.base_model_path, source="INLINE", examples=examples or [], **fields))
    return request_id


def inline(n: int, seed: int = 1) -> list[dict[str, str]]:
    return [{"task": e.task, "payload_json": e.payload_json, "tool_name": e.tool_name,
             "arguments_json": json.dumps(e.arguments)} for e in demo_examples(n, seed=seed)]


def register_demo_tools(settings: Settings, company: str) -> None:
    with EventProducer(settings) as producer:
        for tool in DEMO_TOOLS:
            producer.produce(Event.new("tool_registered", company, tool_name=tool.name, description=tool.description,
                                       parameters_schema_json=json.dumps(tool.parameters),
                                       url=f"https://{company}.example/{tool.name}"))


def committed(settings: Settings) -> list[int]:
    from confluent_kafka import TopicPartition

    topic = topic_name(settings, "lora_training_requests")
    with EventConsumer(settings, GROUP_ID) as consumer:
        parts = [TopicPartition(topic, p) for p in range(catalog_topic("lora_training_requests").partitions)]
        return [tp.offset for tp in consumer.raw.committed(parts, timeout=settings.kafka_timeout_s) if tp.offset >= 0]
