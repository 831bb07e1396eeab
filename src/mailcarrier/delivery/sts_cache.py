"""The MTA-STS policies an agent knows: discovery, fetch, a cache that survives restarts, refresh.

`StsPolicies.policy_for(domain)` is RFC 8461 5.1 for one delivery: look up the
``_mta-sts`` TXT record (routing/mtasts.py); when its ``id`` is the cached policy's, use the
cached policy; when it differs or nothing is cached, fetch the policy (sts_fetch.py) and
cache it; when the fetch or the policy fails, or DNS gives no valid record, use the cached
policy while it is valid (an attacker who strips the TXT record or blocks the policy host
gains nothing), else apply none ("as though the domain has not implemented MTA-STS"). Each
problem is one log line. Fetches of one domain are shared by the deliveries that wait for
it (one fetch in flight per domain); they run on the event loop, so deliveries to other
destinations go on meanwhile. An enforcement failure with a policy that was not fetched
just now (`suspect()`) makes the next lookup fetch again before the policy is applied
(RFC 8461 5.1: check for a new policy before giving up on a message).

The cache: one JSON file per domain in ``$data_directory/mta-sts/``, written with
durable.write_atomically (a crash leaves the old entry or the new one), read when a domain is
first asked about. A file that cannot be read or written is a warning, never a failure.
In fleet mode (`shared`: fleet/shared.py, through the fleet's Redis) a policy one node fetched
spares the others the fetch: before fetching, a node takes the fleet's entry when it has the
TXT record's id, has not expired and is not the one the node holds already (same id, fetched
no later); never for a policy suspected after a failure (that one is fetched again). Every
policy fetched is put there for the rest of its life. The file stays the cache of record:
Redis away means a fetch, as without a fleet.
`refresh_due()` refetches the cached policies whose refresh time has come, and
`run_refresh()` calls it in a loop: the long-running agents (the queue daemon's, the
Postfix-native one) start it, so a policy is renewed before it expires without waiting for
mail (RFC 8461 5.1: "senders SHOULD ... proactively refresh").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from mailcarrier.config.settings import AgentSettings
from mailcarrier.delivery.sts_fetch import FetchSettings, StsFetchError, fetch_policy
from mailcarrier.durable import write_atomically
from mailcarrier.fleet.shared import SharedEntries
from mailcarrier.log import LogSink
from mailcarrier.routing.mtasts import discover
from mailcarrier.routing.options import parse_inet_protocols
from mailcarrier.routing.resolver import Resolver
from mailcarrier.tls.sts import StsPolicy, StsPolicyError, parse_policy

__all__ = ["CachedPolicy", "StsPolicies", "fetch_settings"]

_DOMAIN: Final = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_RETRY: Final = 300.0  # seconds before a failed refresh is tried again (at most)
_REFRESH_CAP: Final = 86400.0  # a policy is refreshed at least once a day
_PROCESS: Final = "smtp"
SHARED_CACHE: Final = "mta-sts"  # the name of the fleet's shared entries (fleet_shared_caches)

Fetcher = Callable[[Resolver, str, FetchSettings], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A policy as cached: the TXT `id` it came with, and when it was fetched (epoch)."""

    domain: str
    id: str
    mode: str
    mx: tuple[str, ...]
    max_age: int
    fetched: float

    @property
    def policy(self) -> StsPolicy:
        return StsPolicy(self.mode, self.mx, self.max_age)

    @property
    def expires(self) -> float:
        return self.fetched + self.max_age

    @property
    def refresh_at(self) -> float:
        """Half-way through its life (at most a day after the fetch)."""
        return self.fetched + min(self.max_age / 2, _REFRESH_CAP)


def fetch_settings(agent: AgentSettings) -> FetchSettings:
    p = agent.params
    return FetchSettings(
        port=p.mta_sts_https_port,
        timeout=p.mta_sts_timeout,
        cafile=p.tls_CAfile,
        capath=p.tls_CApath,
        families=parse_inet_protocols(agent.settings.params.inet_protocols),
    )


class StsPolicies:
    """Per agent: the policies known, the fetches in flight, the cache directory."""

    def __init__(
        self,
        directory: Path,
        *,
        log: LogSink,
        wallclock: Callable[[], float] = time.time,
        fetcher: Fetcher = fetch_policy,
        shared: SharedEntries | None = None,
    ) -> None:
        self.directory = directory
        self.shared = shared  # fleet mode: the policies other nodes fetched
        self.log = log
        self.wallclock = wallclock
        self.fetcher = fetcher
        self._known: dict[str, CachedPolicy | None] = {}
        self._inflight: dict[str, asyncio.Future[CachedPolicy | None]] = {}
        self._suspect: set[str] = set()
        self._retry: dict[str, float] = {}
        # What proactive refresh needs to ask again: the last resolver and fetch settings.
        self._context: tuple[Resolver, FetchSettings] | None = None
        self.fetches = 0  # statistics: policy fetches attempted
        self.adopted = 0  # statistics: policies taken from the fleet instead of a fetch
        self._stored = asyncio.Event()  # a policy was cached (wakes `run_refresh`)

    # --- one delivery -------------------------------------------------------------------
    async def policy_for(
        self, domain: str, resolver: Resolver, settings: FetchSettings
    ) -> CachedPolicy | None:
        """The policy to apply to mail for `domain` now (see the module docstring)."""
        domain = domain.lower().rstrip(".")
        if not _DOMAIN.fullmatch(domain):
            return None
        self._context = (resolver, settings)
        cached = self._valid(domain)
        found = await discover(resolver, domain)
        if found.record is None:
            if found.problem:
                self._warn(
                    domain, f"MTA-STS record of {domain} not usable: {found.problem}", cached
                )
            return cached
        if cached is not None and cached.id == found.record.id and domain not in self._suspect:
            return cached
        return await self._shared_fetch(domain, found.record.id, resolver, settings, cached)

    def suspect(self, domain: str) -> None:
        """Delivery failed under the cached policy of `domain`: fetch again next time."""
        self._suspect.add(domain.lower().rstrip("."))

    async def _shared_fetch(
        self,
        domain: str,
        record_id: str,
        resolver: Resolver,
        settings: FetchSettings,
        cached: CachedPolicy | None,
    ) -> CachedPolicy | None:
        pending = self._inflight.get(domain)
        if pending is None:
            task = asyncio.ensure_future(self._fetch(domain, record_id, resolver, settings, cached))
            self._inflight[domain] = task
            task.add_done_callback(lambda _t: self._inflight.pop(domain, None))
            pending = task
        return await asyncio.shield(pending)

    async def _fetch(
        self,
        domain: str,
        record_id: str,
        resolver: Resolver,
        settings: FetchSettings,
        cached: CachedPolicy | None,
    ) -> CachedPolicy | None:
        if self.shared is not None and domain not in self._suspect:
            fleet = await self._from_fleet(self.shared, domain, record_id, cached)
            if fleet is not None:
                self.adopted += 1
                self._retry.pop(domain, None)
                self._store(fleet)
                return fleet
        self.fetches += 1
        try:
            body = await self.fetcher(resolver, domain, settings)
            policy = parse_policy(body)
        except StsFetchError as exc:
            self._warn(domain, f"MTA-STS policy fetch for {domain} failed: {exc}", cached)
            return cached
        except StsPolicyError as exc:
            self._warn(domain, f"MTA-STS policy of {domain} is invalid: {exc}", cached)
            return cached
        entry = CachedPolicy(
            domain, record_id, policy.mode, policy.mx, policy.max_age, self.wallclock()
        )
        self._suspect.discard(domain)
        self._retry.pop(domain, None)
        self._store(entry)
        if self.shared is not None:
            left = entry.expires - self.wallclock()
            if left > 0:
                await self.shared.put(domain, _encode(entry).decode(), left)
        return entry

    async def _from_fleet(
        self, shared: SharedEntries, domain: str, record_id: str, cached: CachedPolicy | None
    ) -> CachedPolicy | None:
        """The fleet's entry of `domain` when it is the one to apply: the TXT record's id, not
        expired, and not what we hold already (the same id fetched no later). Nothing (a
        fetch follows) otherwise."""
        text = await shared.get(domain)
        if text is None:
            return None
        try:
            entry = _decode(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            self.log.warning(_PROCESS, f"MTA-STS entry of {domain} in the fleet ignored: {exc}")
            return None
        if entry.domain != domain or entry.id != record_id:
            return None
        if entry.expires <= self.wallclock():
            return None
        if cached is not None and cached.id == entry.id and entry.fetched <= cached.fetched:
            return None  # ours is that policy, fetched no earlier: a refresh fetches
        return entry

    def _warn(self, domain: str, text: str, cached: CachedPolicy | None) -> None:
        if cached is not None:
            text += f"; using the cached policy (mode {cached.mode}, id {cached.id})"
        else:
            text += "; no MTA-STS policy applied"
        self.log.warning(_PROCESS, text)

    # --- the cache ----------------------------------------------------------------------
    def _path(self, domain: str) -> Path:
        return self.directory / f"{domain}.json"

    def _valid(self, domain: str) -> CachedPolicy | None:
        if domain not in self._known:
            self._known[domain] = self._load(self._path(domain))
        entry = self._known[domain]
        if entry is not None and entry.expires <= self.wallclock():
            return None  # RFC 8461 5.1: an expired policy is not applied
        return entry

    def _load(self, path: Path) -> CachedPolicy | None:
        try:
            entry = _decode(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.warning(_PROCESS, f"MTA-STS cache file {path} ignored: {exc}")
            return None
        return entry if entry.domain == path.stem else None

    def _store(self, entry: CachedPolicy) -> None:
        self._known[entry.domain] = entry
        self._stored.set()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(self._path(entry.domain), _encode(entry) + b"\n")
        except OSError as exc:
            self.log.warning(
                _PROCESS, f"MTA-STS cache: cannot write {self._path(entry.domain)}: {exc}"
            )

    def load_all(self) -> int:
        """Read every cached policy (for proactive refresh after a restart)."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.directory):
                domain = name.removesuffix(".json")
                if (
                    name.endswith(".json")
                    and domain not in self._known
                    and _DOMAIN.fullmatch(domain)
                ):
                    self._known[domain] = self._load(self.directory / name)
        return sum(1 for e in self._known.values() if e is not None)

    def cached(self, domain: str) -> CachedPolicy | None:
        """The cached policy of `domain`, valid or not (for tests and tools)."""
        self._valid(domain)
        return self._known.get(domain)

    # --- proactive refresh --------------------------------------------------------------
    def next_refresh(self) -> float | None:
        """When the next cached policy is due for refresh (epoch), None with none cached."""
        times = [self._due(e) for e in self._known.values() if e is not None]
        return min(times) if times else None

    def _due(self, entry: CachedPolicy) -> float:
        return self._retry.get(entry.domain, entry.refresh_at)

    async def refresh_due(
        self, resolver: Resolver | None = None, settings: FetchSettings | None = None
    ) -> int:
        """Refresh every cached policy whose refresh time has come; how many were tried.
        A policy whose TXT record is gone is kept until it expires (RFC 8461 5.1)."""
        if resolver is None or settings is None:
            if self._context is None:
                return 0
            resolver, settings = self._context
        now = self.wallclock()
        due = [e for e in self._known.values() if e is not None and self._due(e) <= now]
        for entry in due:
            found = await discover(resolver, entry.domain)
            record_id = found.record.id if found.record is not None else entry.id
            fresh = await self._shared_fetch(entry.domain, record_id, resolver, settings, entry)
            if fresh is entry or fresh is None:
                # Failed: keep the entry and try again later, before it expires.
                left = max(entry.expires - self.wallclock(), 1.0)
                self._retry[entry.domain] = self.wallclock() + min(_RETRY, left / 4)
        return len(due)

    async def run_refresh(
        self, context: Callable[[], tuple[Resolver, FetchSettings] | None]
    ) -> None:
        """Refresh cached policies as they fall due, for ever (cancel the task to stop);
        `context()` gives the resolver and fetch settings (None: no DNS, nothing to do).
        A policy cached meanwhile wakes it up, to plan its own refresh."""
        self.load_all()
        while True:
            due = self.next_refresh()
            wait = 3600.0 if due is None else min(max(due - self.wallclock(), 0.2), 3600.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stored.wait(), wait)
            self._stored.clear()
            found = self._context or context()
            if found is not None:
                await self.refresh_due(*found)


def _encode(entry: CachedPolicy) -> bytes:
    """The JSON of a cached policy (its file, and its entry in the fleet)."""
    data = asdict(entry)
    data["mx"] = list(entry.mx)
    return json.dumps(data, sort_keys=True).encode()


def _decode(data: dict[str, Any]) -> CachedPolicy:
    """A cached policy from its JSON (KeyError, TypeError, ValueError when malformed)."""
    mx = data["mx"]
    if not isinstance(mx, list):
        raise TypeError("mx is not a list")
    return CachedPolicy(
        str(data["domain"]),
        str(data["id"]),
        str(data["mode"]),
        tuple(str(m) for m in mx),
        int(data["max_age"]),
        float(data["fetched"]),
    )
