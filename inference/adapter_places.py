"""Where a company's adapter files may be served from: inside that company's registry folder, never another's
(a URI of the configured adapter store is downloaded there first), and the names a version is staged under."""

from __future__ import annotations

from pathlib import Path

from core.identifiers import is_identifier
from core.paths import UnsafePath, is_within, safe_join
from core.settings import Settings
from inference.adapter_store import configured, materialize
from inference.errors import AdapterInvalid
from inference.routing import served_name, staging_name


def adapter_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def registry_root(settings: Settings) -> Path:
    """Where the trainer's registry keeps every company's versions (`<home>/adapters/<company>/<version>`)."""
    return settings.home / "adapters"


def company_adapter_dir(settings: Settings, company_id: str, uri: str) -> Path:
    """The adapter folder `uri` names, resolved (symlinks followed), when it lies inside the registry folder
    of `company_id`; otherwise `AdapterInvalid("foreign_uri")`: no company is ever served another's files. A URI of
    the configured adapter store is downloaded into that folder first (its hash checked: `adapter_store`)."""
    if configured(settings) and uri.startswith(("http://", "https://", "s3://")):
        try:
            into = safe_join(registry_root(settings), company_id)
        except UnsafePath as exc:
            raise AdapterInvalid("foreign_uri", f"no registry folder for company {company_id!r}: {exc}") from None
        return materialize(settings, company_id, uri, into)
    if "://" in uri and not uri.startswith("file://"):
        raise AdapterInvalid("foreign_uri", f"{uri!r} is not a local file URI")
    path = adapter_path(uri)
    if not path.is_absolute():
        raise AdapterInvalid("foreign_uri", f"{uri!r} is not an absolute path")
    try:
        root = safe_join(registry_root(settings), company_id)
    except UnsafePath as exc:
        raise AdapterInvalid("foreign_uri", f"no registry folder for company {company_id!r}: {exc}") from None
    resolved = path.resolve()
    if resolved == root or not is_within(resolved, root):
        raise AdapterInvalid("foreign_uri", f"{uri} lies outside the registry folder of {company_id} ({root})")
    return resolved


def checked_staging_name(company_id: str, version: str) -> str:
    if not is_identifier(version) or staging_name(company_id, version) == served_name(company_id):
        raise AdapterInvalid("invalid_version", f"version {version!r} cannot name an adapter")
    return staging_name(company_id, version)
