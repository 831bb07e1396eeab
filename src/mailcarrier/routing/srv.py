"""SRV routing (Postfix 3.8 ``use_srv_lookup``): ``_service._tcp.domain`` to ordered addresses.

`lookup_srv_hosts()` is Postfix's smtp_service_addr(): SRV records ordered by priority and
weight (RFC 2782, see `selection.order_srv_records`), each target's addresses on the port
its record names, the same loop detection as MX, address-family balancing and the address
limit; the addresses are not re-sorted by family, since the SRV order is the server's
wish. When no SRV address is found, ``allow_srv_lookup_fallback`` (or
``ignore_srv_lookup_error`` for lookup errors) falls back to MX lookup (SMTP) or a plain
host lookup (LMTP), as if SRV were not enabled. `srv_lookup_enabled()` says whether a
destination's service is listed in ``use_srv_lookup``. MX logic is in `mx.py`.
"""

from __future__ import annotations

import random
from typing import Final

from mailcarrier.routing.addrlookup import AddressLookup, Target
from mailcarrier.routing.dnslookup import DnsStatus, dns_lookup, to_ascii
from mailcarrier.routing.mx import lookup_mx_hosts, loop_detection
from mailcarrier.routing.options import RoutingOptions
from mailcarrier.routing.resolver import NativeLookup, Resolver, SRVRecord, SystemNativeLookup
from mailcarrier.routing.result import LOOP_DSN, RouteFailure, RouteResult, ServerAddress
from mailcarrier.routing.selection import order_srv_records
from mailcarrier.routing.selfaddr import find_self, truncate_self

__all__ = ["NULL_SRV_DSN", "lookup_srv_hosts", "srv_lookup_enabled"]

# Postfix reports a "." SRV target ("service decidedly not available") with 5.1.0.
NULL_SRV_DSN: Final = "5.1.0"


def srv_lookup_enabled(service: str, options: RoutingOptions, *, literal: bool = False) -> bool:
    """True when `service` (the destination's service name, or the default one) is listed in
    use_srv_lookup and DNS may be used: never for ``[host]`` destinations."""
    return not literal and options.dns_enabled and service.lower() in options.use_srv_lookup


async def lookup_srv_hosts(
    domain: str,
    service: str,
    port: int,
    *,
    resolver: Resolver,
    options: RoutingOptions,
    native: NativeLookup | None = None,
    rng: random.Random | None = None,
    mx_fallback: bool | None = None,
) -> RouteResult | RouteFailure:
    """Servers for `service` at `domain` from SRV records.

    `port` is the destination's own port (it decides loop detection and is used by a
    fallback lookup); each address carries its SRV record's port. `mx_fallback` says a
    fallback uses MX lookup (default: for SMTP) rather than a plain host lookup.

    Longer than ~60 lines on purpose, as `lookup_mx_hosts`: RFC 2782's and Postfix's
    (smtp_addr.c) checks in their order (no SRV, "." target, errors and fallbacks)."""
    rng = rng if rng is not None else random.Random()
    lookup = AddressLookup(
        resolver=resolver,
        native=native if native is not None else SystemNativeLookup(),
        options=options,
        rng=rng,
    )
    loop_detect = loop_detection(options, port)
    qname = f"_{service}._tcp.{domain}"
    aname = to_ascii(qname)
    allow_fallback = options.allow_srv_lookup_fallback
    found: list[ServerAddress] = []
    i_am_mx = False
    mx_secure = False

    result = await dns_lookup(resolver, aname, "SRV")
    status = result.status
    lookup.reason = result.reason
    if status is DnsStatus.OK:
        if result.truncated:
            lookup.warn(f"dropping excess records for qname={aname} qtype=SRV")
        records = [
            (rr.qname, rr.record) for rr in result.records if isinstance(rr.record, SRVRecord)
        ]
        ordered = order_srv_records(records, rng)
        mx_secure = bool(result.records) and result.records[0].dnssec_valid
        best_pref = ordered[0][1].priority if ordered else -1
        targets = [Target(srv.target, srv.priority, srv.port) for _q, srv in ordered]
        found = await lookup.addr_list(targets, dnssec_ok=mx_secure, via_mx=True)
        if not found:
            lookup.warn(f"no SRV host for {qname} has a valid address record")
        elif loop_detect and (me := find_self(found, options.own)) is not None:
            i_am_mx = True
            best_found = found[0].preference
            found = list(truncate_self(found, me.preference))
            if not found:
                if best_pref != best_found:
                    lookup.fail("4.4.4", f"unable to find primary relay for {qname}")
                else:
                    lookup.fail(LOOP_DSN, f"mail for {qname} loops back to myself")
    elif status is DnsStatus.NULLSRV:
        lookup.dsn = NULL_SRV_DSN
    elif status is DnsStatus.NOTFOUND:
        lookup.dsn = "5.4.4"
    else:
        lookup.dsn = {DnsStatus.RETRY: "4.4.3", DnsStatus.INVAL: "5.4.4"}.get(status, "5.4.3")
        allow_fallback = allow_fallback or options.ignore_srv_lookup_error

    if not found and allow_fallback:
        lookup.info(f"skipping SRV lookup for {qname}: {lookup.reason}")
        use_mx = options.smtp_mode if mx_fallback is None else mx_fallback
        if not use_mx:
            return await lookup.host_addr(to_ascii(domain), port, loop_detect=loop_detect)
        fallback = await lookup_mx_hosts(
            domain, port, resolver=resolver, options=options, native=native, rng=rng
        )
        notes = (*lookup.notes, *fallback.notes)
        if isinstance(fallback, RouteResult):
            return RouteResult(
                fallback.addresses, fallback.i_am_mx, fallback.mx_dnssec_valid, notes
            )
        return RouteFailure(
            fallback.status, fallback.dsn, fallback.diagnostic, fallback.i_am_mx, notes
        )
    if not found:
        return lookup.failure(i_am_mx=i_am_mx)
    # RFC 2782 order stands: balance the families and apply the limit, but do not re-sort.
    final = lookup.finish(found, reorder=False)
    return RouteResult(tuple(final), i_am_mx, mx_secure, tuple(lookup.notes))
