"""Postfix dns_lookup() semantics over a fake resolver: statuses, texts, precedence, CNAMEs."""

from __future__ import annotations

import pytest

from mailcarrier.routing.dnslookup import DnsStatus, dns_lookup, dns_lookup_types, valid_hostname
from mailcarrier.routing.resolver import DnsOutcome
from tests.routing.helpers import FakeResolver, a, aaaa, mx, srv


async def test_invalid_names_are_not_asked() -> None:
    dns = FakeResolver()
    for name in ("192.0.2.1", "bad..name", "-x.example"):
        result = await dns_lookup(dns, name, "A")
        assert result.status is DnsStatus.NOTFOUND
        assert result.reason == f"Name service error for {name}: invalid host or domain name"
    assert dns.queries == []


async def test_precedence_retry_beats_notfound() -> None:
    dns = FakeResolver().add("h.example").fail("h.example", "AAAA", DnsOutcome.SERVFAIL)
    result = await dns_lookup_types(dns, "h.example", ["A", "AAAA"])
    assert result.status is DnsStatus.RETRY
    assert result.reason.endswith("name=h.example type=AAAA: Host not found, try again")


async def test_ok_beats_failure_and_merges() -> None:
    dns = FakeResolver().add("h.example", a("192.0.2.1"), aaaa("2001:db8::1"))
    dns.fail("h.example", "A", DnsOutcome.TIMEOUT)
    result = await dns_lookup_types(dns, "h.example", ["A", "AAAA"])
    assert result.status is DnsStatus.OK
    assert [rr.record for rr in result.records] == [aaaa("2001:db8::1")]


async def test_null_srv_and_malformed_srv() -> None:
    dns = FakeResolver().add("_x._tcp.a.example", srv(0, 0, 0, ""))
    dns.add("_x._tcp.b.example", srv(0, 0, 25, "no spaces allowed"))
    assert (await dns_lookup(dns, "_x._tcp.a.example", "SRV")).status is DnsStatus.NULLSRV
    assert (await dns_lookup(dns, "_x._tcp.b.example", "SRV")).status is DnsStatus.INVAL


async def test_numeric_mx_name_is_accepted() -> None:
    dns = FakeResolver().add("example.com", mx(10, "192.0.2.1"))
    assert (await dns_lookup(dns, "example.com", "MX")).status is DnsStatus.OK


async def test_cname_loop_is_bounded() -> None:
    dns = FakeResolver()
    dns.records["a.example"] = []
    dns.cnames.update({"a.example": "b.example", "b.example": "a.example"})
    dns.records["b.example"] = []
    result = await dns_lookup(dns, "a.example", "A")
    assert result.status is DnsStatus.NOTFOUND
    assert result.reason.startswith("Name server loop for ")
    assert len(dns.queries) == 10


async def test_cname_chase_keeps_query_name_and_ad() -> None:
    dns = FakeResolver().add("t.example", a("192.0.2.9"))
    dns.records["alias.example"] = []
    dns.cnames["alias.example"] = "t.example"
    dns.ad.add("t.example")
    result = await dns_lookup(dns, "alias.example", "A")
    assert result.status is DnsStatus.OK
    (rr,) = result.records
    assert (rr.qname, rr.rname, rr.dnssec_valid) == ("alias.example", "t.example", True)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.com", True),
        ("_submission._tcp.example.com", True),
        ("a-b.example", True),
        ("a.-b.example", False),
        ("a..b", False),
        ("1.2.3", False),
        ("x" * 64 + ".example", False),
        ("", False),
    ],
)
def test_valid_hostname(name: str, valid: bool) -> None:
    assert valid_hostname(name) is valid
