"""What a company may set for its own agents (`PUT /agent-settings`), within the operator's policy: hosts in the
address ranges and under the name suffixes the operator lists (`CDA_API_COMPANY_NETWORKS`,
`CDA_API_COMPANY_HOST_SUFFIXES`), secret references in the company's own namespace (`env:<COMPANY>_…`, or
`file:` under `<home>/secrets/<company>/`). What the operator granted already stays grantable."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from core.paths import is_within
from core.settings import Settings
from streams.addresses import split_entry


def entries(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def env_prefix(company_id: str) -> str:
    """`acme-corp` -> `ACME_CORP_`: the environment names a company's secret references may use."""
    return re.sub(r"[^A-Z0-9]", "_", company_id.upper()) + "_"


def port_refusal(entry: str) -> str | None:
    """Why `entry` is no host:port (an allow-list or secret-host entry names one port, never all of a host's)."""
    port = split_entry(entry)[1]
    if port is None or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c in entry for c in "/@ \t\r\n"):
        return f"{entry!r} names no port: expected host:port (IPv6 as [addr]:port); an entry allows one port"
    return None


def host_refusal(settings: Settings, entry: str) -> str | None:
    """Why `entry` (`host`, `host:port`, `[v6]:port`) is outside the policy; None when it is inside."""
    host = split_entry(entry)[0]  # parsed as the bridge parses allowed_hosts
    if not host:
        return "an empty host"
    if (unported := port_refusal(entry)) is not None:
        return unported
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        suffixes = entries(settings.api_company_host_suffixes)
        if any(host == s.lower().lstrip(".") or host.endswith("." + s.lower().lstrip(".")) for s in suffixes):
            return None
        return (f"{host!r} is under none of the host suffixes the operator lets companies allow "
                f"({', '.join(suffixes) or 'none'})")
    networks = entries(settings.api_company_networks)
    if any(address in ipaddress.ip_network(n, strict=False) for n in networks):
        return None
    return f"{host} is in none of the address ranges the operator lets companies allow ({', '.join(networks) or 'none'})"


def secret_refusal(settings: Settings, company_id: str, ref: str) -> str | None:
    """Why `ref` is outside the company's namespace; None when it is inside."""
    scheme, _, rest = ref.partition(":")
    if scheme == "env" and rest.startswith(env_prefix(company_id)) and len(rest) > len(env_prefix(company_id)):
        return None
    root = Path(settings.home) / "secrets" / company_id
    if scheme == "file" and is_within(Path(rest), root) and Path(rest).resolve() != root.resolve():
        return None
    return (f"{ref!r} is outside company {company_id}'s namespace (env:{env_prefix(company_id)}… or "
            f"file:{root}/…)")
