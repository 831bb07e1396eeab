"""The grammar of ``http_listen``: where the metrics and status listener binds (observe/).

``ADDRESS:PORT`` with a numerical IPv4 address, ``[IPV6]:PORT``, or ``localhost:PORT``
(127.0.0.1); port 0 lets the system pick one (the listener logs which). Host names other
than localhost are refused: whether an address is loopback must be known without a DNS
lookup, because a non-loopback one needs ``http_listen_allow_remote = yes``. Pure: parses and
judges, binds nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailcarrier.printable import printable

__all__ = ["ListenAddress", "parse_listen"]


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str  # a numerical address
    port: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """The address of `text`; ValueError with the reason (one printable line) when it is
    not one."""
    value = text.strip()
    shown = printable(text)
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f'"{shown}" is not [IPV6]:PORT')
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f'"{shown}" is not ADDRESS:PORT')
        if ":" in host:  # ::1:9154 could be ::1 port 9154, or ::1:9154 with no port
            raise ValueError(f'"{shown}": an IPv6 address goes in brackets: [ADDRESS]:PORT')
    if host.lower() == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f'"{printable(host)}" in "{shown}" is not a numerical address (or localhost)'
        ) from None
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f'"{printable(port)}" in "{shown}" is not a port number (0 to 65535)')
    return ListenAddress(str(address), int(port))
