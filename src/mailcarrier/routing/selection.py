"""Address ordering, pure: shuffling, family preference, family balancing, limits, SRV
weights and Happy Eyeballs interleaving.

These are Postfix's dns_rr_shuffle() + dns_rr_sort() (equal-preference addresses in random
order, then by MX preference, then optionally by address family), smtp_balance_inet_proto()
(keep both families within smtp_mx_address_limit), dns_srv_rr_sort() (RFC 2782 priority and
weight), plus an RFC 8305 interleaving for the connection racing in transport/. Randomness
comes from an injected `random.Random`, so tests are deterministic; nothing here does I/O.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from itertools import groupby
from typing import TypeVar

from mailcarrier.routing.options import AddressPreference
from mailcarrier.routing.resolver import SRVRecord
from mailcarrier.routing.result import ServerAddress

__all__ = [
    "apply_address_limit",
    "balance_inet_protocols",
    "happy_eyeballs_order",
    "order_addresses",
    "order_srv_records",
    "shuffle",
]

T = TypeVar("T")


def shuffle(items: Sequence[T], rng: random.Random) -> list[T]:
    """A uniform permutation (Fisher-Yates), as Postfix's dns_rr_shuffle()."""
    out = list(items)
    rng.shuffle(out)
    return out


def _family_rank(server: ServerAddress, preference: AddressPreference) -> int:
    if preference is AddressPreference.IPV6:
        return 0 if server.family == socket.AF_INET6 else 1
    if preference is AddressPreference.IPV4:
        return 0 if server.family == socket.AF_INET else 1
    return 0


def order_addresses(
    addresses: Sequence[ServerAddress],
    *,
    preference: AddressPreference,
    randomize: bool,
    rng: random.Random,
    sort: bool = True,
) -> list[ServerAddress]:
    """Shuffle (smtp_randomize_addresses), then sort by MX preference and, within equal
    preference, by smtp_address_preference. The sort is stable: without randomizing,
    addresses keep the order in which the DNS listed them (RFC 5321 5.1 says to use the
    addresses of one host in the order given). `sort=False` only shuffles (Postfix's host
    lookup with one address family)."""
    out = shuffle(addresses, rng) if randomize and len(addresses) > 1 else list(addresses)
    if sort:
        out.sort(key=lambda s: (s.preference, _family_rank(s, preference)))
    return out


def balance_inet_protocols(addresses: Sequence[ServerAddress], limit: int) -> list[ServerAddress]:
    """Postfix smtp_balance_inet_proto(): when IPv4 and IPv6 addresses together exceed the
    address limit, drop some of the more numerous family so that neither crowds the other
    out (a destination whose IPv6 MX addresses fill the limit may be unreachable over IPv6).
    Order is kept; elements are only removed."""
    v4 = sum(1 for s in addresses if s.family == socket.AF_INET)
    v6 = len(addresses) - v4
    if limit <= 0 or v4 == 0 or v6 == 0 or v4 + v6 <= limit:
        return list(addresses)
    if v6 <= limit // 2:
        v6_target = v6
        v4_target = limit - v6_target
    elif v4 <= limit // 2:
        v4_target = v4
        v6_target = limit - v4_target
    else:
        # Both exceed half the limit: split it, giving the odd slot to the family of the
        # first (most preferred) address.
        first_is_v4 = addresses[0].family == socket.AF_INET
        v4_target = (limit + (1 if first_is_v4 else 0)) // 2
        v6_target = limit - v4_target
    out: list[ServerAddress] = []
    for server in addresses:
        if server.family == socket.AF_INET:
            if v4_target > 0:
                out.append(server)
                v4_target -= 1
        elif v6_target > 0:
            out.append(server)
            v6_target -= 1
    return out


def apply_address_limit(addresses: Sequence[ServerAddress], limit: int) -> list[ServerAddress]:
    """smtp_mx_address_limit: Postfix stops its connect loop after this many addresses;
    returning only that many is the same thing. 0 means no limit."""
    return list(addresses[:limit]) if limit > 0 else list(addresses)


def _weight_order(group: list[tuple[str, SRVRecord]], rng: random.Random) -> None:
    """RFC 2782 weighted selection within one priority, in place, as Postfix does it: a zero
    weight is treated as a small weight, not specially (simpler, and still fair)."""
    unordered = sum(record.weight for _, record in group)
    if unordered == 0:
        return
    for i in range(len(group) - 1):
        threshold = rng.randint(0, unordered)
        running = 0
        for k in range(i, len(group)):
            running += group[k][1].weight
            if running >= threshold:
                unordered -= group[k][1].weight
                group[i], group[k] = group[k], group[i]
                break


def order_srv_records(
    records: Sequence[tuple[str, SRVRecord]], rng: random.Random
) -> list[tuple[str, SRVRecord]]:
    """Postfix dns_srv_rr_sort(): shuffle, sort by priority (lowest first, RFC 2782), then
    order each priority group by weighted random selection. Items are (qname, record)."""
    shuffled = shuffle(records, rng)
    shuffled.sort(key=lambda item: item[1].priority)
    out: list[tuple[str, SRVRecord]] = []
    for _priority, group_iter in groupby(shuffled, key=lambda item: item[1].priority):
        group = list(group_iter)
        if len(group) > 1:
            _weight_order(group, rng)
        out.extend(group)
    return out


def happy_eyeballs_order(
    addresses: Sequence[ServerAddress], *, first_family_count: int = 1
) -> list[ServerAddress]:
    """RFC 8305 section 4 ordering for connection racing, within each MX preference.

    The family of the first address of a preference group goes first (so
    smtp_address_preference still decides, and RFC 8305's "prefer IPv6" holds when the
    list already puts IPv6 first); then `first_family_count` addresses of that family, then
    the families alternate one by one. Preference groups are never mixed: an MX host is
    never raced against a less preferred one (RFC 5321 5.1). The transport starts each next
    attempt after the Connection Attempt Delay (RFC 8305 section 5, 250 ms recommended)
    or as soon as the previous attempt fails."""
    out: list[ServerAddress] = []
    for _preference, group_iter in groupby(addresses, key=lambda s: s.preference):
        group = list(group_iter)
        first_family = group[0].family
        primary = [s for s in group if s.family == first_family]
        secondary = [s for s in group if s.family != first_family]
        lead = max(first_family_count, 1)
        out.extend(primary[:lead])
        primary = primary[lead:]
        while primary or secondary:
            if secondary:
                out.append(secondary.pop(0))
            if primary:
                out.append(primary.pop(0))
    return out
