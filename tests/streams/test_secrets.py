"""Secret references resolved at call time: env and file backends, chosen by scheme, first hit wins;
errors name the reference and never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import MissingSecret
from streams.secrets import MAX_SECRET_BYTES, EnvSecrets, FileSecrets, SecretResolver, SecretValue

VALUE = "tok-5e3f-very-secret"


def test_env_reference_resolves_at_call_time() -> None:
    environ: dict[str, str] = {}
    resolver = SecretResolver([EnvSecrets(environ)])
    with pytest.raises(MissingSecret, match="env:ACME_TOKEN"):
        resolver.resolve("env:ACME_TOKEN")
    environ["ACME_TOKEN"] = VALUE  # set (or rotated) after the resolver was built: no new event needed
    assert resolver.resolve("env:ACME_TOKEN").reveal() == VALUE


def test_env_backend_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDA_TEST_SECRET_X", VALUE)
    assert SecretResolver().resolve("env:CDA_TEST_SECRET_X").reveal() == VALUE


def test_empty_env_value_is_missing() -> None:
    with pytest.raises(MissingSecret):
        SecretResolver([EnvSecrets({"EMPTY": ""})]).resolve("env:EMPTY")


def test_file_reference_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(VALUE + "\n")
    assert SecretResolver([FileSecrets()]).resolve(f"file:{path}").reveal() == VALUE


def test_missing_or_relative_file_is_missing(tmp_path: Path) -> None:
    resolver = SecretResolver([FileSecrets()])
    with pytest.raises(MissingSecret, match="is not set"):
        resolver.resolve(f"file:{tmp_path / 'absent'}")
    with pytest.raises(MissingSecret):
        resolver.resolve("file:relative/token")


def test_file_root_keeps_references_inside_it(tmp_path: Path) -> None:
    root, outside = tmp_path / "secrets", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "ok").write_text(VALUE)
    (outside / "no").write_text(VALUE)
    (root / "link").symlink_to(outside / "no")
    resolver = SecretResolver([FileSecrets(root)])
    assert resolver.resolve(f"file:{root / 'ok'}").reveal() == VALUE
    for ref in (f"file:{outside / 'no'}", f"file:{root}/../elsewhere/no", f"file:{root / 'link'}"):
        with pytest.raises(MissingSecret):
            resolver.resolve(ref)


def test_oversize_and_binary_files_are_refused_without_their_content(tmp_path: Path) -> None:
    big, binary = tmp_path / "big", tmp_path / "binary"
    big.write_text("x" * (MAX_SECRET_BYTES + 1))
    binary.write_bytes(b"\xff\xfe" + VALUE.encode())
    resolver = SecretResolver([FileSecrets()])
    with pytest.raises(MissingSecret):
        resolver.resolve(f"file:{big}")
    with pytest.raises(MissingSecret) as raised:
        resolver.resolve(f"file:{binary}")
    assert VALUE not in str(raised.value) and raised.value.__cause__ is None


def test_backends_of_the_scheme_are_asked_in_order_first_hit_wins() -> None:
    resolver = SecretResolver([EnvSecrets({"A": "first"}), EnvSecrets({"A": "second", "B": "only-second"})])
    assert resolver.resolve("env:A").reveal() == "first"
    assert resolver.resolve("env:B").reveal() == "only-second"


@pytest.mark.parametrize("ref", ["vault:kv/acme", "ACME_TOKEN", "env:", ":x"])
def test_unknown_scheme_or_malformed_reference_is_missing(ref: str) -> None:
    with pytest.raises(MissingSecret):
        SecretResolver([EnvSecrets({"ACME_TOKEN": VALUE}), FileSecrets()]).resolve(ref)


def test_secret_value_hides_itself_when_formatted() -> None:
    secret = SecretValue(VALUE)
    assert VALUE not in repr(secret) and VALUE not in str(secret) and VALUE not in f"{secret} {[secret]}"
    assert secret.reveal() == VALUE
