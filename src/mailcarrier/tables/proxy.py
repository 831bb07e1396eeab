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

`ProxyUpdatableTable` is the same client side for a table changed in place (the SASL
authentication failure cache): open, lookup, update and delete requests go to the
``private/proxywrite`` service, which refuses tables not listed in proxy_write_maps.

The wire protocol is the front end's (postfix/proxymap.py); this module only knows the
statuses, so tables/ keeps importing nothing from the layers above it.
"""

from __future__ import annotations

from typing import Final, Protocol

from mailcarrier.tables.base import Table, TableError, TableLookupError
from mailcarrier.tables.netloop import run_async, run_sync
from mailcarrier.tables.updatable import UpdatableTable

__all__ = [
    "PROXY_STAT_BAD",
    "PROXY_STAT_CONFIG",
    "PROXY_STAT_DENY",
    "PROXY_STAT_NOKEY",
    "PROXY_STAT_OK",
    "PROXY_STAT_RETRY",
    "ProxyService",
    "ProxyTable",
    "ProxyUpdatableTable",
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
# The flags smtp(8) opens its SASL authentication failure cache with: DICT_FLAG_DUP_REPLACE |
# DICT_FLAG_SYNC_UPDATE | DICT_FLAG_UTF8_REQUEST (smtp_sasl_auth_cache.c).
UPDATE_FLAGS: Final = (1 << 7) | (1 << 8) | (1 << 19)
# DICT_FLAG_RQST_MASK: the flags of a request that come from the server's answer to "open"
# (fold, lock, duplicates, sync, paranoid, UTF-8), added to the instance flags (dict_proxy.c).
_RQST_MASK: Final = (
    (1 << 14) | (1 << 15) | (1 << 6) | (1 << 7) | (1 << 0) | (1 << 1) | (1 << 8)
    | (1 << 11) | (1 << 13) | (1 << 19)
)  # fmt: skip


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

    async def update(self, table: str, flags: int, key: str, value: str) -> int:
        """The status of an "update" request (proxywrite only)."""

    async def delete(self, table: str, flags: int, key: str) -> int:
        """The status of a "delete" request (proxywrite only)."""

    def for_writing(self) -> ProxyService:
        """The proxywrite(8) service of the same Postfix instance."""


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


class ProxyUpdatableTable(UpdatableTable):
    """``proxy:type:name`` changed through proxywrite(8), as dict_proxy.c's update and
    delete do; the inner table's null bytes and locking are proxywrite's business."""

    kind = "proxy"

    def __init__(self, inner: str, service: ProxyService) -> None:
        super().__init__(inner)  # Postfix names the table without "proxy:" in messages
        self.inner = inner
        self.service = service
        self.flags = UPDATE_FLAGS
        self._opened = False

    def _refusal(self, status: int, what: str, key: str | None = None) -> TableError:
        name = self.service.service
        if status == PROXY_STAT_DENY:
            refused = "service" if what == "open" else "update access"
            return TableError(
                f'{name} {refused} is not configured for table "{self.inner}": list '
                f"proxy:{self.inner} in proxy_write_maps"
            )
        where = f'table "{self.inner}"' + (f' key "{key}"' if key is not None else "")
        if status == PROXY_STAT_BAD:
            return TableError(f"{name} {what} failed for {where}: invalid request")
        if status == PROXY_STAT_RETRY:
            return TableLookupError(f"{name} {what} failed for {where}: try again")
        if status == PROXY_STAT_CONFIG:
            return TableError(f"{name} {what} failed for {where}: table error")
        return TableLookupError(
            f"{name} {what} failed for {where}: unexpected reply status {status}"
        )

    async def _request_flags(self) -> int:
        if not self._opened:
            status, server_flags = await self.service.open(self.inner, UPDATE_FLAGS)
            if status != PROXY_STAT_OK:
                raise self._refusal(status, "open")
            self.flags = UPDATE_FLAGS | (server_flags & _RQST_MASK)
            self._opened = True
        return self.flags

    async def _lookup(self, key: str) -> str | None:
        flags = await self._request_flags()
        status, _, value = await self.service.lookup(self.inner, UPDATE_FLAGS, flags, key)
        if status == PROXY_STAT_OK:
            return value
        if status == PROXY_STAT_NOKEY:
            return None
        raise self._refusal(status, "lookup")

    async def _update(self, key: str, value: str) -> None:
        status = await self.service.update(self.inner, await self._request_flags(), key, value)
        if status not in (PROXY_STAT_OK, PROXY_STAT_NOKEY):
            raise self._refusal(status, "update", key)

    async def _delete(self, key: str) -> bool:
        status = await self.service.delete(self.inner, await self._request_flags(), key)
        if status in (PROXY_STAT_OK, PROXY_STAT_NOKEY):
            return status == PROXY_STAT_OK
        raise self._refusal(status, "delete", key)

    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    def update(self, key: str, value: str) -> None:
        run_sync(self._update(key, value))

    def delete(self, key: str) -> bool:
        return run_sync(self._delete(key))

    async def lookup_async(self, key: str) -> str | None:
        return await run_async(self._lookup(key))

    async def update_async(self, key: str, value: str) -> None:
        await run_async(self._update(key, value))

    async def delete_async(self, key: str) -> bool:
        return await run_async(self._delete(key))
