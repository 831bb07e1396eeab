"""RFC 6761 6.3 (routing/localhost.py): localhost names are loopback, asked of no name server.

Every lookup here gets resolvers that fail the test on any question: the answers must come
from localhost.py alone, for MX, SRV and address lookups, with DNS or the native lookup.
"""

from __future__ import annotations

import dataclasses
import random
import socket

import pytest

from mailcarrier import deliver, make_request
from mailcarrier.log import MemoryLog
from mailcarrier.routing.dnslookup import DnsStatus, dns_lookup
from mailcarrier.routing.localhost import is_localhost, localhost_answer, loopback_records
from mailcarrier.routing.mx import lookup_host_addresses, lookup_mx_hosts
from mailcarrier.routing.options import DnsSupport, RoutingOptions
from mailcarrier.routing.resolver import AddressRecord, DnsAnswer, DnsOutcome, NativeAnswer
from mailcarrier.routing.result import RouteFailure, RouteResult
from mailcarrier.routing.srv import lookup_srv_hosts
from tests.routing.helpers import FakeResolver, a, mx
from tests.support.dns import LoopbackDns
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings

V4, V6 = socket.AF_INET, socket.AF_INET6
BOTH = RoutingOptions(randomize_addresses=False)


class NoQueries:
    """A resolver and a native lookup that fail the test on any question."""

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer:
        pytest.fail(f"DNS query for {qname} {rdtype}")

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer:
        pytest.fail(f"getaddrinfo({host!r})")


def addresses(result: RouteResult | RouteFailure) -> list[tuple[str, str, int]]:
    assert isinstance(result, RouteResult), result
    return [(s.hostname, s.address, s.port) for s in result.addresses]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("localhost", True),
        ("LocalHost.", True),
        ("mx.localhost", True),
        ("a.b.LOCALHOST", True),
        ("localhost.example", False),
        ("notlocalhost", False),
        ("xlocalhost", False),
        ("", False),
    ],
)
def test_is_localhost(name: str, expected: bool) -> None:
    assert is_localhost(name) is expected


def test_answers() -> None:
    assert localhost_answer("localhost", "A") == DnsAnswer(
        "localhost", "A", DnsOutcome.OK, (AddressRecord("127.0.0.1", V4),)
    )
    assert localhost_answer("x.localhost", "AAAA").records == (AddressRecord("::1", V6),)
    for rdtype in ("MX", "SRV", "TLSA"):
        assert localhost_answer("localhost", rdtype).outcome is DnsOutcome.NODATA
    assert loopback_records((V6, V4)) == (AddressRecord("::1", V6), AddressRecord("127.0.0.1", V4))


@pytest.mark.parametrize(
    ("protocols", "expected"),
    [
        ((V4,), ["127.0.0.1"]),
        ((V6,), ["::1"]),
        ((V4, V6), ["127.0.0.1", "::1"]),
    ],
)
@pytest.mark.parametrize("name", ["localhost", "mx.LOCALHOST"])
async def test_mx_lookup_of_localhost_asks_nobody(
    protocols: tuple[int, ...], expected: list[str], name: str
) -> None:
    options = dataclasses.replace(BOTH, inet_protocols=protocols)
    never = NoQueries()
    result = await lookup_mx_hosts(
        name, 2525, resolver=never, options=options, native=never, rng=random.Random(1)
    )
    assert sorted(address for _h, address, _p in addresses(result)) == sorted(expected)
    assert {host for host, _a, _p in addresses(result)} == {name}


@pytest.mark.parametrize(
    "options",
    [
        dataclasses.replace(BOTH, host_lookup_dns=False, host_lookup_native=True),
        dataclasses.replace(BOTH, dns_support=DnsSupport.DISABLED, host_lookup_native=True),
    ],
    ids=["native", "dns-disabled"],
)
async def test_host_lookup_of_localhost_asks_nobody(options: RoutingOptions) -> None:
    never = NoQueries()
    result = await lookup_host_addresses(
        "a.localhost", 24, resolver=never, options=options, native=never
    )
    assert addresses(result) == [("a.localhost", "127.0.0.1", 24), ("a.localhost", "::1", 24)]


async def test_mx_host_under_localhost_is_loopback_without_a_query() -> None:
    dns = FakeResolver().add("example.test", mx(10, "mx.localhost"))
    result = await lookup_mx_hosts(
        "example.test", 2525, resolver=dns, options=BOTH, rng=random.Random(1)
    )
    assert addresses(result) == [
        ("mx.localhost", "127.0.0.1", 2525),
        ("mx.localhost", "::1", 2525),
    ]
    assert dns.queries == [("example.test", "MX")]


async def test_dns_lookup_answers_localhost_itself() -> None:
    never = NoQueries()
    found = await dns_lookup(never, "localhost", "A")
    assert found.status is DnsStatus.OK
    assert [rr.record for rr in found.records] == [a("127.0.0.1")]
    assert (await dns_lookup(never, "localhost", "MX")).status is DnsStatus.NOTFOUND


async def test_srv_lookup_for_localhost_finds_none_and_asks_nobody() -> None:
    never = NoQueries()
    options = dataclasses.replace(BOTH, use_srv_lookup=("submission",))
    result = await lookup_srv_hosts(
        "localhost", "submission", 587, resolver=never, options=options, native=never
    )
    assert isinstance(result, RouteFailure)
    assert result.dsn == "5.4.4"
    with_fallback = dataclasses.replace(options, allow_srv_lookup_fallback=True)
    result = await lookup_srv_hosts(
        "localhost", "submission", 587, resolver=never, options=with_fallback, native=never
    )
    assert addresses(result) == [("localhost", "127.0.0.1", 587), ("localhost", "::1", 587)]


# --- on the wire: a real DNS server on loopback that must hear nothing --------------------


@pytest.mark.parametrize("host_lookup", ["dns", "native"])
async def test_delivery_to_localhost_asks_no_name_server(
    loopback_dns: LoopbackDns, smtp_server: AiosmtpdServer, host_lookup: str
) -> None:
    port = smtp_server.port
    config = make_settings(
        dns_nameservers=f"127.0.0.1:{loopback_dns.port}",
        inet_protocols="ipv4",
        smtp_host_lookup=host_lookup,
    )
    relays = []
    for nexthop in (f"localhost:{port}", f"[localhost]:{port}", f"mx.localhost:{port}"):
        request = make_request(
            b"Subject: lo\n\nx\n", sender="a@example.org", recipients=["b@x"], nexthop=nexthop
        )
        result = await deliver(request, config=config, log=MemoryLog())
        relays.append((result.recipients[0].status.value, result.recipients[0].relay))
    assert relays == [
        ("sent", f"localhost[127.0.0.1]:{port}"),
        ("sent", f"localhost[127.0.0.1]:{port}"),
        ("sent", f"mx.localhost[127.0.0.1]:{port}"),
    ]
    assert len(smtp_server.messages) == 3
    assert loopback_dns.queries == []
