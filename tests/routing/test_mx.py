"""MX routing decisions (Postfix smtp_domain_addr / smtp_host_addr) with a fake resolver."""

from __future__ import annotations

import dataclasses
import random
import socket

from mailcarrier.routing.mx import lookup_host_addresses, lookup_mx_hosts
from mailcarrier.routing.options import AddressPreference, DnsSupport, RoutingOptions
from mailcarrier.routing.resolver import DnsOutcome
from mailcarrier.routing.result import RouteFailure, RouteResult
from mailcarrier.routing.selfaddr import OwnAddresses
from tests.routing.helpers import FakeNative, FakeResolver, a, aaaa, mx

OWN = OwnAddresses(frozenset({"127.0.0.1", "198.51.100.1"}))
BASE = RoutingOptions(randomize_addresses=False, own=OWN)
IPV4 = dataclasses.replace(BASE, inet_protocols=(socket.AF_INET,))


def opts(**changes: object) -> RoutingOptions:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


async def route(
    domain: str, dns: FakeResolver, options: RoutingOptions = BASE, port: int = 25, **kw: object
) -> RouteResult | RouteFailure:
    return await lookup_mx_hosts(
        domain,
        port,
        resolver=dns,
        options=options,
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    )


def ok(result: RouteResult | RouteFailure) -> RouteResult:
    assert isinstance(result, RouteResult), result
    return result


def failed(result: RouteResult | RouteFailure) -> RouteFailure:
    assert isinstance(result, RouteFailure), result
    return result


def addrs(result: RouteResult | RouteFailure) -> list[str]:
    return [s.address for s in ok(result).addresses]


async def test_mx_sorted_by_preference() -> None:
    dns = FakeResolver()
    dns.add("example.com", mx(20, "b.example.com"), mx(10, "a.example.com"))
    dns.add("a.example.com", a("192.0.2.10")).add("b.example.com", a("192.0.2.20"))
    result = ok(await route("example.com", dns, IPV4))
    assert [(s.hostname, s.address, s.port, s.preference) for s in result.addresses] == [
        ("a.example.com", "192.0.2.10", 25, 10),
        ("b.example.com", "192.0.2.20", 25, 20),
    ]
    assert ok(result).addresses[0].relay == "a.example.com[192.0.2.10]:25"


async def test_equal_preferences_randomized_with_seed_but_preference_kept() -> None:
    dns = FakeResolver()
    dns.add("example.com", *(mx(10, f"m{i}.example.com") for i in range(6)), mx(5, "best.x"))
    dns.add("best.x", a("192.0.2.99"))
    for i in range(6):
        dns.add(f"m{i}.example.com", a(f"192.0.2.{i + 1}"))
    options = dataclasses.replace(IPV4, randomize_addresses=True, mx_address_limit=0)
    orders = set()
    for seed in range(10):
        result = await lookup_mx_hosts(
            "example.com", 25, resolver=dns, options=options, rng=random.Random(seed)
        )
        got = addrs(result)
        assert got[0] == "192.0.2.99"
        assert sorted(got[1:]) == [f"192.0.2.{i}" for i in range(1, 7)]
        orders.add(tuple(got))
    assert len(orders) > 1
    again = await lookup_mx_hosts(
        "example.com", 25, resolver=dns, options=options, rng=random.Random(3)
    )
    first = await lookup_mx_hosts(
        "example.com", 25, resolver=dns, options=options, rng=random.Random(3)
    )
    assert addrs(again) == addrs(first)


async def test_without_randomizing_dns_order_is_kept() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com"))
    dns.add("m.example.com", a("192.0.2.3"), a("192.0.2.1"), a("192.0.2.2"))
    assert addrs(await route("example.com", dns, IPV4)) == ["192.0.2.3", "192.0.2.1", "192.0.2.2"]


async def test_implicit_mx_when_no_mx_records() -> None:
    dns = FakeResolver().add("example.com", a("192.0.2.5"), aaaa("2001:db8::5"))
    result = ok(await route("example.com", dns))
    assert [(s.hostname, s.address, s.preference) for s in result.addresses] == [
        ("example.com", "192.0.2.5", 0),
        ("example.com", "2001:db8::5", 0),
    ]
    assert ("example.com", "MX") in dns.queries


async def test_nxdomain_bounces_with_postfix_text() -> None:
    failure = failed(await route("nx.example", FakeResolver()))
    assert failure.status == "bounced"
    assert failure.dsn == "5.4.4"
    assert failure.diagnostic == (
        "Host or domain name not found. Name service error for name=nx.example type=AAAA: "
        "Host not found"
    )


async def test_nxdomain_ipv4_only_names_type_a() -> None:
    failure = failed(await route("nx.example", FakeResolver(), IPV4))
    assert failure.diagnostic.endswith("name=nx.example type=A: Host not found")


async def test_nodata_everywhere_bounces() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com")).add("m.example.com")
    failure = failed(await route("example.com", dns, IPV4))
    assert (failure.status, failure.dsn) == ("bounced", "5.4.4")
    assert failure.diagnostic == (
        "Host or domain name not found. Name service error for name=m.example.com type=A: "
        "Host found but no data record of requested type"
    )
    assert [n.text for n in failure.notes] == [
        "no MX host for example.com has a valid address record"
    ]


async def test_defer_if_no_mx_address_found() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com"))
    failure = failed(await route("example.com", dns, opts(defer_if_no_mx_address_found=True)))
    assert (failure.status, failure.dsn) == ("deferred", "4.4.4")


async def test_servfail_on_mx_defers() -> None:
    dns = FakeResolver().fail("example.com", "MX", DnsOutcome.SERVFAIL)
    dns.add("example.com", a("192.0.2.5"))
    failure = failed(await route("example.com", dns))
    assert (failure.status, failure.dsn) == ("deferred", "4.4.3")
    assert failure.diagnostic == (
        "Host or domain name not found. Name service error for name=example.com type=MX: "
        "Host not found, try again"
    )


async def test_timeout_on_mx_defers_like_servfail() -> None:
    dns = FakeResolver().fail("example.com", "MX", DnsOutcome.TIMEOUT)
    failure = failed(await route("example.com", dns))
    assert failure.dsn == "4.4.3"
    assert failure.diagnostic.endswith("type=MX: Host not found, try again")


async def test_refused_is_non_recoverable() -> None:
    dns = FakeResolver().fail("example.com", "MX", DnsOutcome.NO_RECOVERY)
    failure = failed(await route("example.com", dns))
    assert (failure.status, failure.dsn) == ("bounced", "5.4.3")
    assert failure.diagnostic.endswith("type=MX: Non-recoverable error")


async def test_ignore_mx_lookup_error_uses_address_records() -> None:
    dns = FakeResolver().fail("example.com", "MX", DnsOutcome.SERVFAIL)
    dns.add("example.com", a("192.0.2.5"))
    result = await route("example.com", dns, dataclasses.replace(IPV4, ignore_mx_lookup_error=True))
    assert addrs(result) == ["192.0.2.5"]


async def test_null_mx_bounces() -> None:
    dns = FakeResolver().add("example.com", mx(0, ""))
    failure = failed(await route("example.com", dns))
    assert (failure.status, failure.dsn) == ("bounced", "5.1.10")
    assert failure.diagnostic == "Domain example.com does not accept mail (nullMX)"


async def test_malformed_mx_name_bounces() -> None:
    dns = FakeResolver().add("example.com", mx(10, "bad..name"))
    failure = failed(await route("example.com", dns))
    assert failure.dsn == "5.4.4"
    assert failure.diagnostic == (
        "Name service error for name=example.com type=MX: Malformed or unexpected name server reply"
    )


async def test_unresolvable_better_mx_is_skipped() -> None:
    dns = FakeResolver().add("example.com", mx(10, "gone.example.com"), mx(20, "b.example.com"))
    dns.add("b.example.com", a("192.0.2.20"))
    assert addrs(await route("example.com", dns, IPV4)) == ["192.0.2.20"]


async def test_soft_error_dominates_hard_error() -> None:
    dns = FakeResolver().add("example.com", mx(10, "soft.example.com"), mx(20, "hard.example.com"))
    dns.fail("soft.example.com", "A", DnsOutcome.SERVFAIL)
    failure = failed(await route("example.com", dns, IPV4))
    # The text is the last lookup's, the status stays soft.
    assert (failure.status, failure.dsn) == ("deferred", "4.4.4")
    assert "name=hard.example.com type=A: Host not found" in failure.diagnostic


async def test_cname_overrides_servername() -> None:
    dns = FakeResolver().add("example.com", mx(10, "alias.example.com"))
    dns.add("real.example.com", a("192.0.2.7"))
    dns.cnames["alias.example.com"] = "real.example.com"
    plain = ok(await route("example.com", dns, IPV4))
    assert plain.addresses[0].hostname == "alias.example.com"
    override = dataclasses.replace(IPV4, cname_overrides_servername=True)
    assert ok(await route("example.com", dns, override)).addresses[0].hostname == "real.example.com"


async def test_address_preference_and_protocols() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com"))
    dns.add("m.example.com", a("192.0.2.1"), aaaa("2001:db8::1"))
    assert addrs(await route("example.com", dns)) == ["192.0.2.1", "2001:db8::1"]
    v6 = opts(address_preference=AddressPreference.IPV6)
    assert addrs(await route("example.com", dns, v6)) == ["2001:db8::1", "192.0.2.1"]
    v4 = opts(address_preference=AddressPreference.IPV4)
    assert addrs(await route("example.com", dns, v4)) == ["192.0.2.1", "2001:db8::1"]
    only6 = opts(inet_protocols=(socket.AF_INET6,))
    assert addrs(await route("example.com", dns, only6)) == ["2001:db8::1"]
    assert ("m.example.com", "A") not in dns.queries[-2:]


async def test_address_limit_and_balance() -> None:
    dns = FakeResolver().add("example.com", mx(10, "v6.example.com"), mx(20, "v4.example.com"))
    dns.add("v6.example.com", *(aaaa(f"2001:db8::{i}") for i in range(1, 7)))
    dns.add("v4.example.com", *(a(f"192.0.2.{i}") for i in range(1, 4)))
    balanced = addrs(await route("example.com", dns))
    # R2: both families exceed half the limit; the first address is IPv6, so v6 gets 3.
    assert balanced == ["2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1", "192.0.2.2"]
    unbalanced = addrs(await route("example.com", dns, opts(balance_inet_protocols=False)))
    assert unbalanced == [f"2001:db8::{i}" for i in range(1, 6)]
    unlimited = addrs(await route("example.com", dns, opts(mx_address_limit=0)))
    assert len(unlimited) == 9


async def test_best_mx_is_self_loops() -> None:
    dns = FakeResolver().add("example.com", mx(10, "me.example.com"), mx(20, "b.example.com"))
    dns.add("me.example.com", a("198.51.100.1")).add("b.example.com", a("192.0.2.20"))
    failure = failed(await route("example.com", dns, IPV4))
    assert (failure.status, failure.dsn) == ("bounced", "5.4.6")
    assert failure.diagnostic == "mail for example.com loops back to myself"
    assert failure.is_loop and failure.i_am_mx


async def test_backup_mx_self_truncates_list() -> None:
    dns = FakeResolver().add(
        "example.com", mx(10, "a.example.com"), mx(20, "me.example.com"), mx(30, "z.example.com")
    )
    dns.add("a.example.com", a("192.0.2.10")).add("me.example.com", a("127.0.0.1"))
    dns.add("z.example.com", a("192.0.2.30"))
    result = ok(await route("example.com", dns, IPV4))
    assert addrs(result) == ["192.0.2.10"]
    assert result.i_am_mx


async def test_self_with_unresolvable_primary_is_soft() -> None:
    dns = FakeResolver().add("example.com", mx(5, "gone.example.com"), mx(10, "me.example.com"))
    dns.add("me.example.com", a("198.51.100.1"))
    failure = failed(await route("example.com", dns, IPV4))
    assert (failure.status, failure.dsn) == ("deferred", "4.4.4")
    assert failure.diagnostic == "unable to find primary relay for example.com"


async def test_proxy_interfaces_count_as_self() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com"))
    dns.add("m.example.com", a("198.51.100.7"))
    proxied = opts(own=OwnAddresses(frozenset(), frozenset({"198.51.100.7"})))
    assert failed(await route("example.com", dns, proxied)).is_loop


async def test_no_loop_detection_off_port_25_or_for_lmtp() -> None:
    dns = FakeResolver().add("example.com", mx(10, "me.example.com"))
    dns.add("me.example.com", a("127.0.0.1"))
    assert addrs(await route("example.com", dns, IPV4, port=10025)) == ["127.0.0.1"]
    lmtp = dataclasses.replace(IPV4, smtp_mode=False)
    assert addrs(await route("example.com", dns, lmtp)) == ["127.0.0.1"]


async def test_host_lookup_skips_mx_and_detects_loop() -> None:
    dns = FakeResolver().add("relay.example", a("192.0.2.9"), mx(10, "other"))
    result = await lookup_host_addresses("relay.example", 25, resolver=dns, options=IPV4)
    assert addrs(result) == ["192.0.2.9"]
    assert ("relay.example", "MX") not in dns.queries
    looped = await lookup_host_addresses("127.0.0.1", 25, resolver=dns, options=IPV4)
    assert failed(looped).diagnostic == "mail for 127.0.0.1 loops back to myself"
    fine = await lookup_host_addresses("127.0.0.1", 2525, resolver=dns, options=IPV4)
    assert ok(fine).addresses[0].hostname == "127.0.0.1"


async def test_numeric_ipv6_host() -> None:
    result = await lookup_host_addresses("ipv6:2001:db8::1", 25, resolver=None, options=BASE)
    server = ok(result).addresses[0]
    assert (server.address, server.family) == ("2001:db8::1", socket.AF_INET6)


async def test_dns_disabled_uses_native_lookup() -> None:
    native = FakeNative({"example.com": [a("192.0.2.44")]})
    dns = FakeResolver()
    off = opts(dns_support=DnsSupport.DISABLED)
    result = await lookup_mx_hosts("example.com", 25, resolver=dns, options=off, native=native)
    assert addrs(result) == ["192.0.2.44"]
    assert dns.queries == []


async def test_host_lookup_dns_then_native() -> None:
    native = FakeNative({"printer.lan": [a("192.0.2.45")]})
    both = dataclasses.replace(IPV4, host_lookup_native=True)
    result = await lookup_host_addresses(
        "printer.lan", 25, resolver=FakeResolver(), options=both, native=native
    )
    assert addrs(result) == ["192.0.2.45"]
    missing = await lookup_host_addresses(
        "nothing.lan", 25, resolver=FakeResolver(), options=both, native=native
    )
    assert (
        failed(missing).diagnostic
        == "unable to look up host nothing.lan: Name or service not known"
    )
    assert failed(missing).dsn == "5.4.4"


async def test_native_temporary_error_defers() -> None:
    native = FakeNative(
        errors={"h.lan": (socket.EAI_AGAIN, "Temporary failure in name resolution")}
    )
    only_native = dataclasses.replace(IPV4, host_lookup_dns=False, host_lookup_native=True)
    failure = failed(
        await lookup_host_addresses("h.lan", 25, resolver=None, options=only_native, native=native)
    )
    assert (failure.dsn, failure.diagnostic) == (
        "4.4.4",
        "unable to look up host h.lan: Temporary failure in name resolution",
    )


async def test_dnssec_flags_follow_mx_validation() -> None:
    dns = FakeResolver().add("example.com", mx(10, "m.example.com"))
    dns.add("m.example.com", a("192.0.2.1"))
    dns.ad.update({"example.com", "m.example.com"})
    result = ok(await route("example.com", dns, IPV4))
    assert result.mx_dnssec_valid and result.addresses[0].dnssec_valid
    dns.ad.discard("example.com")
    result = ok(await route("example.com", dns, IPV4))
    assert not result.mx_dnssec_valid and not result.addresses[0].dnssec_valid


async def test_internationalized_domain_is_looked_up_as_a_label() -> None:
    dns = FakeResolver().add("xn--bcher-kva.example", a("192.0.2.77"))
    assert addrs(await route("bücher.example", dns, IPV4)) == ["192.0.2.77"]
