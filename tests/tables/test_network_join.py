"""NetworkTable lookups that join the same lookup on its way (tables/network.py): one query
for a burst of the same key, the answer and the temporary failure shared, separate keys and
loops asked separately, and cancellation that neither spreads nor loses an answer. The
table's server is scripted here (a `search` that waits on a gate); test_pgsql.py has the
same behaviour against PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mailcarrier.tables.base import TableLookupError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import Templates
from mailcarrier.tables.network import NetworkTable


class GatedTable(NetworkTable):
    """Answers `answers[key]` (a missing key: not found) once `gate` opens; counts the
    questions that reached the server."""

    kind = "gated"

    def __init__(self, answers: dict[str, str], *, fail: bool = False) -> None:
        config = TableConfig("gated.cf", {})
        super().__init__("gated:gated.cf", config, Templates("%s", where="gated.cf"))
        self.answers = answers
        self.fail = fail
        self.asked: list[str] = []
        self.gate = asyncio.Event()

    async def search(self, key: str) -> Sequence[str | None]:
        self.asked.append(key)
        await self.gate.wait()
        if self.fail:
            raise TableLookupError(f"{self.spec}: lookup error: server went away")
        return [self.answers[key]] if key in self.answers else []


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_burst_of_one_key_asks_once() -> None:
    table = GatedTable({"example.com": "encrypt"})
    lookups = [asyncio.ensure_future(table.lookup_async("Example.COM")) for _ in range(20)]
    await settle()
    assert table.asked == ["example.com"]  # folded once, sent once
    table.gate.set()
    assert await asyncio.gather(*lookups) == ["encrypt"] * 20
    # Answered: the next question goes to the server again (nothing is cached).
    assert await table.lookup_async("example.com") == "encrypt"
    assert table.asked == ["example.com", "example.com"]


async def test_other_keys_are_asked_on_their_own() -> None:
    table = GatedTable({"a.example": "may", "b.example": "none"})
    first = asyncio.ensure_future(table.lookup_async("a.example"))
    second = asyncio.ensure_future(table.lookup_async("b.example"))
    missing = asyncio.ensure_future(table.lookup_async("c.example"))
    await settle()
    assert sorted(table.asked) == ["a.example", "b.example", "c.example"]
    table.gate.set()
    assert list(await asyncio.gather(first, second, missing)) == ["may", "none", None]


async def test_a_temporary_failure_reaches_every_waiter() -> None:
    table = GatedTable({}, fail=True)
    lookups = [asyncio.ensure_future(table.lookup_async("x.example")) for _ in range(3)]
    await settle()
    table.gate.set()
    outcomes = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(o, TableLookupError) for o in outcomes)
    assert {str(o) for o in outcomes} == {"gated:gated.cf: lookup error: server went away"}
    assert table.asked == ["x.example"]


async def test_the_asker_cancelled_leaves_the_joiners_to_ask_again() -> None:
    table = GatedTable({"x.example": "verify"})
    owner = asyncio.ensure_future(table.lookup_async("x.example"))
    await settle()
    joiners = [asyncio.ensure_future(table.lookup_async("x.example")) for _ in range(3)]
    await settle()
    owner.cancel()
    await settle()
    assert owner.cancelled()
    assert not any(j.done() for j in joiners)  # not cancelled with it: asking again
    assert table.asked == ["x.example", "x.example"]  # one of them asked, the others joined
    table.gate.set()
    assert await asyncio.gather(*joiners) == ["verify"] * 3


async def test_a_joiner_cancelled_leaves_the_others_their_answer() -> None:
    table = GatedTable({"x.example": "dane"})
    owner = asyncio.ensure_future(table.lookup_async("x.example"))
    await settle()
    quitter = asyncio.ensure_future(table.lookup_async("x.example"))
    stayer = asyncio.ensure_future(table.lookup_async("x.example"))
    await settle()
    quitter.cancel()
    await settle()
    table.gate.set()
    assert await owner == "dane" and await stayer == "dane"
    assert quitter.cancelled()
    assert table.asked == ["x.example"]


def test_each_loop_asks_for_itself() -> None:
    table = GatedTable({"x.example": "may"})
    table.gate = asyncio.Event()

    async def ask() -> str | None:
        table.gate.set()  # this loop's gate: nothing to wait for
        return await table.lookup_async("x.example")

    assert asyncio.run(ask()) == "may"
    assert asyncio.run(ask()) == "may"
    assert table.asked == ["x.example", "x.example"]
    assert table._asking == {}  # nothing left behind by either loop


@pytest.mark.parametrize("key", ["", "\udcff.example"])
async def test_keys_never_sent_are_not_joined(key: str) -> None:
    table = GatedTable({})
    table.gate.set()
    assert await table.lookup_async(key) is None
    assert table.asked == [] and table._asking == {}
