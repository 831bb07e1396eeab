"""``proxy:type:name``: a table asked through Postfix's proxymap(8), or directly.

Operators write ``proxy:pgsql:/etc/postfix/relay.cf`` so that Postfix's many processes share
proxymap's few database connections. mailcarrier accepts the same text. Standalone, there is
no proxymap: the registry opens the inner table itself (``pgsql:/etc/postfix/relay.cf``), with
its own pooled connections. Inside Postfix, the front end (postfix/) hands the registry a
`ProxyService`, and `ProxyTable` asks proxymap (dict_proxy.c's client side): the lookup goes
to the ``private/proxymap`` socket with the table name, Postfix's flags and the key, and the
answer's status means:

    OK      the value            NOKEY  not found
    RETRY   `TableLookupError`   (the table's server is down: the caller defers)
    DENY    `TableError`: proxymap refuses tables not listed in proxy_read_maps
    BAD, CONFIG, or no answer    `TableError` / `TableLookupError`

The wire protocol is the front end's (postfix/proxymap.py); this module only knows the
statuses, so tables/ keeps importing nothing from the layers above it.
"""

from __future__ import annotations

from typing import Final, Protocol

from mailcarrier.tables.base import Table, TableError, TableLookupError
from mailcarrier.tables.netloop import run_async, run_sync

__all__ = [
    "PROXY_STAT_BAD",
    "PROXY_STAT_CONFIG",
    "PROXY_STAT_DENY",
    "PROXY_STAT_NOKEY",
    "PROXY_STAT_OK",
    "PROXY_STAT_RETRY",
    "ProxyService",
    "ProxyTable",
]

PROXY_STAT_OK: Final = 0
PROXY_STAT_NOKEY: Final = 1
PROXY_STAT_RETRY: Final = 2
PROXY_STAT_BAD: Final = 3
PROXY_STAT_DENY: Final = 4
PROXY_STAT_CONFIG: Final = 5

# The flags smtp(8) opens its maps with: DICT_FLAG_LOCK | DICT_FLAG_FOLD_FIX |
# DICT_FLAG_UTF8_REQUEST (the proxymap server folds the key and checks UTF-8 with them).
DICT_FLAGS: Final = (1 << 6) | (1 << 14) | (1 << 19)


class ProxyService(Protocol):
    """A proxymap(8) client; its coroutines run on the table loop (netloop.py)."""

    service: str  # "proxymap", for messages

    async def open(self, table: str, instance_flags: int) -> tuple[int, int]:
        """(status, server flags) of an "open" request; `TableLookupError` when the
        service cannot be reached."""

    async def lookup(
        self, table: str, instance_flags: int, flags: int, key: str
    ) -> tuple[int, int, str]:
        """(status, flags, value) of a "lookup" request; `TableLookupError` when the
        service cannot be reached."""


class ProxyTable(Table):
    """``proxy:type:name`` asked through proxymap."""

    kind = "proxy"
    network = True

    def __init__(self, spec: str, inner: str, service: ProxyService) -> None:
        super().__init__(spec)
        self.inner = inner
        self.service = service
        self.flags = DICT_FLAGS
        self._opened = False

    async def _open(self) -> None:
        status, server_flags = await self.service.open(self.inner, DICT_FLAGS)
        if status == PROXY_STAT_OK:
            self.flags = server_flags
            # Postfix's flags of the table behind proxymap: a pattern table sees full keys.
            self.fixed = bool(server_flags & (1 << 4)) or not server_flags & (1 << 5)
            self.pattern = bool(server_flags & (1 << 5))
            self._opened = True
            return
        raise self._refusal(status, "open")

    def _refusal(self, status: int, what: str) -> TableError:
        name = self.service.service
        if status == PROXY_STAT_DENY:
            return TableError(
                f'{name} service is not configured for table "{self.inner}": list '
                f"proxy:{self.inner} in proxy_read_maps"
            )
        if status == PROXY_STAT_BAD:
            return TableError(f'{name} {what} failed for table "{self.inner}": invalid request')
        if status == PROXY_STAT_RETRY:
            return TableLookupError(f'{name} {what} failed for table "{self.inner}": try again')
        if status == PROXY_STAT_CONFIG:
            return TableError(f'{name} {what} failed for table "{self.inner}": table error')
        return TableLookupError(
            f'{name} {what} failed for table "{self.inner}": unexpected reply status {status}'
        )

    async def _lookup(self, key: str) -> str | None:
        if not self._opened:
            await self._open()
        status, _, value = await self.service.lookup(self.inner, DICT_FLAGS, self.flags, key)
        if status == PROXY_STAT_OK:
            return value
        if status == PROXY_STAT_NOKEY:
            return None
        raise self._refusal(status, "lookup")

    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    async def lookup_async(self, key: str) -> str | None:
        return await run_async(self._lookup(key))
