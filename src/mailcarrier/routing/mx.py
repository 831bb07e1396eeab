"""MX routing: from a destination domain (or ``[host]``) to the ordered addresses to try.

`lookup_mx_hosts(domain, port, ...)` is Postfix's smtp_domain_addr(): MX records sorted by
preference, their hosts' addresses (A/AAAA per inet_protocols, getaddrinfo() per
smtp_host_lookup), the implicit MX of RFC 5321 5.1 when the domain has no MX, null MX
(RFC 7505), mail-loop detection against this host's addresses, random order among equal
preferences, address-family preference and balancing, and smtp_mx_address_limit.
`lookup_host_addresses(host, port, ...)` is smtp_host_addr() for ``[host]``, LMTP and DNS-less
delivery. Both return values (`RouteResult` or `RouteFailure`), never raise for DNS trouble,
and do not connect anywhere: the delivery loop tries the addresses, counts sessions
(smtp_mx_session_limit) and moves on to fallback relays. SRV is in `srv.py`.
"""

from __future__ import annotations

import random
from typing import Final

from mailcarrier.routing.addrlookup import AddressLookup, Target
from mailcarrier.routing.dnslookup import DnsStatus, dns_lookup, to_ascii
from mailcarrier.routing.options import DnsSupport, RoutingOptions
from mailcarrier.routing.resolver import MXRecord, NativeLookup, Resolver, SystemNativeLookup
from mailcarrier.routing.result import LOOP_DSN, RouteFailure, RouteResult
from mailcarrier.routing.selfaddr import find_self, truncate_self

__all__ = ["NULL_MX_DSN", "SMTP_PORT", "lookup_host_addresses", "lookup_mx_hosts", "loop_detection"]

SMTP_PORT: Final = 25

# RFC 7505 section 4.2 registers X.1.10 "Recipient address has null MX". (Postfix's client
# reports 5.1.0 with the same text; the issue asks for 5.1.10, which is more precise.)
NULL_MX_DSN: Final = "5.1.10"


def loop_detection(options: RoutingOptions, port: int) -> bool:
    """Postfix checks for mail loops only for SMTP to port 25: other ports are usually a
    content filter or another MTA on this host, which is not a loop."""
    return options.smtp_mode and port == SMTP_PORT


def _lookup(
    resolver: Resolver | None,
    options: RoutingOptions,
    native: NativeLookup | None,
    rng: random.Random | None,
) -> AddressLookup:
    return AddressLookup(
        resolver=resolver,
        native=native if native is not None else SystemNativeLookup(),
        options=options,
        rng=rng if rng is not None else random.Random(),
    )


async def lookup_host_addresses(
    host: str,
    port: int,
    *,
    resolver: Resolver | None,
    options: RoutingOptions,
    native: NativeLookup | None = None,
    rng: random.Random | None = None,
) -> RouteResult | RouteFailure:
    """Addresses of `host` without MX lookup (``[host]``, ``[address]``, LMTP ``inet:host``).

    `host` is the bare name or address (no brackets; an ``ipv6:`` prefix is accepted)."""
    lookup = _lookup(resolver, options, native, rng)
    return await lookup.host_addr(to_ascii(host), port, loop_detect=loop_detection(options, port))


async def lookup_mx_hosts(
    domain: str,
    port: int,
    *,
    resolver: Resolver | None,
    options: RoutingOptions,
    native: NativeLookup | None = None,
    rng: random.Random | None = None,
) -> RouteResult | RouteFailure:
    """The servers for mail to `domain` (the ``domain`` and ``domain:port`` forms).

    Longer than ~60 lines on purpose: it follows Postfix's smtp_domain_addr() check by
    check (DNS off, protocols off, no MX, MX errors, null MX, unresolvable MX hosts, this
    host as an MX), and the order of those checks is the behaviour.

    With DNS disabled (smtp_dns_support_level = disabled, or disable_dns_lookups) there are
    no MX records: the domain is looked up as a host, as Postfix does. For LMTP callers
    should use `lookup_host_addresses`: Postfix never looks up MX records for LMTP."""
    lookup = _lookup(resolver, options, native, rng)
    loop_detect = loop_detection(options, port)
    aname = to_ascii(domain)
    if options.dns_support is DnsSupport.DISABLED or resolver is None:
        return await lookup.host_addr(aname, port, loop_detect=loop_detect)
    if not options.inet_protocols:
        lookup.fail("4.4.4", "all network protocols are disabled")
        return lookup.failure()

    result = await dns_lookup(resolver, aname, "MX")
    status = result.status
    if status is DnsStatus.NOTFOUND:
        # RFC 5321 5.1: no MX records means an implicit MX of preference 0 for the domain.
        return await lookup.host_addr(aname, port, loop_detect=loop_detect)
    if status is not DnsStatus.OK:
        lookup.reason = result.reason
        if status is DnsStatus.NULLMX:
            lookup.dsn = NULL_MX_DSN
            return lookup.failure()
        lookup.dsn = {DnsStatus.RETRY: "4.4.3", DnsStatus.INVAL: "5.4.4"}.get(status, "5.4.3")
        if options.ignore_mx_lookup_error:
            # Some DNS servers fail MX lookups but answer A lookups: try the domain as a host.
            return await lookup.host_addr(aname, port, loop_detect=loop_detect)
        return lookup.failure()

    if result.truncated:
        lookup.warn(f"dropping excess records for qname={aname} qtype=MX")
    mx_records = [(rr, rr.record) for rr in result.records if isinstance(rr.record, MXRecord)]
    # Stable sort: equal preferences keep DNS order here; randomizing happens per address.
    mx_records.sort(key=lambda item: item[1].preference)
    mx_secure = bool(mx_records) and mx_records[0][0].dnssec_valid
    best_pref = mx_records[0][1].preference if mx_records else -1
    targets = [Target(mx.exchange, mx.preference, port) for _rr, mx in mx_records]
    found = await lookup.addr_list(targets, dnssec_ok=mx_secure, via_mx=True)
    if not found:
        if options.defer_if_no_mx_address_found and lookup.dsn.startswith("5"):
            lookup.dsn = "4" + lookup.dsn[1:]
        lookup.warn(f"no MX host for {domain} has a valid address record")
        return lookup.failure()

    best_found = found[0].preference
    i_am_mx = False
    if loop_detect:
        me = find_self(found, options.own)
        if me is not None:
            i_am_mx = True
            found = list(truncate_self(found, me.preference))
            if not found:
                if best_pref != best_found:
                    # The better MX hosts could not be resolved; only we are left.
                    lookup.fail("4.4.4", f"unable to find primary relay for {domain}")
                else:
                    lookup.fail(LOOP_DSN, f"mail for {domain} loops back to myself")
                return lookup.failure(i_am_mx=True)
    ordered = lookup.finish(found)
    return RouteResult(tuple(ordered), i_am_mx, mx_secure, tuple(lookup.notes))
