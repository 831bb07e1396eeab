"""Host address lookup as Postfix's smtp_addr_one(), smtp_addr_list() and smtp_host_addr().

An `AddressLookup` lives for one routing question. It carries Postfix's "why" buffer (the
latest failure text and a status code in which a soft error, once seen, dominates later
hard ones), the notes to log, and the injected resolver, native lookup and random source.
`addr_one()` resolves one host (localhost names and numeric ones at once, DNS A/AAAA per
inet_protocols, then getaddrinfo() per smtp_host_lookup), `addr_list()` does it for MX or
SRV targets in order, `host_addr()` is the no-MX lookup used for ``[host]``, LMTP and
implicit MX. `mx.py` and `srv.py` build on it; `selection.py` orders what it finds.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from mailcarrier.routing.dnslookup import DnsStatus, dns_lookup_types, is_numeric_address
from mailcarrier.routing.localhost import is_localhost, loopback_records
from mailcarrier.routing.options import RoutingOptions
from mailcarrier.routing.resolver import RECORD_LIMIT, AddressRecord, NativeLookup, Resolver
from mailcarrier.routing.result import (
    LOOP_DSN,
    LogNote,
    RouteFailure,
    RouteResult,
    ServerAddress,
)
from mailcarrier.routing.selection import (
    apply_address_limit,
    balance_inet_protocols,
    order_addresses,
)
from mailcarrier.routing.selfaddr import find_self

__all__ = ["AddressLookup", "Target"]

_RECORD_TYPES: dict[int, str] = {socket.AF_INET: "A", socket.AF_INET6: "AAAA"}

# getaddrinfo() errors worth retrying, and those that mean "no such host" (Postfix's
# RETRY_AI_ERROR and DSN_NOHOST).
_RETRY_AI = {socket.EAI_AGAIN, socket.EAI_MEMORY, getattr(socket, "EAI_SYSTEM", -11)}
_NOHOST_AI = {socket.EAI_AGAIN, socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)}


@dataclass(frozen=True, slots=True)
class Target:
    """A host to resolve, with the preference and port its MX or SRV record gave it."""

    host: str
    preference: int
    port: int


class AddressLookup:
    """Per-question state. Not shared between questions; not thread-safe."""

    def __init__(
        self,
        *,
        resolver: Resolver | None,
        native: NativeLookup | None,
        options: RoutingOptions,
        rng: random.Random,
    ) -> None:
        self.resolver = resolver
        self.native = native
        self.options = options
        self.rng = rng
        self.dsn = ""
        self.reason = ""
        self.notes: list[LogNote] = []

    # --- the "why" buffer --------------------------------------------------------------------
    def reset(self) -> None:
        self.dsn = ""
        self.reason = ""

    @property
    def soft(self) -> bool:
        return self.dsn.startswith("4")

    def fail(self, dsn: str, reason: str) -> None:
        self.dsn, self.reason = dsn, reason

    def failure(self, *, i_am_mx: bool = False) -> RouteFailure:
        if not self.dsn:
            # Postfix's excuse when nothing else explains an empty list.
            self.fail("4.3.0", "server unavailable or unable to receive mail")
        return RouteFailure.from_dsn(
            self.dsn, self.reason, i_am_mx=i_am_mx, notes=tuple(self.notes)
        )

    def warn(self, text: str) -> None:
        self.notes.append(LogNote("warning", text))

    def info(self, text: str) -> None:
        self.notes.append(LogNote("info", text))

    # --- one host ----------------------------------------------------------------------------
    def _server(
        self,
        qname: str,
        rname: str,
        record: AddressRecord,
        target: Target,
        dnssec: bool,
        *,
        address_secure: bool = False,
        mx_secure: bool | None = None,
    ) -> ServerAddress:
        name = rname if self.options.cname_overrides_servername else qname
        return ServerAddress(
            name,
            record.address,
            target.port,
            record.family,
            target.preference,
            dnssec,
            address_secure,
            mx_secure,
        )

    async def addr_one(
        self, target: Target, *, dnssec_ok: bool, via_mx: bool = False
    ) -> list[ServerAddress]:
        """Postfix smtp_addr_one(): the addresses of one host; on failure, update the why
        buffer and return nothing. `via_mx`: the host was named by an MX/SRV RRset whose
        DNSSEC status is `dnssec_ok` (recorded apart from the address AD bit, for DANE)."""
        host = target.host.removeprefix("ipv6:")
        families = self.options.inet_protocols
        if is_localhost(host):  # RFC 6761 6.3: loopback, without DNS or getaddrinfo()
            return [
                self._server(host, host, record, target, False)
                for record in loopback_records(families)
            ]
        if is_numeric_address(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            if family in families:
                record = AddressRecord(host, family)
                return [self._server(host, host, record, target, False)]
        if self.options.uses_dns_for_hosts and self.resolver is not None:
            types = [_RECORD_TYPES[f] for f in families]
            result = await dns_lookup_types(self.resolver, host, types)
            if result.truncated:
                self.warn(f"dropping excess records for qname={host} qtype={'/'.join(types)}")
            if result.status is DnsStatus.OK:
                out: list[ServerAddress] = []
                dnssec_lookups = self.options.dns_support.value == "dnssec"
                for rr in result.records:
                    if isinstance(rr.record, AddressRecord) and rr.record.family in families:
                        out.append(
                            self._server(
                                rr.qname,
                                rr.rname,
                                rr.record,
                                target,
                                dnssec_ok and rr.dnssec_valid,
                                address_secure=dnssec_lookups and rr.dnssec_valid,
                                mx_secure=dnssec_ok if via_mx else None,
                            )
                        )
                return out
            self.reason = result.reason
            # A soft error dominates past and future hard errors.
            if result.status is DnsStatus.RETRY:
                self.dsn = "4.4.3"
                return []
            if result.status is DnsStatus.FAIL:
                self.dsn = "4.4.3" if self.soft else "5.4.3"
                return []
            self.dsn = "4.4.4" if self.soft else "5.4.4"
            if result.status is not DnsStatus.NOTFOUND:
                return []
            # NOTFOUND: the native name service (/etc/hosts, ...) may still know the host.
        if self.options.uses_native_for_hosts and self.native is not None:
            return await self._native_one(host, target)
        return []

    async def _native_one(self, host: str, target: Target) -> list[ServerAddress]:
        assert self.native is not None
        families = self.options.inet_protocols
        hint = families[0] if len(families) == 1 else socket.AF_UNSPEC
        answer = await self.native.getaddrinfo(host, hint)
        if answer.error:
            nohost = answer.error in _NOHOST_AI
            if self.soft or answer.error in _RETRY_AI:
                dsn = "4.4.4" if nohost else "4.3.0"
            else:
                dsn = "5.4.4" if nohost else "5.3.0"
            self.fail(dsn, f"unable to look up host {host}: {answer.error_text}")
            return []
        out: list[ServerAddress] = []
        for record in answer.addresses:
            if record.family not in families:
                self.info(f"skipping address family {record.family} for host {host}")
                continue
            out.append(self._server(host, host, record, target, False))
        if not out:
            self.fail("4.4.4" if self.soft else "5.4.4", f"{host}: host not found")
        return out

    async def addr_list(
        self, targets: Sequence[Target], *, dnssec_ok: bool, via_mx: bool = False
    ) -> list[ServerAddress]:
        """Postfix smtp_addr_list(): all addresses of all targets, in target order. Problems
        with some targets are ignored as long as any address is found."""
        out: list[ServerAddress] = []
        for target in targets:
            out.extend(await self.addr_one(target, dnssec_ok=dnssec_ok, via_mx=via_mx))
            if len(out) >= RECORD_LIMIT:
                self.warn(f"dropping excess records for qname={target.host} qtype=A/AAAA")
                del out[RECORD_LIMIT:]
                break
        return out

    # --- ordering common to all lookups ------------------------------------------------------
    def finish(
        self, addresses: Sequence[ServerAddress], *, sort: bool = True, reorder: bool = True
    ) -> list[ServerAddress]:
        """Shuffle, sort by preference and family, balance families, apply the limit.
        `reorder=False` keeps the given order (SRV: RFC 2782 already decided it)."""
        options = self.options
        out = list(addresses)
        if len(out) > 1:
            if reorder:
                out = order_addresses(
                    out,
                    preference=options.address_preference,
                    randomize=options.randomize_addresses,
                    rng=self.rng,
                    sort=sort,
                )
            if options.mx_address_limit > 0 and options.balance_inet_protocols:
                out = balance_inet_protocols(out, options.mx_address_limit)
        return apply_address_limit(out, options.mx_address_limit)

    # --- [host], LMTP and implicit MX --------------------------------------------------------
    async def host_addr(
        self, host: str, port: int, *, loop_detect: bool
    ) -> RouteResult | RouteFailure:
        """Postfix smtp_host_addr(): the addresses of `host` itself, preference 0."""
        self.reset()
        if not self.options.inet_protocols:
            self.fail("4.4.4", "all network protocols are disabled")
            return self.failure()
        dnssec_ok = self.options.dns_support.value == "dnssec"
        found = await self.addr_one(Target(host, 0, port), dnssec_ok=dnssec_ok)
        if not found:
            return self.failure()
        if loop_detect and find_self(found, self.options.own) is not None:
            self.fail(LOOP_DSN, f"mail for {host} loops back to myself")
            return self.failure()
        # Postfix only re-sorts a host's addresses when both families are in use, so a
        # single-family host keeps the (possibly shuffled) DNS order.
        ordered = self.finish(found, sort=len(self.options.inet_protocols) > 1)
        return RouteResult(tuple(ordered), notes=tuple(self.notes))
