"""The one settings object, read from the environment (`CDA_*`), so every component agrees on paths and addresses."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    topic_prefix: str = Field(default="", description="Prepended to every catalog topic name (test isolation).")
    schema_registry_url: str | None = Field(default=None, description="Confluent schema registry; framing switches to it.")
    clickhouse_url: str | None = Field(default=None, description="ClickHouse server URL; default is embedded chDB.")
    clickhouse_database: str = Field(default="cda", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Database of the views.")

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
    def kafka_lib(self) -> Path:
        return self.kafka_jars.expanduser().resolve() if self.kafka_jars else self.kafka_dir / "lib"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead of mutating this one."""
    return Settings()
