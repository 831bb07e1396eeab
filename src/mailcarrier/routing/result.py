"""Routing results: the ordered server addresses for a next hop, or why there are none.

A lookup (`mx.lookup_mx_hosts`, `mx.lookup_host_addresses`, `srv.lookup_srv_hosts`) returns
either a `RouteResult` (addresses in the order the delivery loop must try them) or a
`RouteFailure` (deferred or bounced, with an RFC 3463 code and Postfix's diagnostic text).
Both are plain values; nothing here does I/O or logs. Lookups also return `LogNote`s for the
warnings Postfix logs while it resolves ("no MX host for example.com has a valid address
record"); the caller writes them to the log. The delivery loop (delivery/) consumes these.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "LOOP_DSN",
    "LogNote",
    "RouteFailure",
    "RouteResult",
    "ServerAddress",
]

# RFC 3463 X.4.6: "Routing loop detected". Postfix recognises a loop by this detail code.
LOOP_DSN: Final = "5.4.6"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """One address to connect to.

    `hostname` is the server name used for logging, SASL and TLS policy: the MX/SRV target or
    host name as looked up, or its CNAME-expanded name with smtp_cname_overrides_servername.
    `preference` is the MX preference (SRV priority; 0 for a host without MX), `family` is
    `socket.AF_INET` or `socket.AF_INET6`. `dnssec_valid` says the address records (and the
    MX/SRV records that led to them) came with the DNSSEC AD bit. For DANE the two are
    judged apart (Postfix smtp_tls_policy.c): `address_dnssec_valid` is the AD bit of the
    A/AAAA answer alone, `mx_dnssec_valid` that of the MX/SRV RRset that named the host, or
    None when no MX/SRV record was involved (``[host]``, implicit MX, LMTP).
    """

    hostname: str
    address: str
    port: int
    family: int
    preference: int
    dnssec_valid: bool = False
    address_dnssec_valid: bool = False
    mx_dnssec_valid: bool | None = None

    @property
    def relay(self) -> str:
        """Postfix's ``host[addr]:port`` text for log lines and the relay= field."""
        return f"{self.hostname}[{self.address}]:{self.port}"

    @property
    def is_ipv6(self) -> bool:
        return self.family == socket.AF_INET6


@dataclass(frozen=True, slots=True)
class LogNote:
    """A line Postfix would log while routing: `level` is ``warning`` or ``info``."""

    level: Literal["warning", "info"]
    text: str


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Addresses to try, best first, already truncated to smtp_mx_address_limit.

    `i_am_mx` is Postfix's "found myself": this host is a (less preferred) MX host for the
    destination, so the caller must not go on to fallback relays after these addresses.
    `mx_dnssec_valid` says the MX (or SRV) RRset was DNSSEC-validated (always False for a
    host looked up without MX).
    """

    addresses: tuple[ServerAddress, ...]
    i_am_mx: bool = False
    mx_dnssec_valid: bool = False
    notes: tuple[LogNote, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteFailure:
    """No address to try. `status` follows the class of `dsn` (4 deferred, 5 bounced).

    The caller still decides what happens to the recipients: Postfix tries fallback relays
    after a failed lookup (unless `i_am_mx` or the failure is a mail loop), and turns a hard
    failure of a relayhost or fallback relay into 4.3.5.
    """

    status: Literal["deferred", "bounced"]
    dsn: str
    diagnostic: str
    i_am_mx: bool = False
    notes: tuple[LogNote, ...] = ()

    @property
    def is_loop(self) -> bool:
        """Postfix's SMTP_HAS_LOOP_DSN: "mail for X loops back to myself" (X.4.6)."""
        return self.dsn[1:] == LOOP_DSN[1:]

    @classmethod
    def from_dsn(
        cls,
        dsn: str,
        diagnostic: str,
        *,
        i_am_mx: bool = False,
        notes: tuple[LogNote, ...] = (),
    ) -> RouteFailure:
        status: Literal["deferred", "bounced"] = "deferred" if dsn.startswith("4") else "bounced"
        return cls(status, dsn, diagnostic, i_am_mx, notes)
