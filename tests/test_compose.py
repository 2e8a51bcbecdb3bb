"""docker-compose.yml: the Docker path runs the same broker and applies the same catalog."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def test_compose_runs_kafka_in_kraft_mode_and_applies_the_catalog() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "9092:9092" in kafka["ports"]
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "cda topics apply" in " ".join(topics["command"])
    assert topics["environment"]["CDA_KAFKA_BOOTSTRAP"] == "kafka:19092"
