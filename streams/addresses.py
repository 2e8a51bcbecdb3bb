"""Which addresses a company's tools may reach, decided before any connection is made.

A tool's URL comes from a company (and its arguments from a model), so without a check an agent could be
made to call the cloud metadata service, a database on the private network or the host itself (SSRF).
The rule: every address the host resolves to must be globally routable; a host that resolves to a
loopback, private, link-local, multicast, reserved, unspecified, shared or metadata address is refused,
unless the company's allow-list names the host (`host` or `host:port`). Cloud metadata endpoints stay
refused even when named: no company tool lives there, and a leaked instance credential is the worst case.

IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, 6to4, Teredo, NAT64 `64:ff9b::/96`) are
judged by the IPv4 address inside them. The caller then connects to one of the addresses checked here
(it pins them), so a second DNS answer cannot swap in another address (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Protocol

from streams.errors import BlockedAddress, UnresolvedHost

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
    "169.254.170.2",  # AWS ECS task credentials
    "169.254.169.123",  # AWS time sync
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::23",  # AWS DNS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure wire server
    "192.0.0.192",  # Oracle Cloud
))
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.internal",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com", "metadata.packet.net",
})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressResolver(Protocol):
    """Host name -> addresses; injectable so tests decide what a name resolves to without any DNS."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), run off the event loop."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnresolvedHost(f"host {host!r} did not resolve: {exc}") from exc
        seen: dict[IPAddress, None] = {}
        for _family, _type, _proto, _name, sockaddr in infos:
            seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
        return list(seen)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """Why tools may not reach `address` ('loopback', 'private', 'metadata', ...), or None when they may."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return classify(inner)
    if address in METADATA_ADDRESSES:
        return "metadata"
    for reason, hit in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                        ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                        ("reserved", address.is_reserved), ("private", address.is_private)):
        if hit:
            return reason
    return None if address.is_global else "not globally routable"


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form hosts are compared in."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def split_entry(entry: str) -> tuple[str, str | None]:
    """An allow-list entry (`host`, `host:port`, IPv6 as `[::1]:8080` or `::1`) as its normalized host and port."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        bracketed, _, rest = entry[1:].partition("]")
        host, port = bracketed, rest.removeprefix(":") or None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host, port = entry, None
    return normalize_host(host), port


def is_allowed(host: str, port: int, allowed_hosts: Iterable[str]) -> bool:
    """Whether the allow-list names `host:port` (entries name a port: one service of a host, never all)."""
    name = normalize_host(host)
    for entry in allowed_hosts:
        entry_host, entry_port = split_entry(entry)
        if entry_host == name and entry_port == str(port):  # an entry without a port allows nothing
            return True
    return False


def literal_address(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal, else None (a name to resolve)."""
    try:
        return ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return None


async def checked_addresses(host: str, port: int, allowed_hosts: Iterable[str],
                            resolver: AddressResolver) -> Sequence[IPAddress]:
    """The addresses to connect to for `host:port`, every one of them checked; `BlockedAddress` otherwise.

    A name that resolves to several addresses is refused when any of them is refused: the caller may
    connect to any of them, and a name mixing public and private answers is the rebinding trick itself."""
    name = normalize_host(host)
    allowed = is_allowed(name, port, allowed_hosts)
    if name in METADATA_NAMES:
        raise BlockedAddress(f"host {name!r} is a cloud metadata service")
    literal = literal_address(name)
    addresses = [literal] if literal is not None else await resolver.resolve(name, port)
    if not addresses:
        raise UnresolvedHost(f"host {name!r} resolved to no address")
    for address in addresses:
        reason = classify(address)
        if reason == "metadata" or (reason is not None and not allowed):
            raise BlockedAddress(f"host {name!r} resolves to {address} ({reason}); "
                                 "tools may reach it only when the company's allowed_hosts names it")
    return addresses
