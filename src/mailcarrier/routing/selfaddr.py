"""Mail-loop detection: this host's own addresses, and spotting them among mail exchangers.

`own_addresses()` expands ``inet_interfaces`` (``all``, ``loopback-only`` or addresses and
host names) and ``proxy_interfaces`` into sets of numeric addresses, as Postfix's
own_inet_addr_list() and proxy_inet_addr_list() do; the interface enumeration and host-name
resolution are injectable. `find_self()` and `truncate_self()` are Postfix's smtp_find_self()
and smtp_truncate_self(): pure functions on an MX-ordered address list. `mx.py` and `srv.py`
apply them; what happens to a looping message (best_mx_transport, defer, bounce) is the
delivery loop's decision, from the `RouteFailure` they return.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.errors import ConfigError
from mailcarrier.routing.result import ServerAddress

__all__ = [
    "OwnAddresses",
    "find_self",
    "normalize_address",
    "own_addresses",
    "system_interface_addresses",
    "truncate_self",
]

_LOOPBACK = ("127.0.0.1", "::1")


def normalize_address(text: str) -> str:
    """One spelling per address (Postfix compares binary addresses), without a zone index."""
    return ipaddress.ip_address(text.split("%", 1)[0].strip("[]")).compressed


@dataclass(frozen=True, slots=True)
class OwnAddresses:
    """Addresses this mail system receives mail on: directly, or through a proxy/NAT."""

    local: frozenset[str] = frozenset()
    proxy: frozenset[str] = frozenset()

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            key = normalize_address(address)
        except ValueError:
            return False
        return key in self.local or key in self.proxy


def _proc_addresses() -> list[str]:
    """Interface addresses from Linux /proc: local routes in fib_trie (IPv4) and if_inet6."""
    found: list[str] = []
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            candidate = previous.strip().removeprefix("|--").strip()
            try:
                found.append(normalize_address(candidate))
            except ValueError:
                continue
    try:
        inet6 = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        inet6 = []
    for line in inet6:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            text = ":".join(fields[0][i : i + 4] for i in range(0, 32, 4))
            try:
                found.append(normalize_address(text))
            except ValueError:
                continue
    return found


def _resolve_host(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def system_interface_addresses(
    resolve_host: Callable[[str], Iterable[str]] | None = None,
) -> list[str]:
    """Best effort: /proc on Linux, the host name's addresses, and loopback. Never raises."""
    resolve = resolve_host or _resolve_host
    found = [*_proc_addresses(), *resolve(socket.gethostname()), *_LOOPBACK]
    return list(dict.fromkeys(found))


def _expand(
    items: Sequence[str],
    parameter: str,
    families: Sequence[int],
    resolve_host: Callable[[str], Iterable[str]],
) -> frozenset[str]:
    out: set[str] = set()
    for item in items:
        text = item.strip().strip("[]")
        try:
            out.add(normalize_address(text))
            continue
        except ValueError:
            pass
        resolved = [a for a in resolve_host(text)]
        if not resolved:
            raise ConfigError(
                f"{parameter}: host not found: {text}", parameter=parameter, value=item
            )
        for address in resolved:
            out.add(normalize_address(address))
    return frozenset(a for a in out if _family(a) in families)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def own_addresses(
    inet_interfaces: Sequence[str],
    proxy_interfaces: Sequence[str],
    families: Sequence[int] = (socket.AF_INET, socket.AF_INET6),
    *,
    interface_addresses: Callable[[], Iterable[str]] | None = None,
    resolve_host: Callable[[str], Iterable[str]] | None = None,
) -> OwnAddresses:
    """Expand inet_interfaces/proxy_interfaces, keeping only the enabled address families."""
    resolve = resolve_host or _resolve_host
    lowered = [i.lower() for i in inet_interfaces]
    if not lowered or "all" in lowered:
        enumerate_ = interface_addresses or system_interface_addresses
        local = _expand(list(enumerate_()), "inet_interfaces", families, resolve)
    elif lowered == ["loopback-only"]:
        local = _expand(list(_LOOPBACK), "inet_interfaces", families, resolve)
    else:
        local = _expand(inet_interfaces, "inet_interfaces", families, resolve)
    proxy = _expand(proxy_interfaces, "proxy_interfaces", families, resolve)
    return OwnAddresses(local, proxy)


def find_self(addresses: Sequence[ServerAddress], own: OwnAddresses) -> ServerAddress | None:
    """The first address (best MX first) on which this host, or its proxy, receives mail.

    Postfix recognises itself by address only (RFC 5321 5.1 also suggests host names, which
    assumes an address appears under one name only)."""
    for server in addresses:
        if server.address in own:
            return server
    return None


def truncate_self(addresses: Sequence[ServerAddress], preference: int) -> tuple[ServerAddress, ...]:
    """Drop everything from the first address whose preference equals ours: RFC 5321 5.1
    says a sender that is itself an MX host must only use more preferred MX hosts."""
    for index, server in enumerate(addresses):
        if server.preference == preference:
            return tuple(addresses[:index])
    return tuple(addresses)
