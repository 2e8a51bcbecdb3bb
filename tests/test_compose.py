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


def test_compose_provisions_clickhouse_grafana_and_the_saved_dashboards() -> None:
    import json

    from projections.grafana import dashboard_json, grafana_sql
    from projections.queries import dashboard_queries

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    projections = services["projections"]
    assert projections["environment"]["CDA_CLICKHOUSE_URL"] == "http://clickhouse:8123"
    assert "cda projections run" in " ".join(projections["command"])
    grafana = services["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    mounts = {m.split(":")[1]: COMPOSE.parent / m.split(":")[0] for m in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "clickhouse.yaml").read_text())["datasources"][0]
    assert datasource["type"] == "grafana-clickhouse-datasource" and datasource["jsonData"]["host"] == "clickhouse"
    provider = yaml.safe_load((provisioning / "dashboards" / "cda.yaml").read_text())["providers"][0]
    dashboards = mounts[provider["options"]["path"]]
    provisioned = json.loads((dashboards / "cda.json").read_text())
    assert provisioned == dashboard_json(), "run `python -m projections.grafana` after changing dashboard SQL"
    panels = provisioned["panels"]
    saved = dashboard_queries()
    assert len(panels) == len(saved) == 4
    for panel in panels:
        source = panel["targets"][0]["meta"]["source"].rsplit("/", 1)[1].removesuffix(".sql")
        assert panel["targets"][0]["rawSql"] == grafana_sql(saved[source])
        assert panel["datasource"]["uid"] == datasource["uid"]


def test_compose_runs_vllm_with_runtime_lora_and_the_gateway() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in vllm["command"] and "--max-cpu-loras" in vllm["command"]
    inference = services["inference"]
    assert inference["environment"]["CDA_VLLM_URL"] == "http://vllm:8000"
    assert "cda inference serve --external" in " ".join(inference["command"])


def test_compose_publishes_the_api_and_keeps_the_gateway_internal() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "ports" not in services["inference"], "the gateway trusts company_id in its body: only the API may reach it"
    api = services["api"]
    assert "8000:8000" in api["ports"] and "cda api serve" in " ".join(api["command"])
    assert api["environment"]["CDA_INFERENCE_URL"] == "http://inference:8020"
    assert api["environment"]["CDA_API_EMBEDDED_PROJECTIONS"] == "false"
