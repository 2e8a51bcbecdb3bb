"""The one settings object, read from the environment (`CDA_*`), so every component agrees on paths and addresses."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of every cda process; each field is overridable as `CDA_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="CDA_", extra="ignore")

    home: Path = Field(default=Path(".cda"), description="Where local state lives: broker data, chDB, adapters.")
    kafka_bootstrap: str = Field(default="localhost:9092", description="Kafka bootstrap servers.")
    kafka_port: int = Field(default=9092, description="Port of the local broker started by `cda kafka up`.")
    kafka_controller_port: int = Field(default=9093, description="KRaft controller port of the local broker.")
    kafka_jars: Path | None = Field(default=None, description="Folder of the broker's jars; default <home>/kafka/lib.")
    kafka_heap: str = Field(default="512m", description="Java heap of the local broker.")
    kafka_timeout_s: float = Field(default=10.0, gt=0, description="Bound on any single broker round trip.")
    kafka_brokers: int = Field(default=1, ge=1, le=9, description="Nodes of the local cluster `cda kafka up` runs "
                               "(node i on CDA_KAFKA_PORT + 2i, its controller on the next port).")
    kafka_cluster_heap: str = Field(default="256m", description="Java heap of each node of a local cluster.")
    kafka_replication: int = Field(default=1, ge=1, description="Replicas of each catalog topic (3 on a cluster).")
    kafka_min_insync: int = Field(default=1, ge=1, description="min.insync.replicas of each catalog topic (2 on a "
                                  "cluster: a write acknowledged by two survives the loss of one).")
    kafka_auth: bool = Field(default=True, description="The local broker authenticates clients (SASL/SCRAM) and "
                             "authorizes them by ACL; false runs it open, as before.")
    kafka_principal: str | None = Field(default=None, description="The Kafka principal this process connects as; "
                                        "default its part's own (api, agents, ...), or operator at the CLI.")
    kafka_password: SecretStr | None = Field(default=None, description="That principal's password; default read "
                                             "from the credentials file.")
    kafka_credentials: Path | None = Field(default=None, description="The principals' passwords (mode 0600); "
                                           "default <home>/kafka/credentials.json, made when the local broker formats.")
    topic_prefix: str = Field(default="", description="Prepended to every catalog topic name (test isolation).")
    schema_registry_url: str | None = Field(default=None, description="Confluent schema registry; framing switches to it.")
    schema_registry_timeout_s: float = Field(default=5.0, gt=0, description="Bound on one schema-registry call, retries included.")
    clickhouse_url: str | None = Field(default=None, description="ClickHouse server URL; default is embedded chDB.")
    data_sealing: bool = Field(default=True, description="Seal each company's content on the non-compacted topics "
                               "with its own data key (crypto-shredding: forgetting the company deletes the key).")
    data_key_refresh_s: float = Field(default=5.0, gt=0, description="How stale a process's copy of the data keys "
                                      "may be: a forgotten company's content stops opening within this.")
    clickhouse_user: str | None = Field(default=None, description="The ClickHouse server's user (not for chDB).")
    clickhouse_password: SecretStr | None = Field(default=None, description="That user's password (not for chDB).")
    clickhouse_database: str = Field(default="cda", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Database of the views.")

    base_model: str | None = Field(default=None, description="Base model path or id; default the tiny local model.")
    served_base_name: str = Field(default="base", description="Name the base model is served under.")
    vllm_url: str = Field(default="http://localhost:8010", description="The vLLM OpenAI-compatible server (the "
                          "first, where there are several; the trainer's gate asks this one).")
    vllm_servers: int = Field(default=1, ge=1, le=16, description="vLLM servers the inference service runs, on the "
                              "port of CDA_VLLM_URL and the ports after it; companies are spread over them.")
    vllm_urls: str | None = Field(default=None, description="Comma-separated URLs of external vLLM servers to spread "
                                  "companies over (`cda inference serve --external`); default: CDA_VLLM_URL and "
                                  "the CDA_VLLM_SERVERS - 1 ports after it.")
    vllm_host: str = Field(default="127.0.0.1", description="Address a vLLM server the inference service runs listens "
                           "on (0.0.0.0 in a container, where the trainer's gate asks it from another).")
    vllm_python: str | None = Field(default=None, description="Interpreter that has vLLM; default this one.")
    vllm_max_loras: int = Field(default=8, ge=1, description="Adapters active in one batch.")
    vllm_max_cpu_loras: int = Field(default=32, ge=1, description="Adapters cached in memory.")
    vllm_max_lora_rank: int = Field(default=16, ge=1, description="Largest adapter rank the server takes.")
    vllm_max_model_len: int = Field(default=1024, ge=64, description="Context length served.")
    vllm_memory_fraction: float = Field(default=0.1, gt=0, le=1, description="--gpu-memory-utilization (CPU: of RAM).")
    vllm_start_timeout_s: float = Field(default=180.0, gt=0, description="Bound on the server's start-up.")
    vllm_watch_interval_s: float = Field(default=2.0, gt=0, description="How often the service checks that vLLM "
                                         "still serves every active adapter (and re-registers them after a restart).")
    adapter_registry_url: str | None = Field(default=None, description="The HTTP adapter registry the trainer "
                                             "publishes to and inference downloads from (no shared disk needed).")
    adapter_registry_token: SecretStr | None = Field(default=None, description="The registry's bearer token.")
    adapter_registry_timeout_s: float = Field(default=60.0, gt=0, description="Bound on one upload or download.")
    adapter_s3_url: str | None = Field(default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,62}(/[^\s]*)?$",
                                       description="An S3-compatible adapter store instead of the registry: "
                                       "s3://bucket[/prefix] (boto3, the `s3` extra).")
    adapter_s3_endpoint: str | None = Field(default=None, description="Endpoint of an S3-compatible server "
                                            "(default AWS).")
    adapter_s3_region: str = Field(default="us-east-1", description="The bucket's region.")
    adapter_s3_access_key_id: str | None = Field(default=None, description="Default: boto3's own credential chain.")
    adapter_s3_secret_access_key: SecretStr | None = Field(default=None, description="Default: boto3's chain.")
    inference_url: str = Field(default="http://localhost:8020", description="The cda inference gateway.")
    inference_timeout_s: float = Field(default=30.0, gt=0, description="Bound on one inference request.")
    inference_concurrency: int = Field(default=8, ge=1, description="Requests in flight per client.")
    example_api_url: str = Field(default="http://127.0.0.1:8030", description="The demo company's example API "
                                 "(`cda example-api serve` listens on its host and port).")
    trainer_min_exact_match: float = Field(default=0.8, ge=0, le=1, description="The gate's absolute floor: an adapter "
                                           "whose exact tool-call match is below it is not served, even if it beats the base.")
    trainer_min_kind_examples: int = Field(default=3, ge=1, description="Fewest held-out examples of one kind of "
                                           "task (one tool) the gate scores; a kind with fewer rejects the candidate.")
    trainer_gate_patience_s: float = Field(default=1800.0, ge=0, description="How long a trained candidate waits for "
                                           "vLLM to gate it (over redeliveries) before it is rejected as gate_unavailable: "
                                           "a gate that cannot run never passes by default.")
    trainer_read_ahead: int = Field(default=100, ge=1, description="Training requests read ahead of the one in "
                                    "training, to take them round robin by company (`trainer/queue.py`).")
    trainer_max_steps: int = Field(default=20_000, ge=1, description="Most training steps a request may ask for.")
    trainer_max_examples: int = Field(default=50_000, ge=1, description="Most examples a request may ask to use.")
    trainer_max_learning_rate: float = Field(default=0.05, gt=0, description="Largest learning rate a request may ask for.")
    trainer_min_learning_rate: float = Field(default=1e-7, gt=0, description="Smallest learning rate a request may ask for.")
    trainer_inline_examples_bytes: int = Field(default=256_000, ge=1, description="Examples larger than this (encoded) are "
                                               "stored under <home>/trainer/examples and referenced by the request.")
    bridge_max_response_bytes: int = Field(default=1_048_576, ge=1, description="Most bytes of a company API's answer "
                                           "the bridge reads; past it the call fails with response_too_large.")
    bridge_deadline_s: float = Field(default=30.0, gt=0, description="Bound on one tool call, its retries included.")
    bridge_attempts: int = Field(default=3, ge=1, description="Tries of one tool call in all (transport errors, "
                                 "timeouts, 429 and 5xx are tried again with the same Idempotency-Key).")
    bridge_backoff_s: float = Field(default=0.2, gt=0, description="First wait between tries of a tool call; it doubles.")
    bridge_secret_files_root: Path | None = Field(default=None, description="`file:` secret references may only name "
                                                  "files under this folder (default `$CDA_HOME/secrets`).")

    agents_group: str = Field(default="cda-agents", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                              description="Consumer group (Faust app id) of the agents; the topic prefix is prepended.")
    agents_session_timeout_s: float = Field(default=30.0, ge=3, le=300, description="How long the group waits for a "
                                            "silent agents worker before its partitions go to the others (heartbeats "
                                            "every tenth of it): after a crash, its jobs resume this much later.")
    agent_max_payload_bytes: int = Field(default=1_000_000, ge=1, description="Largest payload a job accepts "
                                         "(larger: job_failed payload_too_large).")
    agent_unit_steps: int = Field(default=4, ge=1, le=99, description="Decisions one unit (record) may take: "
                                  "calls, each shown with its answer to the next, until the model answers done "
                                  "(beyond: the unit fails step_limit, its calls kept).")
    agent_base_steps: int = Field(default=1, ge=1, le=99, description="Decisions a unit takes when the base model "
                                  "decides (no adapter): a base not trained on the steps format never answers done.")
    agent_jobs: int = Field(default=32, ge=1, description="Jobs the agents run at once, all companies together; "
                            "free slots go round robin over the companies with work (`streams.scheduler`).")
    agent_company_jobs: int = Field(default=4, ge=1, description="Jobs of one company running at once (jobs of one "
                                    "session run one at a time, in order).")
    agent_waiting_jobs: int = Field(default=10_000, ge=1, description="Jobs the agents hold queued before they "
                                    "stop reading requests (what they hold in memory).")
    agent_max_result_bytes: int = Field(default=65_536, ge=1_024, le=500_000, description="Most bytes of one "
                                        "call's answer recorded on the log (larger: its size and head, `streams/sizes.py`).")
    agent_job_deadline_s: float = Field(default=3600.0, gt=0, description="A job not ended this long after its "
                                        "request was made fails `deadline`, whatever it is doing; a company's own "
                                        "`job_deadline_s` (agent settings) replaces it.")
    agent_start_timeout_s: float = Field(default=60.0, gt=0, description="Bound on reading the tools and agent "
                                         "settings tables before the agents take requests.")

    # -- REST API (api, `cda api serve`, issue 12) ------------------------------------------------------
    api_training_quota: int = Field(default=2, ge=1, description="Training requests one company may have in flight "
                                    "(queued or training); past it `POST /train-adapter` answers 429 with Retry-After.")
    memory_prompt_tokens: int = Field(default=200, ge=0, description="Token budget of the notes recalled from "
                                      "memory into one prompt.")
    memory_prompt_notes: int = Field(default=4, ge=0, description="Most memory entries one prompt shows.")
    memory_recall_automation: int = Field(default=500, ge=0, description="Latest automation entries (the "
                                          "company's job history) recall ranks, beside every preference and fact.")
    memory_automation_kept: int = Field(default=500, ge=1, description="Automation entries (the company's job "
                                        "history) kept per company; older ones are deleted with a tombstone on "
                                        "the compacted topic, so memory stays bounded as jobs accumulate.")
    memory_history_notes: bool = Field(default=False, description="Show an automation-history entry (what an "
                                       "earlier job did) among a prompt's notes. Off: measured, it decides no "
                                       "argument and recalls the model's own mistakes as practice (README, BENCH A5).")
    memory_max_entry_chars: int = Field(default=2_000, ge=1, description="Longest memory entry a company may write.")
    session_prompt_jobs: int = Field(default=3, ge=1, description="Earlier results of a session one prompt shows "
                                     "(the latest ones).")
    session_idle_s: float = Field(default=3600.0, gt=0, description="A session unused this long is closed by the agents.")
    environment: str = Field(default="development", pattern=r"^(development|staging|production)$",
                             description="Where this runs; outside development a placeholder operator key is refused.")
    api_host: str = Field(default="127.0.0.1", description="Address `cda api serve` listens on.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `cda api serve` listens on.")
    api_operator_key: SecretStr | None = Field(default=None, description="The operator's key (creates companies, "
                                               "rotates and revokes keys over the API); unset: no operator routes.")
    api_rate_per_s: float = Field(default=50.0, gt=0, description="Requests per second one API key may make (sustained).")
    api_rate_burst: int = Field(default=100, ge=1, description="Requests one API key may make at once above its rate.")
    api_max_body_bytes: int = Field(default=2_000_000, ge=1024, description="Largest request body (else 413).")
    api_company_networks: str = Field(default="", description="Comma-separated address ranges (CIDR) a company may "
                                      "let its tools reach itself (PUT /agent-settings); the operator grants others.")
    api_company_host_suffixes: str = Field(default="", description="Comma-separated host name suffixes (corp.example) "
                                           "a company may let its tools reach itself.")
    api_company_max_concurrency: int = Field(default=16, ge=1, description="Highest tool-call concurrency a company "
                                             "may set itself.")
    api_max_wait_s: float = Field(default=60.0, gt=0, description="Longest `?wait=` a job read may hold the request.")
    api_key_holds: int = Field(default=8, ge=1, description="Event streams and `?wait` reads one API key may hold "
                               "open at once (429 with Retry-After past it).")
    api_max_stream_s: float = Field(default=600.0, gt=0, description="Longest a job's event stream (SSE) stays open.")
    api_embedded_projections: bool = Field(default=True, description="With the embedded chDB store, run the "
                                           "projection runners inside `cda api serve` (one process owns the folder).")
    api_recent_kept: int = Field(default=100_000, ge=1, description="Jobs and training requests this process "
                                 "accepted that it remembers (a read right after the 202 answers queued, not 404).")

    @model_validator(mode="after")
    def _one_adapter_store(self) -> Settings:
        if self.adapter_registry_url and self.adapter_s3_url:
            raise ValueError("adapter_s3_url: set CDA_ADAPTER_REGISTRY_URL or CDA_ADAPTER_S3_URL, not both "
                             "(one store is where every adapter is announced from)")
        return self

    @model_validator(mode="after")
    def _operator_key_is_real(self) -> Settings:
        key = self.api_operator_key.get_secret_value() if self.api_operator_key else None
        placeholder = key is not None and (len(key) < 24 or key.lower() in {"changeme", "change-me", "placeholder",
                                                                             "operator", "secret", "dev"})
        if placeholder and self.environment != "development":
            raise ValueError(f"api_operator_key: a placeholder (or shorter than 24 characters) is refused in "
                             f"{self.environment}; set CDA_API_OPERATOR_KEY to a long random value")
        return self
    # -- end of REST API settings -------------------------------------------------------------------------------

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def clickhouse_dsn(self) -> str:
        """The server URL when configured, else the embedded chDB engine kept under the home folder."""
        return self.clickhouse_url or f"chdb://{self.home / 'clickhouse'}"

    @property
    def base_model_path(self) -> str:
        return self.base_model or str(self.home / "models" / "tiny")

    @property
    def vllm_port(self) -> int:
        return int(self.vllm_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def vllm_backend_urls(self) -> list[str]:
        """Every vLLM server inference spreads companies over, CDA_VLLM_URL first."""
        if self.vllm_urls:
            return [u.strip().rstrip("/") for u in self.vllm_urls.split(",") if u.strip()]
        head = self.vllm_url.rstrip("/").rsplit(":", 1)[0]
        return [self.vllm_url.rstrip("/"), *(f"{head}:{self.vllm_port + i}" for i in range(1, self.vllm_servers))]

    @property
    def kafka_lib(self) -> Path:
        return self.kafka_jars.expanduser().resolve() if self.kafka_jars else self.kafka_dir / "lib"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead of mutating this one."""
    return Settings()


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that gives a child process exactly these settings (CDA_* replaced, the rest kept)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("CDA_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"CDA_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env
