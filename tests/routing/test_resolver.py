"""DnspythonResolver against a real DNS server on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import socket
import time

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.routing.resolver import (
    AddressRecord,
    DnsOutcome,
    MXRecord,
    Nameserver,
    SRVRecord,
    SystemNativeLookup,
    parse_nameserver,
)
from tests.support.dns import LoopbackDns


async def test_mx_records(loopback_dns: LoopbackDns) -> None:
    answer = await loopback_dns.resolver().resolve("mx-order.test", "MX")
    assert answer.outcome is DnsOutcome.OK
    assert sorted(answer.records, key=repr) == sorted(
        [
            MXRecord(20, "mx20.mx-order.test"),
            MXRecord(10, "mx10a.mx-order.test"),
            MXRecord(10, "mx10b.mx-order.test"),
        ],
        key=repr,
    )
    assert answer.owner == "mx-order.test"
    assert not answer.ad


async def test_address_records(loopback_dns: LoopbackDns) -> None:
    resolver = loopback_dns.resolver()
    v4 = await resolver.resolve("implicit.test", "A")
    v6 = await resolver.resolve("implicit.test", "AAAA")
    assert v4.records == (AddressRecord("192.0.2.30", socket.AF_INET),)
    assert v6.records == (AddressRecord("2001:db8::30", socket.AF_INET6),)


async def test_nxdomain_and_nodata(loopback_dns: LoopbackDns) -> None:
    resolver = loopback_dns.resolver()
    assert (await resolver.resolve("nothing-here.test", "MX")).outcome is DnsOutcome.NXDOMAIN
    assert (await resolver.resolve("nodata.test", "MX")).outcome is DnsOutcome.NODATA


async def test_servfail_and_refused(loopback_dns: LoopbackDns) -> None:
    resolver = loopback_dns.resolver()
    assert (await resolver.resolve("servfail.test", "MX")).outcome is DnsOutcome.SERVFAIL
    assert (await resolver.resolve("refused.test", "MX")).outcome is DnsOutcome.NO_RECOVERY


async def test_timeout_is_bounded(loopback_dns: LoopbackDns) -> None:
    resolver = loopback_dns.resolver(timeout=0.3)
    started = time.monotonic()
    answer = await resolver.resolve("never.timeout.test", "MX")
    assert answer.outcome is DnsOutcome.TIMEOUT
    assert answer.outcome.temporary
    assert time.monotonic() - started < 3


async def test_cname_chain_in_reply(loopback_dns: LoopbackDns) -> None:
    answer = await loopback_dns.resolver().resolve("alias.cname.test", "A")
    assert answer.outcome is DnsOutcome.OK
    assert answer.qname == "alias.cname.test"
    assert answer.canonical_name == "real.cname.test"
    assert answer.records == (AddressRecord("192.0.2.40", socket.AF_INET),)


async def test_dangling_cname_is_nodata_with_canonical_name(loopback_dns: LoopbackDns) -> None:
    answer = await loopback_dns.resolver().resolve("mx.dangling.test", "A")
    assert answer.outcome is DnsOutcome.NODATA
    assert answer.canonical_name == "target.elsewhere.test"


async def test_null_mx_record(loopback_dns: LoopbackDns) -> None:
    answer = await loopback_dns.resolver().resolve("nullmx.test", "MX")
    assert answer.records == (MXRecord(0, ""),)


async def test_srv_records(loopback_dns: LoopbackDns) -> None:
    answer = await loopback_dns.resolver().resolve("_submission._tcp.srv.test", "SRV")
    assert SRVRecord(10, 0, 2525, "c.srv.test") in answer.records
    assert len(answer.records) == 3


async def test_ad_bit_reported_only_with_dnssec(loopback_dns: LoopbackDns) -> None:
    signed = await loopback_dns.resolver(dnssec=True).resolve("signed.test", "MX")
    assert signed.outcome is DnsOutcome.OK and signed.ad
    unsigned = await loopback_dns.resolver(dnssec=True).resolve("dual.test", "MX")
    assert not unsigned.ad
    not_asked = await loopback_dns.resolver(dnssec=False).resolve("signed.test", "MX")
    assert not not_asked.ad


async def test_no_search_list_is_applied(loopback_dns: LoopbackDns) -> None:
    await loopback_dns.resolver().resolve("single-label", "A")
    assert loopback_dns.queries == [("single-label.", "A")]


async def test_unsupported_type_is_a_bug() -> None:
    from mailcarrier.routing.resolver import DnspythonResolver, ResolverConfig

    resolver = DnspythonResolver(ResolverConfig((Nameserver("127.0.0.1", 9),), 0.1))
    with pytest.raises(ValueError):
        await resolver.resolve("x.test", "NS")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", Nameserver("127.0.0.1", 53)),
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("[127.0.0.1]:5353", Nameserver("127.0.0.1", 5353)),
        ("::1", Nameserver("::1", 53)),
        ("[::1]", Nameserver("::1", 53)),
        ("[::1]:5300", Nameserver("::1", 5300)),
        ("[ipv6:::1]:5300", Nameserver("::1", 5300)),
    ],
)
def test_parse_nameserver(spec: str, expected: Nameserver) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize(
    "spec", ["dns.example", "[::1", "[::1]x", "[::1]:", "1.2.3.4:0", "1.2.3.4:x"]
)
def test_parse_nameserver_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match="dns_nameservers"):
        parse_nameserver(spec)


async def test_system_native_lookup_numeric() -> None:
    # Numeric hosts never touch a name service.
    answer = await SystemNativeLookup().getaddrinfo("127.0.0.1", socket.AF_UNSPEC)
    assert answer.addresses == (AddressRecord("127.0.0.1", socket.AF_INET),)
    assert answer.error == 0


async def test_native_lookup_asks_for_a_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo() would apply Python's IDNA 2003 ("fass.de"): the name is converted first,
    as for DNS; a name IDNA refuses is not looked up at all."""
    import asyncio

    asked: list[object] = []

    async def fake(self: object, host: object, *args: object, **kw: object) -> list[object]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake)
    answer = await SystemNativeLookup().getaddrinfo("faß.de", socket.AF_UNSPEC)
    assert [r.address for r in answer.addresses] == ["127.0.0.1"]
    refused = await SystemNativeLookup().getaddrinfo("ab--c.bücher.example", socket.AF_UNSPEC)
    assert (refused.addresses, refused.error) == ((), socket.EAI_NONAME)
    assert asked == ["xn--fa-hia.de"]
