"""delivery/sts_cache.py without sockets: a fake resolver and fetcher, a fake clock. The refresh
schedule (`refresh_due`), retries of a failed refresh, expiry, one fetch shared by concurrent
deliveries, unreadable cache files; and the `mx_authenticated_by_sts` flag that
delivery/sts_step.py records on a server's policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mailcarrier.delivery.sts_cache import CachedPolicy, StsPolicies
from mailcarrier.delivery.sts_fetch import FetchSettings, StsFetchError
from mailcarrier.delivery.sts_step import refine_policy
from mailcarrier.delivery.tls_job import TlsClient
from mailcarrier.log import MemoryLog
from mailcarrier.routing.resolver import DnsAnswer, DnsOutcome, Resolver, TXTRecord
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import resolve_policy
from mailcarrier.transport.connection import Peer
from tests.support.settings import make_settings

SETTINGS = FetchSettings()
BODY = b"version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 1000\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class TxtResolver:
    """Answers the _mta-sts TXT question with `record_id` (None: NXDOMAIN)."""

    def __init__(self, record_id: str | None = "1") -> None:
        self.record_id = record_id

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer:
        if self.record_id is None:
            return DnsAnswer(qname, rdtype, DnsOutcome.NXDOMAIN)
        text = f"v=STSv1; id={self.record_id}".encode()
        return DnsAnswer(qname, rdtype, DnsOutcome.OK, (TXTRecord((text,)),))


class Fetcher:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, resolver: Resolver, domain: str, settings: FetchSettings) -> bytes:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise StsFetchError("connect to mta-sts.sts.test[127.0.0.1]:443: Connection refused")
        return BODY


def _policies(tmp_path: Path, clock: Clock, fetcher: Fetcher, log: MemoryLog) -> StsPolicies:
    return StsPolicies(tmp_path / "mta-sts", log=log, wallclock=clock, fetcher=fetcher)


async def test_refresh_schedule_and_retry(tmp_path: Path) -> None:
    clock, fetcher, log = Clock(), Fetcher(), MemoryLog()
    policies = _policies(tmp_path, clock, fetcher, log)
    resolver = TxtResolver()
    first = await policies.policy_for("sts.test", resolver, SETTINGS)
    assert first is not None and first.expires == clock.now + 1000
    assert policies.next_refresh() == clock.now + 500
    assert await policies.refresh_due(resolver, SETTINGS) == 0  # not yet
    clock.now += 500
    assert await policies.refresh_due(resolver, SETTINGS) == 1
    assert fetcher.calls == 2
    assert policies.cached("sts.test") == CachedPolicy(
        "sts.test", "1", "enforce", ("*.sts.test",), 1000, clock.now
    )
    # A failed refresh keeps the policy and is tried again before it expires.
    clock.now += 500
    fetcher.fail = True
    assert await policies.refresh_due(resolver, SETTINGS) == 1
    assert policies.next_refresh() == clock.now + 125  # a quarter of what is left
    assert log.lines[-1].endswith("; using the cached policy (mode enforce, id 1)")
    clock.now += 600  # expired: no longer applied, even with the fetch failing
    assert await policies.policy_for("sts.test", TxtResolver("2"), SETTINGS) is None


async def test_concurrent_deliveries_share_one_fetch(tmp_path: Path) -> None:
    clock, fetcher, log = Clock(), Fetcher(), MemoryLog()
    fetcher.gate = asyncio.Event()
    policies = _policies(tmp_path, clock, fetcher, log)
    waiting = [
        asyncio.ensure_future(policies.policy_for("sts.test", TxtResolver(), SETTINGS))
        for _ in range(5)
    ]
    await asyncio.sleep(0.01)
    fetcher.gate.set()
    found = await asyncio.gather(*waiting)
    assert fetcher.calls == 1 and len({id(f) for f in found}) == 1


async def test_unreadable_cache_file_is_one_warning(tmp_path: Path) -> None:
    clock, fetcher, log = Clock(), Fetcher(), MemoryLog()
    (tmp_path / "mta-sts").mkdir()
    (tmp_path / "mta-sts" / "sts.test.json").write_text("{not json")
    policies = _policies(tmp_path, clock, fetcher, log)
    assert await policies.policy_for("sts.test", TxtResolver(None), SETTINGS) is None
    (warning,) = log.lines
    assert f"MTA-STS cache file {tmp_path}/mta-sts/sts.test.json ignored: " in warning


async def test_mx_authenticated_by_sts_is_recorded_per_server(tmp_path: Path) -> None:
    settings = make_settings(data_directory=str(tmp_path))
    agent = settings.for_transport("smtp")
    clock, fetcher, log = Clock(), Fetcher(), MemoryLog()
    policies = _policies(tmp_path, clock, fetcher, log)
    resolver = TxtResolver()
    job = TlsClient().job(
        agent,
        "sts.test",
        log=log,
        resolver=lambda: resolver,
        preactive_delay=0,
        sts=policies,
        refine=refine_policy,
    )
    inside = Peer("mx.sts.test", "192.0.2.1", 25, mx_dnssec_valid=False)
    outside = Peer("mx.other.test", "192.0.2.2", 25, mx_dnssec_valid=False)
    good, bad = await job.resolve(inside), await job.resolve(outside)
    assert (good.level, good.sts_mode, good.feature_name) == (
        SecurityLevel.SECURE,
        "enforce",
        "sts",
    )
    assert good.mx_authenticated_by_sts and not bad.mx_authenticated_by_sts
    assert fetcher.calls == 1  # one lookup per destination
    # Without MTA-STS the flag is never set.
    plain = resolve_policy(agent, "sts.test", "mx.sts.test")
    assert not plain.mx_authenticated_by_sts
    data = json.loads((tmp_path / "mta-sts" / "sts.test.json").read_text())
    assert data["mx"] == ["*.sts.test"]
