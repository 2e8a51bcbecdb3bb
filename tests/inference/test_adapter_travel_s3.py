"""Adapters that travel through an S3-compatible bucket: the trainer's home and inference's share nothing but the
bucket's URL. The server is a real S3 implementation (S3Proxy, `tests/inference/s3proxy.py`) spoken to by boto3;
with vLLM, the lifecycle downloads, checks and serves an adapter announced by its `s3://` URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.adapter_archive import digest, pack
from core.settings import Settings
from inference.adapter_places import company_adapter_dir
from inference.adapter_store import publish, store_for
from inference.adapter_store_s3 import S3AdapterStore
from inference.errors import AdapterInvalid, InferenceUnavailable
from tests.inference.s3proxy import CREDENTIAL, IDENTITY, S3Proxy
from tests.inference.test_adapter_travel import _adapter, serves_the_good_and_refuses_the_tampered
from topics.errors import EventValidationError
from topics.events import Event

BUCKET = "cda-adapters"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Proxy]:
    server = S3Proxy(tmp_path_factory.mktemp("s3proxy"))
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def _home(tmp_path: Path, name: str, s3: S3Proxy, prefix: str = "prod/adapters", secret: str = CREDENTIAL) -> Settings:
    return Settings(home=tmp_path / name, adapter_s3_url=f"s3://{BUCKET}/{prefix}", adapter_s3_endpoint=s3.url,
                    adapter_s3_access_key_id=IDENTITY, adapter_s3_secret_access_key=SecretStr(secret))


def _files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_adapter_travels_between_two_homes_through_the_bucket_only(tmp_path: Path, s3: S3Proxy) -> None:
    trainer, inference = _home(tmp_path, "trainer", s3), _home(tmp_path, "inference", s3)
    source = _adapter(trainer.home / "adapters" / "acme" / "v1")
    uri = publish(trainer, source)
    sha = digest(pack(source))
    assert uri == f"s3://{BUCKET}/prod/adapters/{sha}"
    stored = s3.client().get_object(Bucket=BUCKET, Key=f"prod/adapters/{sha}")["Body"].read()
    assert digest(stored) == sha  # the object is the archive its key names
    path = company_adapter_dir(inference, "acme", uri)
    assert path.is_relative_to(inference.home / "adapters" / "acme")
    assert _files(path) == _files(source)
    # downloaded once: the next activation needs no store (here, an endpoint where nothing listens)
    offline = inference.model_copy(update={"adapter_s3_endpoint": "http://127.0.0.1:1"})
    assert company_adapter_dir(offline, "acme", uri) == path
    # the announcement passes the lora_adapter_ready contract; a malformed s3 URI does not
    ready = {"request_id": "r1", "adapter_name": "acme", "version": "v1", "base_model": "/models/tiny", "rank": 8,
             "dataset_hash": "h", "metrics": {}}
    assert Event.new("lora_adapter_ready", "acme", uri=uri, **ready)["uri"] == uri
    with pytest.raises(EventValidationError, match="uri"):
        Event.new("lora_adapter_ready", "acme", uri=f"s3://{BUCKET}/prod/adapters/not-a-hash", **ready)


def test_a_tampered_object_another_bucket_a_missing_key_and_a_wrong_secret_are_refused(
        tmp_path: Path, s3: S3Proxy) -> None:
    trainer = _home(tmp_path, "trainer", s3)
    uri = publish(trainer, _adapter(tmp_path / "a"))
    key = uri.removeprefix(f"s3://{BUCKET}/")
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=pack(_adapter(tmp_path / "b", seed=2)))  # altered in place
    inference = _home(tmp_path, "inference", s3)
    with pytest.raises(AdapterInvalid) as refused:
        company_adapter_dir(inference, "acme", uri)
    assert refused.value.kind == "hash_mismatch"
    acme = inference.home / "adapters" / "acme"
    assert not acme.exists() or not any(acme.iterdir())  # nothing half-unpacked is left to load
    for foreign in (f"s3://another-bucket/prod/adapters/{'0' * 64}", f"s3://{BUCKET}/staging/{'0' * 64}"):
        with pytest.raises(AdapterInvalid) as refusal:
            company_adapter_dir(inference, "acme", foreign)
        assert refusal.value.kind == "foreign_uri"
    with pytest.raises(AdapterInvalid) as missing:
        company_adapter_dir(inference, "acme", S3AdapterStore.from_settings(inference).uri_of("b" * 64))
    assert missing.value.kind == "missing"
    with pytest.raises(InferenceUnavailable, match="did not take"):
        publish(_home(tmp_path, "intruder", s3, secret="not-the-secret"), _adapter(tmp_path / "c", seed=3))
    with pytest.raises(InferenceUnavailable, match="unreachable"):
        store_for(_home(tmp_path, "late", s3).model_copy(update={"adapter_s3_endpoint": "http://127.0.0.1:1"})) \
            .get(f"s3://{BUCKET}/prod/adapters/{'c' * 64}")


def test_one_store_is_configured_at_a_time(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(home=tmp_path, adapter_s3_url=f"s3://{BUCKET}", adapter_registry_url="http://127.0.0.1:9")
    with pytest.raises(ValidationError, match="adapter_s3_url"):
        Settings(home=tmp_path, adapter_s3_url="https://not-s3/bucket")


@pytest.mark.kafka
@pytest.mark.vllm
def test_inference_downloads_checks_and_serves_an_adapter_from_the_bucket(  # type: ignore[no-untyped-def]
        catalog, vllm_url: str, tiny_model: str, s3: S3Proxy, tmp_path: Path) -> None:
    """The lifecycle, in a home of its own, serves the version an `s3://` announcement names, and refuses one
    whose object was altered in the bucket while the good one keeps serving."""
    from inference.random_adapter import make_adapter

    settings = catalog("lora_adapter_ready", "lora_training_status", "company_adapters", "dead_letters")
    settings = settings.model_copy(update={
        "vllm_url": vllm_url, "base_model": tiny_model, "home": tmp_path / "inference",
        "adapter_s3_url": f"s3://{BUCKET}/served", "adapter_s3_endpoint": s3.url,
        "adapter_s3_access_key_id": IDENTITY, "adapter_s3_secret_access_key": SecretStr(CREDENTIAL)})
    trainer = _home(tmp_path, "trainer", s3, prefix="served")
    good = publish(trainer, make_adapter(tiny_model, tmp_path / "trainer" / "a", seed=1))
    bad = publish(trainer, make_adapter(tiny_model, tmp_path / "trainer" / "b", seed=2))
    s3.client().put_object(Bucket=BUCKET, Key=bad.removeprefix(f"s3://{BUCKET}/"),
                           Body=pack(_adapter(tmp_path / "x", seed=4)))
    serves_the_good_and_refuses_the_tampered(settings, good, bad)
