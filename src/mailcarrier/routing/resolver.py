"""DNS and host-name resolution as injectable objects: the `Resolver` protocol and its backends.

`Resolver.resolve(qname, rdtype)` asks one question and returns a `DnsAnswer` value: typed
records, the DNSSEC AD bit and an outcome (ok, nxdomain, nodata, servfail, timeout,
no_recovery); it never raises for a DNS failure. `DnspythonResolver` implements it over
`dns.asyncresolver`, either with the system configuration (/etc/resolv.conf) or with the
nameservers named by the ``dns_nameservers`` parameter; with ``smtp_dns_support_level =
dnssec`` it sets the EDNS0 DO bit and reports AD (RFC 4035 section 3.2, RFC 6840 section 5.7).
AD is only as trustworthy as the path to the resolver: name a local validating resolver.
`NativeLookup` is the getaddrinfo() path for ``smtp_host_lookup = native``. Postfix's
meaning of each outcome (texts, status codes, CNAME chasing) lives in `dnslookup.py`;
tests put fakes of these protocols in tests/, never here.

dnspython is imported on first use (building a `DnspythonResolver`, converting a reply), not
when this module is: importing it costs tens of milliseconds that a command which never looks
anything up (``mailcarrier conf``, ``queue list``) should not pay.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from mailcarrier.errors import ConfigError
from mailcarrier.idn import domain_to_ascii

if TYPE_CHECKING:
    import dns.name
    import dns.resolver

__all__ = [
    "AddressRecord",
    "DnsAnswer",
    "DnsOutcome",
    "DnsRecord",
    "DnspythonResolver",
    "MXRecord",
    "Nameserver",
    "NativeAnswer",
    "NativeLookup",
    "Resolver",
    "ResolverConfig",
    "SRVRecord",
    "SystemNativeLookup",
    "TLSARecord",
    "TXTRecord",
    "parse_nameserver",
    "preload_dns",
]

SUPPORTED_TYPES: Final = frozenset({"MX", "A", "AAAA", "SRV", "TLSA", "TXT"})

# Postfix's var_dns_rr_list_limit: a hostile server cannot make us hold more than this.
RECORD_LIMIT: Final = 100


class DnsOutcome(enum.Enum):
    """What a DNS question produced. SERVFAIL and TIMEOUT are temporary."""

    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist (RCODE 3)
    NODATA = "nodata"  # the name exists, but has no record of this type
    SERVFAIL = "servfail"  # RCODE 2, or a reply that could not be used
    TIMEOUT = "timeout"  # no server answered in time
    NO_RECOVERY = "no_recovery"  # REFUSED, NOTIMP, FORMERR: asking again will not help

    @property
    def temporary(self) -> bool:
        return self in (DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT)


@dataclass(frozen=True, slots=True)
class MXRecord:
    preference: int
    exchange: str  # without the trailing dot; "" is the RFC 7505 null MX (".")


@dataclass(frozen=True, slots=True)
class AddressRecord:
    address: str
    family: int  # socket.AF_INET or socket.AF_INET6


@dataclass(frozen=True, slots=True)
class SRVRecord:
    priority: int
    weight: int
    port: int
    target: str  # "" is RFC 2782 "service decidedly not available" (".")


@dataclass(frozen=True, slots=True)
class TLSARecord:
    usage: int
    selector: int
    mtype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TXTRecord:
    """The character-strings of one TXT record, as sent (RFC 1035 3.3.14)."""

    strings: tuple[bytes, ...]

    @property
    def text(self) -> str:
        """The strings joined, as RFC 8461 3.1 and RFC 8460 3 read a record (ASCII)."""
        return b"".join(self.strings).decode("ascii", "replace")


DnsRecord = MXRecord | AddressRecord | SRVRecord | TLSARecord | TXTRecord


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The answer to one question. `canonical_name` is the owner of `records` after any CNAME
    chain in the reply (equal to `qname` without one); names carry no trailing dot."""

    qname: str
    rdtype: str
    outcome: DnsOutcome
    records: tuple[DnsRecord, ...] = ()
    canonical_name: str = ""
    ad: bool = False
    truncated: bool = False  # more than RECORD_LIMIT records arrived; the rest were dropped

    @property
    def owner(self) -> str:
        return self.canonical_name or self.qname


class Resolver(Protocol):
    """One DNS question at a time. Implementations never raise for DNS failures."""

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer: ...


@dataclass(frozen=True, slots=True)
class Nameserver:
    address: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}"


def parse_nameserver(spec: str, parameter: str = "dns_nameservers") -> Nameserver:
    """Parse ``address``, ``address:port`` (IPv4), ``[address]`` or ``[address]:port``.

    Only numeric addresses: a resolver cannot be found by name without a resolver.
    """
    text = spec.strip()
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
            raise ConfigError(f'{parameter}: malformed nameserver "{spec}"', parameter=parameter)
        host, port_text = text[1:close], text[close + 2 :]
        if close + 1 < len(text) and not port_text:
            raise ConfigError(f'{parameter}: missing port in "{spec}"', parameter=parameter)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        address = ipaddress.ip_address(host.removeprefix("ipv6:"))
    except ValueError:
        raise ConfigError(
            f'{parameter}: "{spec}" is not a numeric IP address', parameter=parameter, value=spec
        ) from None
    port = 53
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f'{parameter}: bad port in "{spec}"', parameter=parameter, value=spec)
        port = int(port_text)
    return Nameserver(address.compressed, port)


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """`nameservers` empty means the system configuration (/etc/resolv.conf).
    `timeout` bounds one question in seconds, over all servers and retries."""

    nameservers: tuple[Nameserver, ...] = ()
    timeout: float = 10.0
    dnssec: bool = False


def _text(name: dns.name.Name) -> str:
    import dns.name

    return name.to_text(omit_final_dot=True) if name != dns.name.root else ""


def _convert(rdata: object) -> DnsRecord | None:
    """Our record value for a dnspython rdata of a supported type, else None."""
    import dns.rdatatype

    rdtype = getattr(rdata, "rdtype", None)
    if rdtype == dns.rdatatype.MX:
        return MXRecord(int(rdata.preference), _text(rdata.exchange))  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.A:
        return AddressRecord(str(rdata.address), socket.AF_INET)  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.AAAA:
        address = ipaddress.IPv6Address(rdata.address).compressed  # type: ignore[attr-defined]
        return AddressRecord(address, socket.AF_INET6)
    if rdtype == dns.rdatatype.SRV:
        return SRVRecord(
            int(rdata.priority),  # type: ignore[attr-defined]
            int(rdata.weight),  # type: ignore[attr-defined]
            int(rdata.port),  # type: ignore[attr-defined]
            _text(rdata.target),  # type: ignore[attr-defined]
        )
    if rdtype == dns.rdatatype.TLSA:
        return TLSARecord(
            int(rdata.usage),  # type: ignore[attr-defined]
            int(rdata.selector),  # type: ignore[attr-defined]
            int(rdata.mtype),  # type: ignore[attr-defined]
            bytes(rdata.cert),  # type: ignore[attr-defined]
        )
    if rdtype == dns.rdatatype.TXT:
        return TXTRecord(tuple(bytes(s) for s in rdata.strings))  # type: ignore[attr-defined]
    return None


def _failure_outcome(errors: object) -> DnsOutcome:
    """Classify "all nameservers failed" like the C resolver: the last reply's RCODE decides
    (SERVFAIL: try again; REFUSED, NOTIMP, FORMERR: no recovery); no reply at all or an
    unusable one is temporary."""
    import dns.message
    import dns.rcode

    outcome = DnsOutcome.SERVFAIL
    if isinstance(errors, list):
        for error in errors:
            response = error[4] if isinstance(error, tuple) and len(error) > 4 else None
            if isinstance(response, dns.message.Message):
                rcode = response.rcode()
                outcome = (
                    DnsOutcome.SERVFAIL if rcode == dns.rcode.SERVFAIL else DnsOutcome.NO_RECOVERY
                )
            else:
                outcome = DnsOutcome.SERVFAIL
    return outcome


# The record types asked or met in answers (CNAME chains, the SOA of a negative answer).
_RECORD_TYPES: Final = ("A", "AAAA", "MX", "SRV", "TLSA", "CNAME", "TXT", "SOA", "NS", "PTR")


def preload_dns() -> None:
    """Import now every part of dnspython a query will use: the resolver, the asyncio
    backend and the classes of the record types (dnspython imports those on first use). For
    a process that drops its privileges and may then no longer read the interpreter's files
    (the Postfix-native agent under mail_owner)."""
    import dns.asyncbackend
    import dns.asyncresolver
    import dns.exception
    import dns.flags
    import dns.message
    import dns.nameserver
    import dns.rcode
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.resolver

    dns.asyncbackend.get_backend("asyncio")
    for name in _RECORD_TYPES:
        dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(name))  # type: ignore[no-untyped-call]


class DnspythonResolver:
    """`Resolver` over dns.asyncresolver: no search list, no cache, bounded time per query."""

    def __init__(self, config: ResolverConfig) -> None:
        import dns.asyncresolver
        import dns.flags
        import dns.nameserver

        self.config = config
        configure = not config.nameservers
        resolver = dns.asyncresolver.Resolver(configure=configure)
        if config.nameservers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(ns.address, ns.port) for ns in config.nameservers
            ]
        # Postfix leaves RES_DEFNAMES/RES_DNSRCH off (smtp_dns_resolver_options is empty): a
        # name from an MX record must never get the local domain appended.
        resolver.use_search_by_default = False
        resolver.lifetime = config.timeout
        resolver.timeout = min(config.timeout, 5.0)
        resolver.retry_servfail = False
        resolver.cache = None
        if config.dnssec:
            # RFC 4035 3.2.1: DO asks for DNSSEC records; RFC 6840 5.7: AD in the query asks
            # the (validating) resolver to report the AD bit.
            resolver.use_edns(0, dns.flags.DO, 1232)
            resolver.set_flags(dns.flags.RD | dns.flags.AD)
        self._resolver = resolver

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer:
        rdtype = rdtype.upper()
        if rdtype not in SUPPORTED_TYPES:
            raise ValueError(f"unsupported record type {rdtype}")
        import dns.exception
        import dns.name
        import dns.resolver

        try:
            name = dns.name.from_text(qname, origin=dns.name.root)
        except (dns.exception.DNSException, UnicodeError):
            return DnsAnswer(qname, rdtype, DnsOutcome.NXDOMAIN)
        try:
            answer = await self._resolver.resolve(
                name, rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(qname, rdtype, DnsOutcome.NXDOMAIN)
        except dns.resolver.LifetimeTimeout:
            return DnsAnswer(qname, rdtype, DnsOutcome.TIMEOUT)
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer(qname, rdtype, _failure_outcome(exc.kwargs.get("errors")))
        except dns.resolver.YXDOMAIN:
            return DnsAnswer(qname, rdtype, DnsOutcome.NO_RECOVERY)
        except dns.exception.DNSException:
            return DnsAnswer(qname, rdtype, DnsOutcome.SERVFAIL)
        return self._answer(qname, rdtype, answer)

    def _answer(self, qname: str, rdtype: str, answer: dns.resolver.Answer) -> DnsAnswer:
        import dns.flags

        ad = self.config.dnssec and bool(answer.response.flags & dns.flags.AD)
        canonical = _text(answer.canonical_name)
        if answer.rrset is None:
            return DnsAnswer(qname, rdtype, DnsOutcome.NODATA, (), canonical, ad)
        records: list[DnsRecord] = []
        truncated = False
        for rdata in answer.rrset:
            record = _convert(rdata)
            if record is None:
                continue
            if len(records) >= RECORD_LIMIT:
                truncated = True
                break
            records.append(record)
        outcome = DnsOutcome.OK if records else DnsOutcome.NODATA
        return DnsAnswer(qname, rdtype, outcome, tuple(records), canonical, ad, truncated)


# --- native (getaddrinfo) lookups ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NativeAnswer:
    """getaddrinfo() result: addresses, or `error` (an EAI_* code) and its gai_strerror text."""

    host: str
    addresses: tuple[AddressRecord, ...] = ()
    error: int = 0
    error_text: str = ""


class NativeLookup(Protocol):
    """The system's host lookup (/etc/hosts, NSS, DNS with the search list) for a host name."""

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer: ...


class SystemNativeLookup:
    """`NativeLookup` with the event loop's getaddrinfo (run in a thread by asyncio)."""

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer:
        # A-labels as for DNS (idn.py): getaddrinfo() would apply IDNA 2003.
        name = domain_to_ascii(host)
        if name is None:
            return NativeAnswer(host, (), socket.EAI_NONAME, "invalid internationalized name")
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return NativeAnswer(host, (), exc.errno or socket.EAI_FAIL, exc.strerror or str(exc))
        except UnicodeError as exc:
            return NativeAnswer(host, (), socket.EAI_NONAME, str(exc))
        seen: list[AddressRecord] = []
        for fam, _type, _proto, _canon, sockaddr in infos:
            if fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            record = AddressRecord(ipaddress.ip_address(str(sockaddr[0])).compressed, fam)
            if record not in seen:
                seen.append(record)
        return NativeAnswer(host, tuple(seen[:RECORD_LIMIT]))
