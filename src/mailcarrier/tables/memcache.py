"""``memcache:/etc/postfix/x.cf``: lookups in a memcached server, as Postfix's dict_memcache.c
(memcache_table(5)).

The configuration file (or main.cf's ``name_*`` parameters) has ``memcache`` (the one server:
``inet:host:port`` or ``unix:/path``; inet:localhost:11211), ``key_format`` (%s, with the
db_common %-expansions, unquoted), ``key_digest`` (a hashlib name: the key is sent as the
lowercase hex digest of the expanded key), ``domain``, ``backup`` (a ``type:table`` asked
when memcache has no answer), ``flags`` and ``ttl`` (of what is stored: 0, 3600),
``data_size_limit`` (10240) and ``line_size_limit`` (1024) on replies, ``max_try`` (2),
``retry_pause`` (1) and ``timeout`` (2 seconds per connect, send and receive).

A lookup skips, silently, an empty key, a key outside ``domain``, a key the format cannot
use (no ``@`` for %d, ...) and an expanded key with white space or control characters; it
folds the key to lower case (a fixed-string table). It sends ``get KEY``: ``END`` is "not
found", ``VALUE KEY FLAGS LENGTH`` and the data is the answer. A command that fails (the
connection lost, a malformed or oversized reply) is tried again after ``retry_pause``
seconds, ``max_try`` times in all, with a warning from the second failure on; a server that
accepts no connection is not tried again. Then the lookup fails (temporary failure).

With a ``backup`` table, memcache's miss or failure sends the original key there; what the
backup finds is the answer (stored back with ``set KEY FLAGS TTL LENGTH``, unless longer
than data_size_limit), and what it does not find is "not found", as Postfix's lookup does.
Updates and deletes, which Postfix's postscreen and verify caches make, are not offered:
mailcarrier's tables are read only.

The protocol runs on the table loop over endpoint.py's streams, written here rather than
taken from pymemcache or aiomcache: Postfix's behaviour is in the details (its line and data
limits, which failures are retried after a pause and which are not, which are warned about,
the C-string value), and two text commands are less code than adapting a client to them;
no extra dependency either.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Final

from mailcarrier.printable import printable
from mailcarrier.tables.base import Table, TableError, TableLookupError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import DomainFilter, Templates
from mailcarrier.tables.endpoint import EndpointError, Stream, StreamPool, parse_endpoint
from mailcarrier.tables.netconfig import OpenContext, domain_filter, load_config
from mailcarrier.tables.netloop import run_async, run_sync

__all__ = ["NAMES", "MemcacheTable", "open_memcache"]

NAMES = (
    "memcache",
    "backup",
    "flags",
    "ttl",
    "key_format",
    "key_digest",
    "domain",
    "data_size_limit",
    "line_size_limit",
    "max_try",
    "retry_pause",
    "timeout",
)
DEFAULT_MEMCACHE: Final = "inet:localhost:11211"
_VALUE: Final = re.compile(rb"VALUE\s+\S+\s+\S+\s+([+-]?\d+)")
_BAD_KEY_BYTES: Final = frozenset(range(0x21)) | {0x7F}  # ISSPACE or ISCNTRL


class _Retry(Exception):
    """One failed try of a command; the text is the warning (after the first try)."""


class MemcacheTable(Table):
    kind = "memcache"
    network = True

    def __init__(self, spec: str, config: TableConfig, context: OpenContext) -> None:
        super().__init__(spec)
        self.config = config
        self.name = config.name
        self.warnings.extend(config.warnings)
        self.key_format = config.string("key_format", "%s")
        self.templates = _templates(config, self.key_format, spec)
        self.digest = _digest(config)
        self.domain: DomainFilter | None = domain_filter(config, context)
        timeout = config.integer("timeout", 2)
        self.ttl = config.integer("ttl", 3600)
        self.flags = config.integer("flags", 0)
        self.retry_pause = config.integer("retry_pause", 1, 1)
        self.max_try = config.integer("max_try", 2, 1)
        self.max_line = config.integer("line_size_limit", 1024, 1)
        self.max_data = config.integer("data_size_limit", 10240, 1)
        server = config.string("memcache", DEFAULT_MEMCACHE)
        try:
            endpoint = parse_endpoint(server, where=config.name)
        except TableError as exc:
            raise _bad(config, "memcache", str(exc)) from None
        self.pool = StreamPool(endpoint, timeout=timeout or None, line_limit=self.max_line)
        backup = config.optional("backup")
        self.backup: Table | None = context.opener(backup) if backup else None

    # --- the lookup -------------------------------------------------------------------
    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    async def lookup_async(self, key: str) -> str | None:
        return await run_async(self._lookup(key))

    async def _lookup(self, key: str) -> str | None:
        mc_key = await self._memcache_key(key)
        if mc_key is None:
            return None
        value, failed = await self._get(mc_key)
        if self.backup is not None and value is None:
            value = await self._ask_backup(key)
            if value is not None:
                await self._set(mc_key, value)
            return value
        if failed:
            raise TableLookupError(f"{self.spec}: lookup error: memcache server failed")
        return value

    async def _ask_backup(self, key: str) -> str | None:
        backup = self.backup
        assert backup is not None
        try:
            return await backup.lookup_async(key) if backup.network else backup.lookup(key)
        finally:
            if backup.network:
                self.lookup_warnings.extend(backup.take_warnings())

    async def _memcache_key(self, key: str) -> bytes | None:
        """dict_memcache_valid_key(): the key to send, or None to skip the lookup."""
        if not key:
            return None
        if self.domain is not None and not await self.domain.matches_async(key):
            return None
        text: str | None = key.lower()
        if self.key_format != "%s":
            text = self.templates.expand_query(key.lower())
        if not text:
            return None
        data = text.encode("utf-8", "surrogateescape")
        if self.digest:
            data = hashlib.new(self.digest, data).hexdigest().encode("ascii")
        if any(byte in _BAD_KEY_BYTES for byte in data):
            return None
        return data

    # --- the protocol -----------------------------------------------------------------
    async def _line(self, stream: Stream) -> bytes:
        """memcache_get(): one reply line without CRLF or LF, at most line_size_limit - 1
        bytes; EndpointError ``size`` when longer."""
        line = await stream.read_line()
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if len(body) >= self.max_line:
            raise EndpointError("size", "line too long")
        return body

    def _io_error(self, exc: EndpointError) -> str:
        where = f"database memcache:{self.name}: I/O error"
        if exc.kind == "timeout" or exc.reason not in ("unexpected EOF", "line too long"):
            return f"{where}: {exc.reason}"
        return where  # errno 0: Postfix prints no %m

    async def _get(self, key: bytes) -> tuple[str | None, bool]:
        """(value, False), (None, False) for not found, (None, True) when it failed."""
        for count in range(self.max_try):
            if count:
                await asyncio.sleep(self.retry_pause)
            try:
                stream = await self.pool.acquire()
            except EndpointError as exc:
                self.lookup_warnings.append(str(exc))
                break  # no connection: not tried again
            try:
                value = await self._get_once(stream, key)
            except _Retry as exc:
                self.pool.discard(stream)
                if count:
                    self.lookup_warnings.append(str(exc))
                continue
            except EndpointError as exc:
                self.pool.discard(stream)
                if count:
                    self.lookup_warnings.append(self._io_error(exc))
                continue
            except BaseException:
                self.pool.discard(stream)
                raise
            return value, False
        return None, True

    async def _get_once(self, stream: Stream, key: bytes) -> str | None:
        await stream.send(b"get " + key + b"\r\n")
        line = await self._line(stream)
        if line == b"END":
            self.pool.release(stream)
            return None
        match = _VALUE.match(line)
        todo = int(match.group(1)) if match else -1
        if todo < 0 or todo > self.max_data:
            shown = printable(line[:30].decode("utf-8", "surrogateescape"))
            raise _Retry(f"{self.name}: unexpected memcache server reply: {shown}")
        try:
            data = await stream.read_exactly(todo + 2)
        except EndpointError:
            data = b""
        if len(data) != todo + 2 or not data.endswith(b"\r\n"):
            raise _Retry(f"{self.name}: EOF receiving memcache server reply")
        try:
            end = await self._line(stream)
        except EndpointError:
            end = b""
        if end == b"END":
            self.pool.release(stream)
        else:
            self.pool.discard(stream)  # auto_clnt_recover(); the value stands
        return data[:todo].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    async def _set(self, key: bytes, value: str) -> None:
        """dict_memcache_set(): store what the backup found (failures are only warned)."""
        data = value.encode("utf-8", "surrogateescape")
        if len(data) > self.max_data:
            self.lookup_warnings.append(
                f"database memcache:{self.name}: data for key {key.decode(errors='replace')} "
                f"is too long (data_size_limit={self.max_data}) -- not stored"
            )
            return
        command = b"set %s %d %d %d\r\n%s\r\n" % (key, self.flags, self.ttl, len(data), data)
        for count in range(self.max_try):
            if count:
                await asyncio.sleep(self.retry_pause)
            try:
                stream = await self.pool.acquire()
            except EndpointError as exc:
                self.lookup_warnings.append(str(exc))
                return
            try:
                await stream.send(command)
                line = await self._line(stream)
            except EndpointError as exc:
                self.pool.discard(stream)
                if count:
                    self.lookup_warnings.append(self._io_error(exc))
                continue
            except BaseException:
                self.pool.discard(stream)
                raise
            if line == b"STORED":
                self.pool.release(stream)
                return
            self.pool.discard(stream)
            if count:
                shown = printable(line[:100].decode("utf-8", "surrogateescape"))
                self.lookup_warnings.append(
                    f"database memcache:{self.name}: update failed: {shown}"
                )

    def files(self) -> tuple[Path, ...]:
        own = (Path(self.config.filename),) if self.config.filename else ()
        return own + (self.backup.files() if self.backup is not None else ())


def _bad(config: TableConfig, name: str, message: str) -> TableError:
    setting = config.settings.get(name)
    return TableError(
        message.removeprefix(f"{config.name}: ") if config.filename else message,
        parameter=name if config.filename else f"{config.name}_{name}",
        filename=config.filename,
        lineno=setting.lineno if setting else 0,
    )


def _templates(config: TableConfig, key_format: str, spec: str) -> Templates:
    try:
        return Templates(key_format, "%s", where=config.name, table=spec)
    except TableError as exc:
        raise _bad(config, "key_format", str(exc)) from None


def _digest(config: TableConfig) -> str:
    name = config.string("key_digest").strip().lower()
    if not name:
        return ""
    try:
        hashlib.new(name)
    except (ValueError, TypeError):
        raise _bad(
            config, "key_digest", f"open {config.name}: key digest {name} is not available"
        ) from None
    return name


def open_memcache(name: str, context: OpenContext) -> MemcacheTable:
    config = load_config("memcache", name, NAMES, context)
    return MemcacheTable(f"memcache:{name}", config, context)
