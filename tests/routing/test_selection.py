"""Pure address ordering: family balancing, preference sort, SRV weights, Happy Eyeballs."""

from __future__ import annotations

import random
import socket
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.routing.options import AddressPreference
from mailcarrier.routing.resolver import SRVRecord
from mailcarrier.routing.result import ServerAddress
from mailcarrier.routing.selection import (
    apply_address_limit,
    balance_inet_protocols,
    happy_eyeballs_order,
    order_addresses,
    order_srv_records,
)


def v4(n: int, pref: int = 10) -> ServerAddress:
    return ServerAddress("h", f"192.0.2.{n}", 25, socket.AF_INET, pref)


def v6(n: int, pref: int = 10) -> ServerAddress:
    return ServerAddress("h", f"2001:db8::{n}", 25, socket.AF_INET6, pref)


def families(addresses: list[ServerAddress]) -> str:
    return "".join("4" if s.family == socket.AF_INET else "6" for s in addresses)


def test_balance_region_r1_keeps_all_of_the_smaller_v6() -> None:
    addresses = [v4(i) for i in range(1, 7)] + [v6(1), v6(2)]
    assert families(balance_inet_protocols(addresses, 5)) == "44466"


def test_balance_region_r3_keeps_all_of_the_smaller_v4() -> None:
    addresses = [v6(i) for i in range(1, 7)] + [v4(1)]
    assert families(balance_inet_protocols(addresses, 5)) == "66664"


def test_balance_region_r2_odd_slot_to_first_family() -> None:
    addresses = [v4(i) for i in range(1, 5)] + [v6(i) for i in range(1, 5)]
    assert families(balance_inet_protocols(addresses, 5)) == "44466"
    addresses = [v6(i) for i in range(1, 5)] + [v4(i) for i in range(1, 5)]
    assert families(balance_inet_protocols(addresses, 5)) == "66644"


def test_balance_noop_cases() -> None:
    only4 = [v4(i) for i in range(1, 9)]
    assert balance_inet_protocols(only4, 5) == only4
    few = [v4(1), v6(1)]
    assert balance_inet_protocols(few, 5) == few
    assert balance_inet_protocols([*only4, v6(1)], 0) == [*only4, v6(1)]


@given(st.lists(st.booleans(), min_size=1, max_size=30), st.integers(min_value=1, max_value=12))
def test_balance_invariants(is_v4: list[bool], limit: int) -> None:
    addresses = [v4(i) if flag else v6(i) for i, flag in enumerate(is_v4)]
    out = balance_inet_protocols(addresses, limit)
    # Order kept, elements only removed, and both families survive the limit.
    assert [a for a in addresses if a in out] == out
    if any(is_v4) and not all(is_v4) and len(addresses) > limit:
        assert len(out) == limit
        if limit >= 2:
            assert len(set(families(out))) == 2
    else:
        assert out == addresses


def test_order_by_preference_then_family() -> None:
    addresses = [v4(1, 20), v6(1, 10), v4(2, 10), v6(2, 20)]
    rng = random.Random(0)
    any_ = order_addresses(addresses, preference=AddressPreference.ANY, randomize=False, rng=rng)
    assert [s.address for s in any_] == ["2001:db8::1", "192.0.2.2", "192.0.2.1", "2001:db8::2"]
    ipv4 = order_addresses(addresses, preference=AddressPreference.IPV4, randomize=False, rng=rng)
    assert families(ipv4) == "4646"


def test_address_limit() -> None:
    addresses = [v4(i) for i in range(1, 9)]
    assert apply_address_limit(addresses, 5) == addresses[:5]
    assert apply_address_limit(addresses, 0) == addresses


def test_srv_priority_then_weight() -> None:
    records = [
        ("q", SRVRecord(10, 0, 25, "low")),
        ("q", SRVRecord(0, 90, 25, "heavy")),
        ("q", SRVRecord(0, 10, 25, "light")),
    ]
    firsts: Counter[str] = Counter()
    for seed in range(400):
        ordered = order_srv_records(records, random.Random(seed))
        assert ordered[-1][1].target == "low"
        firsts[ordered[0][1].target] += 1
    # RFC 2782: selection probability proportional to weight (90:10).
    assert firsts["heavy"] > 4 * firsts["light"] > 0


def test_srv_zero_weights_keep_shuffled_order() -> None:
    records = [("q", SRVRecord(0, 0, 25, t)) for t in "abcd"]
    seen = {
        tuple(r[1].target for r in order_srv_records(records, random.Random(s))) for s in range(30)
    }
    assert len(seen) > 1


def test_happy_eyeballs_interleaves_within_preference() -> None:
    addresses = [v6(1), v6(2), v6(3), v4(1), v4(2), v4(3, 20), v6(4, 20)]
    assert families(happy_eyeballs_order(addresses)) == "64646" + "46"
    assert families(happy_eyeballs_order(addresses, first_family_count=2)) == "66464" + "46"
    assert families(happy_eyeballs_order([v4(1), v4(2), v6(1)])) == "464"


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([10, 20, 30])), max_size=20))
def test_happy_eyeballs_is_a_permutation_keeping_preference_order(
    spec: list[tuple[bool, int]],
) -> None:
    addresses = sorted(
        (v4(i, p) if flag else v6(i, p) for i, (flag, p) in enumerate(spec)),
        key=lambda s: s.preference,
    )
    out = happy_eyeballs_order(addresses)
    assert sorted(out, key=repr) == sorted(addresses, key=repr)
    assert [s.preference for s in out] == [s.preference for s in addresses]
