"""The benchmark scripts run and print their BENCH lines (figures are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, settings_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


def env_for(**fields: Any) -> dict[str, str]:
    """A benchmark's environment: these settings (the rest from the environment), through `settings_env`."""
    return settings_env(Settings(**fields))


def test_p1_prints_its_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path)
    result = subprocess.run([sys.executable, "benchmarks/p1_kafka_serde.py", "--events", "300", "--runs", "1"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH P1 ")]
    assert len(lines) == 2
    assert re.search(r"ratio=\d", lines[0]) and re.search(r"consume_ratio=\d", lines[1])


@pytest.mark.parametrize(
    ("script", "args", "lines"),
    [
        ("p2_projection_fold.py", ["--events", "2000", "--lag-seconds", "2", "--rate", "200"], 2),
        ("p3_rebuild.py", ["--events", "2000", "--runs", "1"], 1),
        ("p6_pipeline_overhead.py", ["--jobs", "3", "--units", "2"], 1),
        ("p9_agents_throughput.py", ["--jobs", "3", "--units", "2", "--concurrency", "2"], 1),
        ("p10_api.py", ["--rate", "20", "--seconds", "2", "--warmup", "0.5"], 1),
        ("p11_fairness.py", ["--flood-records", "20", "--tool-ms", "300", "--small-jobs", "6", "--small-rate", "6"], 1),
        ("p12_many_companies.py", ["--companies", "20", "--notes", "10", "--seconds", "3", "--rate", "5", "--part", "agents"], 1),
    ],
)
def test_broker_store_agent_and_api_benchmarks_print_their_figures(
    kafka_bootstrap: str, tmp_path: Path, script: str, args: list[str], lines: int
) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, clickhouse_url=None)
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    bench = [line for line in result.stdout.splitlines() if line.startswith("BENCH P")]
    assert len(bench) == lines, result.stdout
    assert "UnknownTopic" not in result.stdout + result.stderr, result.stderr[-3000:]  # every table the agents follow


def test_r1b_kills_two_agents_workers_and_loses_doubles_and_strands_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, clickhouse_url=None)
    result = subprocess.run([sys.executable, "benchmarks/r1b_agents_kills.py", "--companies", "6", "--kills", "3",
                             "--rate", "4", "--min-gap-s", "1", "--max-gap-s", "2"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("BENCH R1b ")]
    figures = dict(part.split("=", 1) for part in line.split()[2:])
    assert (figures["lost"], figures["doubled"], figures["stuck"], figures["ended_both_ways"], figures["uncommitted"]) == \
        ("0", "0", "0", "0", "0"), line  # and every acknowledgement committed: none held back for ever
    assert int(figures["jobs"]) > 0


@pytest.mark.vllm
@pytest.mark.parametrize(
    ("script", "args"),
    [("p4_multi_lora.py", ["--requests", "8", "--tokens", "4", "--adapters", "2", "--runs", "1"]),
     ("p5_adapter_ready.py", ["--companies", "2"]),
     ("p12_many_companies.py", ["--companies", "12", "--inference-seconds", "5", "--part", "inference"])],
)
def test_inference_benchmarks_print_their_figures(
    kafka_bootstrap: str, vllm_url: str, tiny_model: str, tmp_path: Path, script: str, args: list[str]
) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len([line for line in result.stdout.splitlines() if line.startswith("BENCH P")]) == 1, result.stdout


@pytest.mark.vllm
@pytest.mark.parametrize(
    ("script", "args", "bench_id"),
    [("p8_training_throughput.py", ["--examples", "64"], "P8"),
     ("a0_copy.py", ["--per-cell", "1"], "A0"),
     ("p7_qlora_memory.py", ["--steps", "2"], "P7")],
)
def test_trainer_benchmarks_print_their_figures(
    vllm_url: str, tiny_model: str, tmp_path: Path, script: str, args: list[str], bench_id: str
) -> None:
    env = env_for(home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line for line in result.stdout.splitlines() if line.startswith(f"BENCH {bench_id} ")], result.stdout


@pytest.mark.vllm
def test_a1_trains_through_the_users_path_and_prints_a_line_per_company(kafka_bootstrap: str, vllm_url: str,
                                                                       tiny_model: str, tmp_path: Path) -> None:
    """Tools registered, `cda train`, the trainer worker and the gate, the gateway: for acme and a benchmark company."""
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, "benchmarks/a1_adapter_accuracy.py", "--companies", "acme,zephyr",
                             "--train", "60", "--held-out", "4", "--steps", "3", "--force"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH A1 ")]
    assert [re.search(r"company=(\w+)", line).group(1) for line in lines] == ["acme", "zephyr"], result.stdout  # type: ignore[union-attr]
    assert all("published=1" in line for line in lines), result.stdout  # --force: served whatever the gate says


@pytest.mark.vllm
def test_a2_a3_show_the_base_using_memory_and_session_context(vllm_url: str, tiny_model: str, tmp_path: Path) -> None:
    env = env_for(home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, "benchmarks/a2_a3_context.py", "--jobs", "12"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = {line.split()[1]: dict(f.split("=", 1) for f in line.split()[2:])
               for line in result.stdout.splitlines() if line.startswith("BENCH A")}
    assert set(figures) == {"A2", "A3"}, result.stdout
    assert float(figures["A2"]["with_memory"]) > float(figures["A2"]["without_memory"]), result.stdout
    assert float(figures["A3"]["with_session"]) > float(figures["A3"]["without_session"]), result.stdout


@pytest.mark.vllm
def test_a5_a6_go_end_to_end_through_the_api_of_a_running_stack(kafka_bootstrap: str, vllm_url: str, tiny_model: str,
                                                                 tmp_path: Path) -> None:
    """`cda up`, a company onboarded through the API, memory and an automation history, an adapter trained through
    `POST /train-adapter`, records through `POST /process` in sessions: the A5 lines (plain and steering) and A6."""
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, "benchmarks/a5_end_to_end.py", "--companies", "acme", "--train", "120",
                             "--held-out", "6", "--paraphrases", "3", "--history", "3", "--steering", "2",
                             "--session-jobs", "3", "--steps", "8", "--force"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH A")]
    assert len(lines) == 3 and lines[1].startswith("BENCH A5") and "case=steering" in lines[1], result.stdout
    figures = dict(f.split("=", 1) for f in lines[0].split()[2:])
    assert figures["held_out"] == "6" and figures["status"] == "ready" and 0 <= float(figures["e2e_exact"]) <= 1
    assert int(figures["grounded_args"]) >= 3, result.stdout  # every ref and the zip: acme's calls copy them
    assert "kind_exact" not in figures["worst_kind"] and figures["worst_kind"] != "-:0.000", result.stdout  # per kind
    assert lines[2].startswith("BENCH A6 company=acme"), result.stdout


def test_a7_a8_run_steps_and_declines_end_to_end(kafka_bootstrap: str, vllm_url: str, tiny_model: str,
                                                 tmp_path: Path) -> None:
    """Kestrel onboarded through the API of `cda up`, the base first, then an adapter trained on labelled units of
    several calls and on declines: an A7 and an A8 line for each. The base takes one step per unit, so no unit
    that needs a lookup first can be right for it."""
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, "benchmarks/a7_a8_steps.py", "--train", "60", "--held-out", "8",
                             "--steps", "8", "--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("BENCH A")]
    assert [(line[1], line[2]) for line in lines] == [("A7", "model=base"), ("A8", "model=base"),
                                                      ("A7", "model=adapter"), ("A8", "model=adapter")], result.stdout
    figures = [dict(f.split("=", 1) for f in line[2:]) for line in lines]
    assert float(figures[0]["multi_step_exact"]) == 0.0, result.stdout
    assert all(0 <= float(f[k]) <= 1 for f in figures for k in ("sequence_exact", "declines_right") if k in f)


def test_r6_tries_every_attack_and_prints_all_refused(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, clickhouse_url=None)
    result = subprocess.run([sys.executable, "benchmarks/r6_attacks.py"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("BENCH R6 ")]
    figures = dict(part.split("=") for part in line.split()[2:])
    assert int(figures["tried"]) >= 15 and figures["refused"] == figures["tried"], result.stdout
    assert figures["leaked"] == "0" and figures["hung"] == "0", result.stdout


@pytest.mark.vllm
def test_d2_measures_adapters_downloaded_from_the_registry(kafka_bootstrap: str, vllm_url: str, tiny_model: str,
                                                           tmp_path: Path) -> None:
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path, vllm_url=vllm_url, base_model=tiny_model)
    result = subprocess.run([sys.executable, "benchmarks/d2_adapter_travel.py", "--companies", "2"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("BENCH D2 ")]
    assert "download_p50_ms=" in line and "companies=2" in line, line


@pytest.mark.timeout(900)
def test_d3_kills_a_node_of_a_three_broker_cluster_and_loses_and_doubles_nothing(kafka_bootstrap: str,
                                                                                tmp_path: Path) -> None:
    """A 3-node cluster from the same jars, secured like the single broker (replication 3, min.insync 2): a node
    SIGKILLed under a stream of jobs and training requests; a consumer group reading through it gets everything by
    itself, and the node rejoins when started again."""
    env = env_for(kafka_bootstrap=kafka_bootstrap, home=tmp_path)
    result = subprocess.run([sys.executable, "benchmarks/d3_cluster.py", "--events", "600"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=800)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("BENCH D3 ")]
    figures = dict(part.split("=") for part in line.split()[2:])
    assert (figures["lost"], figures["doubled"], figures["resumed"], figures["rejoined"]) == ("0", "0", "1", "1"), line
