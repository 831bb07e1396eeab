"""`NetworkTable`: what every table kind that asks a server shares, as Postfix's dict_pgsql,
dict_mysql, dict_ldap and dict_memcache lookups share it.

One lookup: fold the key to lower case (Postfix's maps open these tables with
DICT_FLAG_FOLD_FIX); skip a key that is not UTF-8 (it could not be sent); apply the
``domain`` filter (dbcommon.DomainFilter); let the query template refuse keys that cannot fill
it (no ``@`` for %d, an empty local part for %u, an empty key with Postfix's warning); ask
the server (`search`, the kind's own part, on the loop that asks, returning the raw
values); put each value through ``result_format`` and ``expansion_limit``. A key asked
again on the same loop while it is being asked waits for that answer (`_lookup`): a burst
of deliveries to one destination costs one query, not one per delivery.

`lookup_async` runs on the caller's event loop with connections of that loop (netcore.LoopPools:
the driver's I/O is asynchronous, so the loop never blocks, and no other thread takes turns
with it at the interpreter lock); `lookup` runs the same on the table loop (netloop.py) and
blocks the calling thread (command line, sync callers).
Server trouble is `TableLookupError` (the caller defers); warnings (a server that failed, an
empty result) are collected in `lookup_warnings`. Neighbours: netcore.py (hosts and
connections), cfgfile.py, dbcommon.py; sqlbase.py adds the SQL parameters.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Callable, Sequence
from pathlib import Path

from mailcarrier.tables.base import Table, TableLookupError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import DomainFilter, ExpansionLimit, Templates
from mailcarrier.tables.netloop import run_sync

__all__ = ["NetworkTable"]


class _Kind(enum.Enum):
    FOUND = "found"  # a value, or None: not found
    FAILED = "failed"  # a temporary failure, with its text
    AGAIN = "again"  # the lookup was cancelled: whoever waited asks again


_Answer = tuple[_Kind, str | None, str]


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False  # surrogate escapes: bytes that were not UTF-8
    return True


class NetworkTable(Table):
    """Base of the tables that ask a server (or a database file) per lookup."""

    network = True

    def __init__(
        self,
        spec: str,
        config: TableConfig,
        templates: Templates,
        *,
        domain: DomainFilter | None = None,
        expansion_limit: int = 0,
    ) -> None:
        super().__init__(spec)
        self.config = config
        self.templates = templates
        self.domain = domain
        self.limit = ExpansionLimit(expansion_limit, config.name)
        self.warnings.extend(config.warnings)
        # Lookups on their way, by loop and folded key: who else waits for the answer.
        self._asking: dict[tuple[asyncio.AbstractEventLoop, str], list[asyncio.Future[_Answer]]]
        self._asking = {}

    @abc.abstractmethod
    async def search(self, key: str) -> Sequence[str | None]:
        """Ask the server about the (folded, checked) key; the raw values found. Runs on
        the loop that asks; `TableLookupError` when no server can answer."""

    def collect_warnings(self) -> list[str]:
        """Warnings the kind's machinery gathered (e.g. its host pool's); drained."""
        return []

    async def _lookup(self, key: str) -> str | None:
        """One lookup, or the answer of the same lookup already on its way: a key asked
        while the same key is being asked on the same loop waits for that answer (found,
        not found, or the temporary failure) instead of sending the query again. The
        answer is no older than the question it joins, whose query the server reads after
        it was sent; a burst of deliveries to one destination then costs one query."""
        folded = key.lower()
        loop = asyncio.get_running_loop()
        asking = (loop, folded)
        joined = self._asking.get(asking)
        if joined is not None:
            waiter: asyncio.Future[_Answer] = loop.create_future()
            joined.append(waiter)
            kind, value, problem = await waiter
            if kind is _Kind.FOUND:
                return value
            if kind is _Kind.FAILED:
                raise TableLookupError(problem)
            # The lookup it joined was cancelled: ask again.
            return await self._lookup(key)
        waiters: list[asyncio.Future[_Answer]] = []
        self._asking[asking] = waiters
        answer: _Answer = (_Kind.AGAIN, None, "")
        try:
            value = await self._lookup_folded(folded)
            answer = (_Kind.FOUND, value, "")
            return value
        except TableLookupError as exc:
            answer = (_Kind.FAILED, None, str(exc))
            raise
        finally:
            del self._asking[asking]
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(answer)
            self.lookup_warnings.extend(self.collect_warnings())

    def _fills_template(self, key: str) -> bool:
        if self.templates.fills_query(key):
            return True
        warning = self.templates.query_warning(key)
        if warning:
            self.lookup_warnings.append(warning)
        return False

    async def _lookup_folded(self, key: str) -> str | None:
        if not key.isascii() and not _is_utf8(key):
            return None
        if self.domain is not None and not await self.domain.matches_async(key):
            return None
        if not self._fills_template(key):
            return None
        values = await self.search(key)
        return self.limit.join(self.templates, values, key, self.lookup_warnings.append)

    def lookup_blocking(
        self, key: str, search: Callable[[str], Sequence[str | None]]
    ) -> str | None:
        """The whole lookup in the calling thread with a blocking `search` (a kind over a
        local database file): no table loop involved."""
        folded = key.lower()
        try:
            if not folded.isascii() and not _is_utf8(folded):
                return None
            if self.domain is not None and not self.domain.matches(folded):
                return None
            if not self._fills_template(folded):
                return None
            values = search(folded)
            return self.limit.join(self.templates, values, folded, self.lookup_warnings.append)
        finally:
            self.lookup_warnings.extend(self.collect_warnings())

    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    # On the caller's own loop (the kind keeps a pool per loop): no thread hop, and no
    # coroutine around the lookup's own.
    lookup_async = _lookup

    def files(self) -> tuple[Path, ...]:
        return (Path(self.config.filename),) if self.config.filename else ()
