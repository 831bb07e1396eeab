"""Next-hop destination syntax, exactly as the smtp(8)/lmtp(8) manual gives it.

SMTP: ``domain``, ``domain:port`` (MX lookup), ``[host]``, ``[host]:port`` (address lookup,
no MX), ``[address]``, ``[address]:port``, ``[ipv6:address]`` (no lookup at all).
LMTP: ``unix:/path``, ``inet:host``, ``inet:host:port``, ``inet:[address]``,
``inet:[address]:port``; a bare ``host[:port]`` or ``[address][:port]`` means ``inet:``.
Ports are numbers or service names; the LMTP default is the ``lmtp`` service, else
`lmtp_tcp_port`. Lists (relayhost, smtp_fallback_relay) split on commas and white space.
Parsing only: lookups are mx.py's and resolver.py's job.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import UsageError
from mailcarrier.idn import domain_to_ascii

__all__ = ["NextHop", "NextHopKind", "parse_nexthop", "resolve_port", "split_destinations"]

# RFC 1123 host names, plus "_" which real-world DNS labels carry.
_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def _valid_name(name: str) -> bool:
    """A host or domain name, or an internationalized one whose A-labels are (the name is
    kept as given: it is converted where it is looked up, idn.py)."""
    ascii_name = domain_to_ascii(name)
    return ascii_name is not None and _HOSTNAME_RE.fullmatch(ascii_name) is not None


_KNOWN_SERVICES: Final = {
    "smtp": 25,
    "lmtp": 24,
    "submission": 587,
    "submissions": 465,
    "smtps": 465,
}


class NextHopKind(enum.Enum):
    DOMAIN = "domain"  # MX lookup
    HOST = "host"  # address lookup only
    ADDRESS = "address"  # a literal IP address
    UNIX = "unix"  # a unix-domain socket path (LMTP)


@dataclass(frozen=True, slots=True)
class NextHop:
    text: str
    kind: NextHopKind
    host: str  # domain, host name, address, or socket path
    port: int
    # The service named in the destination ("submission" in example.com:submission), or the
    # transport's default (smtp, lmtp); use_srv_lookup matches against it.
    service: str = ""
    bracketed: bool = False  # [host] or [address]: never MX or SRV lookup

    @property
    def is_literal(self) -> bool:
        return self.kind is not NextHopKind.DOMAIN


def split_destinations(text: str) -> list[str]:
    return [d for d in re.split(r"[\s,]+", text.strip()) if d]


def resolve_port(text: str, *, what: str) -> int:
    """A decimal port or a service name from services(5)."""
    if text.isdigit():
        port = int(text)
        if not 0 < port < 65536:
            raise UsageError(f'{what}: port number out of range: "{text}"')
        return port
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        if text.lower() in _KNOWN_SERVICES:
            return _KNOWN_SERVICES[text.lower()]
        raise UsageError(f'{what}: unknown service "{text}"') from None


def _default_lmtp_port(lmtp_tcp_port: str) -> int:
    try:
        return socket.getservbyname("lmtp", "tcp")
    except OSError:
        return resolve_port(lmtp_tcp_port, what="lmtp_tcp_port")


def _split_port(text: str, original: str) -> tuple[str, str]:
    """Split ``host[:port]`` or ``[literal][:port]`` into host part and port text."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise UsageError(f'bad destination syntax "{original}": missing "]"')
        rest = text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageError(f'bad destination syntax "{original}": junk after "]"')
        return text[: close + 1], rest[1:] if rest else ""
    host, _, port = text.partition(":")
    return host, port


def _parse_bracketed(inner: str, original: str) -> tuple[NextHopKind, str]:
    if inner.lower().startswith("ipv6:"):
        literal = inner[5:]
        try:
            return NextHopKind.ADDRESS, str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise UsageError(f'bad IPv6 address in destination "{original}"') from None
    try:
        addr = ipaddress.ip_address(inner)
    except ValueError:
        pass
    else:
        return NextHopKind.ADDRESS, str(addr)
    if not _valid_name(inner):
        raise UsageError(f'bad host name in destination "{original}"')
    return NextHopKind.HOST, inner.rstrip(".").lower()


def parse_nexthop(text: str, *, transport: str = "smtp", lmtp_tcp_port: str = "24") -> NextHop:
    """Parse one destination; `UsageError` with the offending text on bad syntax."""
    original = text
    text = text.strip()
    if not text:
        raise UsageError("empty destination")
    if any(c.isspace() or c in ",<>" for c in text):
        raise UsageError(f'bad destination syntax "{original}"')
    if transport == "lmtp":
        return _parse_lmtp(text, original, lmtp_tcp_port)
    if transport != "smtp":
        raise UsageError(f'unknown transport "{transport}"')
    if text.lower().startswith(("unix:", "inet:")):
        raise UsageError(f'destination "{original}" is LMTP syntax; use --transport lmtp')
    host, port_text = _split_port(text, original)
    port = resolve_port(port_text, what=f'destination "{original}"') if port_text else 25
    service = _service(port_text, "smtp")
    if host.startswith("["):
        kind, name = _parse_bracketed(host[1:-1], original)
        return NextHop(original, kind, name, port, service, bracketed=True)
    if not _valid_name(host):
        raise UsageError(f'bad domain name in destination "{original}"')
    return NextHop(original, NextHopKind.DOMAIN, host.rstrip(".").lower(), port, service)


def _service(port_text: str, default: str) -> str:
    if not port_text:
        return default
    return "" if port_text.isdigit() else port_text.lower()


def _parse_lmtp(text: str, original: str, lmtp_tcp_port: str) -> NextHop:
    lower = text.lower()
    if lower.startswith("unix:"):
        path = text[5:]
        if not path:
            raise UsageError(f'bad destination syntax "{original}": empty socket path')
        return NextHop(original, NextHopKind.UNIX, path, 0)
    if lower.startswith("inet:"):
        text = text[5:]
    host, port_text = _split_port(text, original)
    if not host:
        raise UsageError(f'bad destination syntax "{original}": empty host')
    if port_text:
        port = resolve_port(port_text, what=f'destination "{original}"')
    else:
        port = _default_lmtp_port(lmtp_tcp_port)
    service = _service(port_text, "lmtp")
    if host.startswith("["):
        kind, name = _parse_bracketed(host[1:-1], original)
        return NextHop(original, kind, name, port, service, bracketed=True)
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        pass
    else:
        return NextHop(original, NextHopKind.ADDRESS, address, port, service, bracketed=True)
    if not _valid_name(host):
        raise UsageError(f'bad host name in destination "{original}"')
    # LMTP inet:host is an address lookup, never MX (SRV only with use_srv_lookup).
    return NextHop(original, NextHopKind.HOST, host.rstrip(".").lower(), port, service)
