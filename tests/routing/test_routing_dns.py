"""MX and SRV routing end to end through dnspython and a real DNS server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import random
import socket

from mailcarrier.routing.mx import lookup_host_addresses, lookup_mx_hosts
from mailcarrier.routing.options import AddressPreference, DnsSupport, RoutingOptions
from mailcarrier.routing.result import RouteFailure, RouteResult
from mailcarrier.routing.selfaddr import OwnAddresses
from mailcarrier.routing.srv import lookup_srv_hosts
from tests.support.dns import LoopbackDns

OPTIONS = RoutingOptions(randomize_addresses=False, own=OwnAddresses(frozenset({"127.0.0.1"})))


async def route(
    dns: LoopbackDns,
    domain: str,
    options: RoutingOptions = OPTIONS,
    *,
    seed: int = 0,
    timeout: float = 2.0,
) -> RouteResult | RouteFailure:
    resolver = dns.resolver(timeout=timeout, dnssec=options.dns_support is DnsSupport.DNSSEC)
    return await lookup_mx_hosts(
        domain, 25, resolver=resolver, options=options, rng=random.Random(seed)
    )


def addrs(result: RouteResult | RouteFailure) -> list[str]:
    assert isinstance(result, RouteResult), result
    return [s.address for s in result.addresses]


def failure(result: RouteResult | RouteFailure) -> RouteFailure:
    assert isinstance(result, RouteFailure), result
    return result


async def test_mx_order(loopback_dns: LoopbackDns) -> None:
    got = addrs(await route(loopback_dns, "mx-order.test"))
    assert sorted(got[:2]) == ["192.0.2.11", "192.0.2.12"]
    assert got[2] == "192.0.2.20"


async def test_mx_randomization_is_seeded(loopback_dns: LoopbackDns) -> None:
    shuffled = dataclasses.replace(OPTIONS, randomize_addresses=True)
    orders = {
        tuple(addrs(await route(loopback_dns, "mx-order.test", shuffled, seed=s)))
        for s in range(12)
    }
    assert {o[2] for o in orders} == {"192.0.2.20"}
    assert {o[:2] for o in orders} == {
        ("192.0.2.11", "192.0.2.12"),
        ("192.0.2.12", "192.0.2.11"),
    }
    one = addrs(await route(loopback_dns, "mx-order.test", shuffled, seed=5))
    assert one == addrs(await route(loopback_dns, "mx-order.test", shuffled, seed=5))


async def test_implicit_mx(loopback_dns: LoopbackDns) -> None:
    result = await route(loopback_dns, "implicit.test")
    assert addrs(result) == ["192.0.2.30", "2001:db8::30"]
    assert isinstance(result, RouteResult)
    assert {s.hostname for s in result.addresses} == {"implicit.test"}


async def test_null_mx(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "nullmx.test"))
    assert (bad.status, bad.dsn, bad.diagnostic) == (
        "bounced",
        "5.1.10",
        "Domain nullmx.test does not accept mail (nullMX)",
    )


async def test_nxdomain(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "no-such-domain.test"))
    assert (bad.status, bad.dsn) == ("bounced", "5.4.4")
    assert bad.diagnostic == (
        "Host or domain name not found. Name service error for "
        "name=no-such-domain.test type=AAAA: Host not found"
    )


async def test_servfail_defers(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "servfail.test"))
    assert (bad.status, bad.dsn) == ("deferred", "4.4.3")
    assert bad.diagnostic == (
        "Host or domain name not found. Name service error for "
        "name=servfail.test type=MX: Host not found, try again"
    )


async def test_servfail_on_mx_host_defers(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "softmx.test"))
    assert (bad.status, bad.dsn) == ("deferred", "4.4.3")
    assert "name=mx.servfail.test type=" in bad.diagnostic


async def test_timeout_defers(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "slow.timeout.test", timeout=0.3))
    assert (bad.status, bad.dsn) == ("deferred", "4.4.3")
    assert bad.diagnostic.endswith("name=slow.timeout.test type=MX: Host not found, try again")


async def test_cname_mx_host(loopback_dns: LoopbackDns) -> None:
    result = await route(loopback_dns, "cname.test")
    assert isinstance(result, RouteResult)
    assert [(s.hostname, s.address) for s in result.addresses] == [
        ("alias.cname.test", "192.0.2.40")
    ]
    override = dataclasses.replace(OPTIONS, cname_overrides_servername=True)
    result = await route(loopback_dns, "cname.test", override)
    assert isinstance(result, RouteResult)
    assert result.addresses[0].hostname == "real.cname.test"


async def test_dangling_cname_is_chased(loopback_dns: LoopbackDns) -> None:
    v4 = dataclasses.replace(OPTIONS, inet_protocols=(socket.AF_INET,))
    result = await route(loopback_dns, "dangling.test", v4)
    assert addrs(result) == ["192.0.2.41"]
    assert ("target.elsewhere.test.", "A") in loopback_dns.queries


async def test_ipv4_ipv6_preference(loopback_dns: LoopbackDns) -> None:
    assert addrs(await route(loopback_dns, "dual.test")) == ["192.0.2.50", "2001:db8::50"]
    v6 = dataclasses.replace(OPTIONS, address_preference=AddressPreference.IPV6)
    assert addrs(await route(loopback_dns, "dual.test", v6)) == ["2001:db8::50", "192.0.2.50"]
    only4 = dataclasses.replace(OPTIONS, inet_protocols=(socket.AF_INET,))
    assert addrs(await route(loopback_dns, "dual.test", only4)) == ["192.0.2.50"]
    assert ("mx.dual.test.", "AAAA") not in loopback_dns.queries[-2:]


async def test_address_limit(loopback_dns: LoopbackDns) -> None:
    assert len(addrs(await route(loopback_dns, "many.test"))) == 5
    three = dataclasses.replace(OPTIONS, mx_address_limit=3)
    assert addrs(await route(loopback_dns, "many.test", three)) == [
        "192.0.2.61",
        "192.0.2.62",
        "192.0.2.63",
    ]
    assert (
        len(
            addrs(
                await route(
                    loopback_dns, "many.test", dataclasses.replace(three, mx_address_limit=0)
                )
            )
        )
        == 8
    )


async def test_balance_inet_protocols(loopback_dns: LoopbackDns) -> None:
    got = addrs(await route(loopback_dns, "mixed.test"))
    assert got == ["2001:db8::61", "2001:db8::62", "2001:db8::63", "192.0.2.71", "192.0.2.72"]


async def test_no_mx_address(loopback_dns: LoopbackDns) -> None:
    bad = failure(await route(loopback_dns, "noaddr.test"))
    assert (bad.status, bad.dsn) == ("bounced", "5.4.4")
    assert [n.text for n in bad.notes] == ["no MX host for noaddr.test has a valid address record"]
    deferring = dataclasses.replace(OPTIONS, defer_if_no_mx_address_found=True)
    assert failure(await route(loopback_dns, "noaddr.test", deferring)).dsn == "4.4.4"


async def test_unresolvable_primary_skipped(loopback_dns: LoopbackDns) -> None:
    assert addrs(await route(loopback_dns, "partial.test")) == ["192.0.2.80"]


async def test_loop_detection(loopback_dns: LoopbackDns) -> None:
    looped = failure(await route(loopback_dns, "self-primary.test"))
    assert (looped.dsn, looped.diagnostic) == (
        "5.4.6",
        "mail for self-primary.test loops back to myself",
    )
    backup = await route(loopback_dns, "self-backup.test")
    assert addrs(backup) == ["192.0.2.81"]
    assert isinstance(backup, RouteResult) and backup.i_am_mx
    noprimary = failure(await route(loopback_dns, "self-noprimary.test"))
    assert (noprimary.status, noprimary.diagnostic) == (
        "deferred",
        "unable to find primary relay for self-noprimary.test",
    )


async def test_host_lookup_without_mx(loopback_dns: LoopbackDns) -> None:
    result = await lookup_host_addresses(
        "mx10a.mx-order.test", 25, resolver=loopback_dns.resolver(), options=OPTIONS
    )
    assert addrs(result) == ["192.0.2.11"]
    assert all(q[1] != "MX" for q in loopback_dns.queries)


async def test_dnssec_ad_bit_reaches_result(loopback_dns: LoopbackDns) -> None:
    dnssec = dataclasses.replace(OPTIONS, dns_support=DnsSupport.DNSSEC)
    result = await route(loopback_dns, "signed.test", dnssec)
    assert isinstance(result, RouteResult)
    assert result.mx_dnssec_valid and result.addresses[0].dnssec_valid
    plain = await route(loopback_dns, "dual.test", dnssec)
    assert isinstance(plain, RouteResult) and not plain.mx_dnssec_valid


async def test_srv(loopback_dns: LoopbackDns) -> None:
    srv_options = dataclasses.replace(OPTIONS, use_srv_lookup=("submission",))
    seen_first: set[str] = set()
    for seed in range(20):
        result = await lookup_srv_hosts(
            "srv.test",
            "submission",
            587,
            resolver=loopback_dns.resolver(),
            options=srv_options,
            rng=random.Random(seed),
        )
        assert isinstance(result, RouteResult)
        got = [(s.hostname, s.port) for s in result.addresses]
        assert got[2] == ("c.srv.test", 2525)
        assert {g[0] for g in got[:2]} == {"a.srv.test", "b.srv.test"}
        seen_first.add(got[0][0])
    assert seen_first == {"a.srv.test", "b.srv.test"}


async def test_srv_null_target(loopback_dns: LoopbackDns) -> None:
    bad = await lookup_srv_hosts(
        "nullsrv.test", "submission", 587, resolver=loopback_dns.resolver(), options=OPTIONS
    )
    assert isinstance(bad, RouteFailure)
    assert (bad.dsn, bad.diagnostic) == (
        "5.1.0",
        "Domain _submission._tcp.nullsrv.test does not support SRV requests",
    )


async def test_srv_fallback_to_mx(loopback_dns: LoopbackDns) -> None:
    strict = await lookup_srv_hosts(
        "nosrv.test", "submission", 587, resolver=loopback_dns.resolver(), options=OPTIONS
    )
    assert isinstance(strict, RouteFailure) and strict.dsn == "5.4.4"
    assert strict.diagnostic.endswith("name=_submission._tcp.nosrv.test type=SRV: Host not found")
    fallback = dataclasses.replace(OPTIONS, allow_srv_lookup_fallback=True)
    result = await lookup_srv_hosts(
        "nosrv.test", "submission", 587, resolver=loopback_dns.resolver(), options=fallback
    )
    assert isinstance(result, RouteResult)
    assert [(s.address, s.port) for s in result.addresses] == [("192.0.2.95", 587)]
    assert result.notes[0].text.startswith("skipping SRV lookup for _submission._tcp.nosrv.test: ")
