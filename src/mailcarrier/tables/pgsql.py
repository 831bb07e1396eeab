"""``pgsql:/etc/postfix/x.cf``: lookups in PostgreSQL, as pgsql_table(5), with psycopg 3.

The configuration is dict_pgsql.c's: ``hosts`` (connection URIs ``postgresql://...``, which
ignore ``dbname``, ``user`` and ``password``; or ``unix:/socket/directory``,
``inet:host:port``, ``host:port``, ``host``), ``user``, ``password``, ``dbname`` (required
when a host is not a URI), ``encoding`` (UTF8), ``query`` or the obsolete ``select_function``
or ``table``/``select_field``/``where_field``/``additional_conditions``, ``result_format``,
``domain``, ``expansion_limit``, ``retry_interval``, ``idle_interval``, and mailcarrier's
``timeout`` (seconds for each connect and each query, 10).

Connections are psycopg's asyncio connections, pooled with failover by netcore.HostPool (one
pool per event loop that asks: the caller's own, or the table loop of netloop.py for
synchronous callers); queries are libpq's asynchronous calls (psycopg.pq) waited for on that
loop. The key is quoted per connection with libpq's
PQescapeStringConn (its server's encoding and standard_conforming_strings decide). Every
value of every row and column is a result, in its text form (PQgetvalue: NULL is an empty
result, skipped with Postfix's warning). psycopg is optional (the ``pgsql`` extra): without
it the table cannot be opened, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailcarrier.tables import netloop
from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.netconfig import OpenContext, load_config, pool_options
from mailcarrier.tables.netcore import Host, HostError, HostPool, LoopPools
from mailcarrier.tables.network import NetworkTable
from mailcarrier.tables.sqlbase import (
    QUERY_NAMES,
    SERVER_NAMES,
    common_options,
    sql_query,
)

if TYPE_CHECKING:
    import psycopg

NAMES = (*SERVER_NAMES, "encoding", "select_function", *QUERY_NAMES)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SPACES = re.compile(r"\s+")
_SEVERITY = re.compile(r"^[A-Z]+:\s+")  # "ERROR:  " before libpq's error text


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def parse_host(text: str) -> Host:
    """A ``hosts`` member as host_init() reads it: a URI, else unix:/dir or [inet:]host[:port]."""
    if _URI.match(text):
        return Host(text, 2, ("uri", text, ""))
    name = text.removeprefix("unix:").removeprefix("inet:")
    if name and not name.startswith("/"):
        host, _, port = name.rpartition(":") if ":" in name else (name, "", "")
        return Host(text, 1, ("inet", host, port))
    return Host(text, 0, ("unix", name, ""))


class PgConnection:
    """One psycopg connection, asked at libpq's level (psycopg.pq: PQsendQuery, then
    PQconsumeInput/PQgetResult as the socket turns readable on the caller's loop): a lookup
    needs neither cursors nor type adaptation, and this is half the work per query."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], host: Host) -> None:
        from psycopg import pq

        self.conn = conn
        self.host = host
        self.encoding = conn.info.encoding
        self._escaping = pq.Escaping(conn.pgconn)
        self._fatal = (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.BAD_RESPONSE)

    def quote(self, text: str) -> str:
        data = text.encode(self.encoding, "surrogateescape")
        return self._escaping.escape_string(data).decode(self.encoding, "surrogateescape")

    async def query(self, text: str) -> list[str | None]:
        """Every value of the last result, row by row, as text (PQexec + PQgetvalue)."""
        import psycopg

        pgconn = self.conn.pgconn
        try:
            pgconn.send_query(text.encode(self.encoding, "surrogateescape"))
            while pgconn.flush():
                await self._ready(pgconn.socket, write=True)
            result = None
            while True:
                while pgconn.is_busy():
                    await self._ready(pgconn.socket)
                    pgconn.consume_input()
                found = pgconn.get_result()
                if found is None:
                    break
                result = found  # PQexec() returns the last statement's result
        except psycopg.Error as exc:
            raise self._failed(str(exc)) from None
        if result is None:
            return []
        if result.status in self._fatal:
            message = (result.error_message or b"").decode(self.encoding, "replace")
            raise self._failed(_SEVERITY.sub("", message, count=1))
        values: list[str | None] = []
        for row in range(result.ntuples):
            for col in range(result.nfields):
                raw = result.get_value(row, col)
                values.append("" if raw is None else bytes(raw).decode(self.encoding, "replace"))
        return values

    def _failed(self, message: str) -> HostError:
        return HostError(
            f"pgsql query failed: fatal error from host {self.host.text}: {one_line(message)}"
        )

    @staticmethod
    async def _ready(fd: int, *, write: bool = False) -> None:
        """Wait until `fd` can be read (or written) on the running loop."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if write:
            loop.add_writer(fd, wake)
        else:
            loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            if write:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection: nothing to report
            await self.conn.close()


class PgConnector:
    def __init__(self, config: TableConfig, encoding: str) -> None:
        self.user = config.string("user")
        self.password = config.string("password")
        self.dbname = config.string("dbname")
        self.encoding = encoding

    async def connect(self, host: Host, timeout: float) -> PgConnection:
        import psycopg

        kind, name, port = host.target
        params: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": None,
            "client_encoding": self.encoding,
            "connect_timeout": max(2, int(timeout)),
        }
        conninfo = ""
        if kind == "uri":
            conninfo = name
        else:
            params["host"] = name
            if port:
                params["port"] = port
            for key, value in (("dbname", self.dbname), ("user", self.user)):
                if value:
                    params[key] = value
            if self.password:
                params["password"] = self.password
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, **params)
        except psycopg.Error as exc:
            raise HostError(f"connect to pgsql server {host.text}: {one_line(str(exc))}") from None
        return PgConnection(conn, host)


class PgsqlTable(NetworkTable):
    kind = "pgsql"

    def __init__(self, spec: str, config: TableConfig, context: OpenContext) -> None:
        select_function = config.optional("select_function")
        query = config.optional("query")
        if query is None and select_function is not None:
            query = f"SELECT {select_function}('%s')"
        options = common_options(config, query or sql_query(config), context, spec)
        super().__init__(
            spec,
            config,
            options.templates,
            domain=options.domain,
            expansion_limit=options.expansion_limit,
        )
        encoding = config.string("encoding", "UTF8", min_len=1)
        pool = pool_options(config)
        hosts = [parse_host(text) for text in pool.hosts]
        plain = [h.text for h in hosts if h.rank != 2]
        connector = PgConnector(config, encoding)
        if plain and not connector.dbname:
            raise TableError(
                f"{spec} host target '{plain[-1]}' requires dbname setting",
                parameter="dbname",
                filename=config.filename,
            )
        _require_psycopg(spec)
        self.pools: LoopPools[PgConnection] = LoopPools(
            lambda: HostPool(
                hosts,
                connector,
                where=spec,
                retry_interval=pool.retry_interval,
                idle_interval=pool.idle_interval,
                timeout=pool.timeout,
                in_task=True,  # PgConnection.query: libpq's calls awaited on this loop
            )
        )

    async def search(self, key: str) -> Sequence[str | None]:
        async def ask(conn: PgConnection) -> list[str | None]:
            query = self.templates.expand_query(key, conn.quote)
            assert query is not None  # checked by the caller
            return await conn.query(query)

        return await self.pools.current().run(ask)

    def collect_warnings(self) -> list[str]:
        return self.pools.take_warnings()

    @property
    def pool(self) -> HostPool[PgConnection]:
        """The pool synchronous lookups use (the table loop's)."""
        return self.pools.for_loop(netloop.current().loop)


def _require_psycopg(spec: str) -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise TableError(
            f"{spec}: PostgreSQL support needs psycopg: pip install 'mailcarrier[pgsql]'"
        ) from None


def open_pgsql(name: str, context: OpenContext) -> PgsqlTable:
    config = load_config("pgsql", name, NAMES, context)
    return PgsqlTable(f"pgsql:{name}", config, context)
