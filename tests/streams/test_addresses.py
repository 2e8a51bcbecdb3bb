"""The address classifier and check: which hosts company tools may reach. No DNS and no traffic: names
resolve through a fake resolver."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from streams.addresses import IPAddress, checked_addresses, classify, embedded_ipv4, is_allowed
from streams.errors import BlockedAddress, UnresolvedHost


class FakeResolver:
    """Resolves from a table; records every name asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.table:
            raise UnresolvedHost(f"host {host!r} did not resolve")
        return [ipaddress.ip_address(a) for a in self.table[host]]


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("169.254.10.10", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("168.63.129.16", "metadata"), ("169.254.170.2", "metadata"),
    ("100.64.0.1", "not globally routable"),  # carrier-grade NAT (shared address space)
    ("192.0.2.1", "private"),  # documentation (TEST-NET-1)
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 wrapping 169.254.169.254
    ("93.184.216.34", None), ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_classify(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


def test_embedded_ipv4_of_a_plain_ipv6_is_none() -> None:
    assert embedded_ipv4(ipaddress.ip_address("2606:4700:4700::1111")) is None
    assert embedded_ipv4(ipaddress.ip_address("::ffff:1.2.3.4")) == ipaddress.ip_address("1.2.3.4")


@pytest.mark.parametrize(("host", "port", "allowed", "expected"), [
    ("api.acme.test", 443, ["api.acme.test:443"], True),
    ("API.Acme.Test.", 443, ["api.acme.test:443"], True),
    ("api.acme.test", 443, ["api.acme.test"], False),  # no port: allows nothing
    ("api.acme.test", 8080, ["api.acme.test:8080"], True),
    ("api.acme.test", 8081, ["api.acme.test:8080"], False),
    ("127.0.0.1", 9000, ["127.0.0.1"], False),
    ("127.0.0.1", 9000, ["127.0.0.1:9000"], True),
    ("::1", 9000, ["[::1]:9000"], True),
    ("[::1]", 9000, ["[::1]:9000"], True),
    ("::1", 9000, ["::1"], False),
    ("::1", 9001, ["[::1]:9000"], False),
    ("other.test", 80, ["api.acme.test:80"], False),
])
def test_allow_list_entries_name_host_and_port(host: str, port: int, allowed: list[str], expected: bool) -> None:
    assert is_allowed(host, port, allowed) is expected


def check(host: str, resolver: FakeResolver, allowed: frozenset[str] = frozenset(), port: int = 443) -> list[str]:
    return [str(a) for a in asyncio.run(checked_addresses(host, port, allowed, resolver))]


def test_public_name_passes_with_its_addresses() -> None:
    resolver = FakeResolver({"api.acme.test": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert check("api.acme.test", resolver) == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "::ffff:127.0.0.1", "10.0.0.5", "169.254.169.254", "0.0.0.0"])
def test_private_literals_are_refused_without_resolving(host: str) -> None:
    resolver = FakeResolver({})
    with pytest.raises(BlockedAddress):
        check(host, resolver)
    assert resolver.asked == []


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "instance-data"])
def test_metadata_names_are_refused_before_resolution_even_when_allowed(host: str) -> None:
    resolver = FakeResolver({})
    with pytest.raises(BlockedAddress, match="metadata"):
        check(host, resolver, frozenset({host}))
    assert resolver.asked == []


def test_a_name_with_any_private_answer_is_refused() -> None:
    """A name answering with a public and a private address is the rebinding trick: refuse it."""
    resolver = FakeResolver({"rebind.test": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        check("rebind.test", resolver)


def test_allow_list_admits_a_private_host_but_never_metadata() -> None:
    resolver = FakeResolver({"intranet.acme.test": ["10.0.0.7"], "sneaky.test": ["169.254.169.254"]})
    assert check("intranet.acme.test", resolver, frozenset({"intranet.acme.test:443"})) == ["10.0.0.7"]
    assert check("127.0.0.1", resolver, frozenset({"127.0.0.1:443"})) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress, match="metadata"):
        check("sneaky.test", resolver, frozenset({"sneaky.test:443"}))
    with pytest.raises(BlockedAddress):
        check("127.0.0.1", resolver, frozenset({"127.0.0.1:80"}))


def test_unresolved_name_is_retryable_transport_failure() -> None:
    with pytest.raises(UnresolvedHost) as raised:
        check("nowhere.test", FakeResolver({}))
    assert raised.value.kind == "transport" and raised.value.retryable
