"""BENCH A1: exact tool-call accuracy of each company's adapter vs the base on its held-out tasks, for acme and
for benchmark companies the base never saw in pretraining (`trainer.synthetic.BENCH_COMPANIES`: long ids,
amounts with cents, dates, names of several words, 6-8 tools sharing argument names). Goal, on every company:
adapter >= 0.9, base < 0.2.

Each adapter is made the way a user makes one: `cda tools register`, `cda train --examples` on the trainer's
data-sized defaults, the trainer worker (`cda trainer run`) and its gate, the inference service loading what the
gate published; then every held-out task is asked through the inference gateway with the call schema, once
with the company's adapter and once with the base.

    python benchmarks/a1_adapter_accuracy.py [--companies acme,nordwind,zephyr] [--train 800] [--held-out 200]
                                             [--steps N] [--force]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bench_line, cda_process, cda_run, ensure_broker, free_port, running_vllm  # noqa: E402
from core.health import answers_ok  # noqa: E402
from core.prompts import ToolSpec, call_schema, parse_call, render_prompt  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.workers import wait_until  # noqa: E402
from topics.admin import apply_catalog  # noqa: E402
from topics.credentials import credentials_file  # noqa: E402
from trainer.evaluate import score  # noqa: E402
from trainer.examples import Example  # noqa: E402
from trainer.synthetic import DEMO_COMPANY, DEMO_TOOLS, bench_company, demo_examples  # noqa: E402


def company_data(name: str, train: int, held_out: int) -> tuple[list[ToolSpec], list[Example], list[Example]]:
    """(tools, training examples, held-out examples none of which is also a training example)."""
    if name == DEMO_COMPANY:
        tools, trained, fresh = list(DEMO_TOOLS), demo_examples(train, seed=1), demo_examples(held_out * 3, seed=777)
    else:
        company = bench_company(name)
        tools, trained, fresh = list(company.specs), company.examples(train, "train"), company.examples(held_out * 3, "held-out")
    seen = {e.content_hash for e in trained}
    return tools, trained, [e for e in fresh if e.content_hash not in seen][:held_out]


def served_version(settings: Settings, company: str) -> str | None:
    try:
        listed = httpx.get(f"{settings.inference_url}/v1/adapters", timeout=5).json()
    except httpx.HTTPError:
        return None
    return next((str(a["version"]) for a in listed if a["company_id"] == company), None)


def _live(url: str) -> bool:
    return answers_ok(f"{url}/health/live")


def ask(settings: Settings, company: str, examples: list[Example], tools: list[ToolSpec], use_adapter: bool) -> float:
    """Exact-match rate through the gateway, asked as the agents ask (call schema, temperature 0)."""
    schema, right = call_schema(tools), 0
    with httpx.Client(base_url=settings.inference_url, timeout=120) as http:
        for example in examples:
            answer = http.post("/v1/complete", json={
                "company_id": company, "prompt": render_prompt(example.task, example.payload_json, tools),
                "max_tokens": 160, "json_schema": schema, "use_adapter": use_adapter})
            answer.raise_for_status()
            right += score(parse_call(answer.json()["text"]), example, tools)[0]
    return right / max(1, len(examples))


def one_company(settings: Settings, name: str, args: argparse.Namespace) -> None:
    tools, trained, held_out = company_data(name, args.train, args.held_out)
    folder = settings.home / "a1" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tools.json").write_text(json.dumps([{"name": t.name, "description": t.description, "parameters": t.parameters,
                                                    "method": "POST", "url": f"http://127.0.0.1:9/{t.name}"} for t in tools]))
    registered = cda_run(settings, "tools", "register", "--company", name, "--file", str(folder / "tools.json"))
    if registered.returncode != 0:
        raise SystemExit(f"registering {name}'s tools failed: {registered.stdout}{registered.stderr}")
    (folder / "train.jsonl").write_text("".join(json.dumps({"task": e.task, "data": json.loads(e.payload_json),
                                                            "tool": e.tool_name, "arguments": e.arguments}) + "\n"
                                                for e in trained))
    started = time.monotonic()
    asked = ["train", "--company", name, "--examples", str(folder / "train.jsonl")]
    asked += ["--steps", str(args.steps)] if args.steps else []
    asked += ["--force"] if args.force else []
    trained_run = cda_run(settings, *asked)
    train_s = time.monotonic() - started
    published = trained_run.returncode == 0
    print(trained_run.stdout.strip().splitlines()[-1] if trained_run.stdout.strip() else trained_run.stderr[-500:], flush=True)
    if published:
        wait_until(lambda: served_version(settings, name) is not None, 120, 1.0)
    version = served_version(settings, name)
    adapter = ask(settings, name, held_out, tools, use_adapter=True) if version else 0.0
    base = ask(settings, name, held_out, tools, use_adapter=False)
    bench_line("A1", company=name, adapter_exact=adapter, base_exact=base, published=int(version is not None),
               held_out=len(held_out), train_examples=len(trained), tools=len(tools), train_s=train_s,
               goal_adapter=0.9, goal_base_below=0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", default="acme,nordwind,zephyr")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None, help="override the trainer's data-sized default")
    parser.add_argument("--force", action="store_true", help="serve the adapter whatever the gate says")
    args = parser.parse_args()
    base = Settings()
    settings = base.model_copy(update={
        "home": Path(tempfile.mkdtemp(prefix="cda-a1-")), "topic_prefix": f"a1{uuid.uuid4().hex[:6]}.",
        "inference_url": f"http://127.0.0.1:{free_port()}", "base_model": base.base_model_path,
        "kafka_credentials": credentials_file(base)})  # the broker's, not the scratch home's
    ensure_broker(base)  # the user's local broker (under their CDA_HOME), not one in the scratch home
    apply_catalog(settings)
    with running_vllm(settings) as served:
        with cda_process(served, "trainer", "run"), cda_process(served, "inference", "serve", "--external"):
            wait_until(lambda: _live(served.inference_url), 180, 1.0)
            for name in args.companies.split(","):
                one_company(served, name, args)


if __name__ == "__main__":
    main()
