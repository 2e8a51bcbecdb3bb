"""BENCH R1b: two agents workers in one consumer group, SIGKILLed at random under a stream of jobs across many
companies. Printed: lost effects (a record whose call never reached the company's API), doubled effects (a
record whose call took effect twice) and stuck jobs (requested, never ended) once the stream has drained:
all three must be 0.

Each worker is `cda agents run`'s own code (`streams.app.run_agents`) in its own process, with the model a
fixed-latency stand-in (as in P6); the tools are the example API's on loopback, which counts every effect.
After each kill the worker is started again at once, so the group rebalances twice per kill.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agents_common import TASK, SimulatedModel, company_tools, job_ends, onboard_companies  # noqa: E402
from benchmarks.common import bench_line, ensure_broker, options, scratch_topics, stop_child  # noqa: E402
from core.settings import Settings, settings_env  # noqa: E402
from core.workers import wait_until  # noqa: E402
from examples.company_api import run_in_thread  # noqa: E402
from streams.ids import job_id_for  # noqa: E402
from streams.openapi_document import load_document  # noqa: E402
from topics.events import Event  # noqa: E402
from topics.producer import EventProducer  # noqa: E402
from topics.reads import read_to_end  # noqa: E402


def worker(latency_ms: float) -> None:
    """One agents worker (this script run with --worker): the agents' own code, the model a stand-in."""
    from streams.app import run_agents

    run_agents(Settings(), model=SimulatedModel(latency_ms))


class Worker:
    def __init__(self, env: dict[str, str], latency_ms: float, log: Path) -> None:
        self.env, self.latency_ms, self.log = env, latency_ms, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, __file__, "--worker", "--model-latency-ms",
                                             str(self.latency_ms)], env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process)


def feed(settings: Settings, companies: list[str], rate: float, stop: threading.Event, sent: list[Event],
         rng: random.Random) -> None:
    """Jobs of 1-3 records, each record a customer of its own, round random companies at `rate` per second."""
    with EventProducer(settings) as producer:
        while not stop.is_set():
            n = len(sent)
            company = rng.choice(companies)
            records = [{"customer": f"j{n}u{u}", "amount": 1 + u} for u in range(rng.randint(1, 3))]
            request_id = f"r1b-{n}"
            event = Event.new("data_process_requested", company, request_id=request_id,
                              job_id=job_id_for(company, request_id), task=TASK,
                              payload_json=json.dumps({"invoices": records}))
            producer.produce(event)
            producer.flush()
            sent.append(event)
            stop.wait(1 / rate)


def uncommitted(settings: Settings, group: str) -> int:
    """Records of `company_data` past the group's committed offsets (0 once every ended job was acknowledged)."""
    from confluent_kafka import Consumer, TopicPartition

    from topics.connection import client_config, topic_name

    topic = topic_name(settings, "company_data")
    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
        left = 0
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            left += high - (tp.offset if tp.offset >= 0 else low)
        return left
    finally:
        consumer.close()


def main() -> None:
    if "--worker" in sys.argv:  # a worker process this script started
        worker(float(sys.argv[sys.argv.index("--model-latency-ms") + 1]))
        return
    args = options(__doc__, companies=50, kills=20, rate=5.0, min_gap_s=1.0, max_gap_s=4.0, session_timeout_s=6.0,
                   drain_s=300.0, model_latency_ms=20.0, tool_ms=500)
    settings = Settings().model_copy(update={"agents_session_timeout_s": args.session_timeout_s})
    ensure_broker(settings)
    folder = Path(tempfile.mkdtemp(prefix="cda-bench-r1b-"))
    companies = [f"co{i:03d}" for i in range(args.companies)]
    rng = random.Random(1)
    with scratch_topics(settings, "company_data", "company_automation_jobs", "company_tools", "company_agents",
                        "company_memory", "company_sessions", "dead_letters") as scoped, \
            run_in_thread(folder / "api.sqlite3") as url:
        document, _ = load_document(f"{url}/openapi.json")
        onboard_companies(scoped, url, {c: company_tools(document, c, args.tool_ms) for c in companies})
        env = settings_env(scoped.model_copy(update={"home": folder}))
        workers = [Worker(env, args.model_latency_ms, folder / f"worker{i}.log") for i in range(2)]
        sent: list[Event] = []
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(scoped, companies, args.rate, stop, sent, rng), daemon=True)
        for w in workers:
            w.start()
        feeder.start()
        try:
            for _ in range(args.kills):
                time.sleep(rng.uniform(args.min_gap_s, args.max_gap_s))
                victim = rng.choice(workers)
                victim.kill()
                victim.start()
            stop.set()
            feeder.join(30)
            wanted = {str(e["job_id"]) for e in sent}

            def ends() -> dict[str, list[Event]]:
                return job_ends(scoped, "r1b")

            started = time.perf_counter()
            wait_until(lambda: wanted <= set(ends()), args.drain_s, 1.0)
            drain_s = time.perf_counter() - started
            group = f"{scoped.topic_prefix}{scoped.agents_group}"
            wait_until(lambda: uncommitted(scoped, group) == 0, 60, 1.0)  # every record's acknowledgement committed
            left = uncommitted(scoped, group)
        finally:
            stop.set()
            for w in workers:
                w.stop()
        import httpx

        ended = ends()
        stuck_ids = [str(e["job_id"]) for e in sent if str(e["job_id"]) not in ended]
        if stuck_ids:  # what the log holds of each: where it stopped
            seen: dict[str, list[str]] = {}
            for r in read_to_end(scoped, "company_automation_jobs", "r1b"):
                if str(r.event.data.get("job_id")) in stuck_ids:
                    seen.setdefault(str(r.event["job_id"]), []).append(r.event.type)
            where = {str(r.event["job_id"]): (r.partition, r.offset) for r in read_to_end(scoped, "company_data", "r1b")}
            for job_id in stuck_ids:
                print(f"stuck {job_id} at company_data{where.get(job_id)}: {seen.get(job_id, [])}", file=sys.stderr)
        effects = httpx.get(f"{url}/effects", params={"limit": 100_000}).json()
        replayed = httpx.get(f"{url}/effects/count").json()["replayed"]
    per_record: dict[str, int] = {}
    for effect in effects:
        ref = str(effect["arguments"]["ref"])
        per_record[ref] = per_record.get(ref, 0) + 1
    records = {f"ACME-{row['customer']}" for e in sent for row in json.loads(str(e["payload_json"]))["invoices"]}
    lost = sum(1 for r in records if per_record.get(r, 0) == 0)
    doubled = sum(n - 1 for n in per_record.values() if n > 1)
    stuck = sum(1 for e in sent if str(e["job_id"]) not in ended)
    ended_twice = sum(1 for events in ended.values() if len({ev.type for ev in events}) > 1)
    failed = sum(1 for events in ended.values() if events[-1].type == "job_failed")
    bench_line("R1b", lost=lost, doubled=doubled, stuck=stuck, ended_both_ways=ended_twice, uncommitted=left, failed_jobs=failed,
               jobs=len(sent), records=len(records), replayed_calls=replayed, kills=args.kills, companies=args.companies,
               drain_s=round(drain_s, 1), session_timeout_s=args.session_timeout_s, goal="0/0/0")


if __name__ == "__main__":
    main()
