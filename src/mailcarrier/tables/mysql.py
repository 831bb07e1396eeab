"""``mysql:/etc/postfix/x.cf``: lookups in MySQL or MariaDB, as mysql_table(5), with PyMySQL.

The configuration is dict_mysql.c's: ``hosts`` (``unix:/path/to/socket``, ``inet:host:port``,
``host:port``, ``host``; ``localhost`` means the server's UNIX-domain socket, as libmysqlclient
takes it: ``/run/mysqld/mysqld.sock``, or the ``socket`` of ``option_file``), ``user``,
``password``, ``dbname`` (required), ``charset`` (utf8mb4), ``option_file`` and
``option_group`` (client), ``tls_cert_file``, ``tls_key_file``, ``tls_CAfile``,
``tls_CApath``, ``tls_ciphers``, ``tls_verify_cert``, ``require_result_set`` (yes: a query
that returns no result set fails), ``query`` or ``table``/``select_field``/``where_field``/
``additional_conditions``, ``result_format``, ``domain``, ``expansion_limit``,
``retry_interval``, ``idle_interval``, and mailcarrier's ``timeout`` (seconds for each
connect and each query, 10).

PyMySQL is a blocking client: its calls run in worker threads of the table, with the socket
timeouts set to ``timeout``, so neither the table loop nor a caller's loop ever waits on the
server; netcore.HostPool pools the connections and fails over. The key is quoted as
mysql_real_escape_string() does (backslash escapes of NUL, LF, CR, \\, ', " and ^Z), or by
doubling ' when the server runs with NO_BACKSLASH_ESCAPES. Every value of every row and
column of the first result set is a result; NULL is skipped; a second result set with data
fails the lookup. PyMySQL is optional (the ``mysql`` extra).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from mailcarrier.tables import netloop
from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.netconfig import OpenContext, load_config, pool_options
from mailcarrier.tables.netcore import Host, HostError, HostPool, LoopPools
from mailcarrier.tables.network import NetworkTable
from mailcarrier.tables.pgsql import one_line
from mailcarrier.tables.sqlbase import (
    QUERY_NAMES,
    SERVER_NAMES,
    common_options,
    sql_query,
)

NAMES = (
    *SERVER_NAMES,
    "charset",
    "option_file",
    "option_group",
    "tls_cert_file",
    "tls_key_file",
    "tls_CAfile",
    "tls_CApath",
    "tls_ciphers",
    "tls_verify_cert",
    "require_result_set",
    *QUERY_NAMES,
)
DEFAULT_SOCKET: Final = "/run/mysqld/mysqld.sock"
_NO_BACKSLASH_ESCAPES: Final = 512  # SERVER_STATUS_NO_BACKSLASH_ESCAPES
_ESCAPES: Final = {
    0: "\\0",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord('"'): '\\"',
    0x1A: "\\Z",
}
T = TypeVar("T")


def mysql_quote(text: str, no_backslash_escapes: bool = False) -> str:
    """mysql_real_escape_string(): backslash escapes, or '' under NO_BACKSLASH_ESCAPES."""
    if no_backslash_escapes:
        return text.replace("'", "''")
    return text.translate(_ESCAPES)


def parse_host(text: str) -> Host:
    """host_init(): ``unix:path``, else ``[inet:]host[:port]``; ``localhost`` is the socket."""
    if text.startswith("unix:"):
        return Host(text, 0, ("unix", text[5:], 0))
    name = text.removeprefix("inet:")
    port = 0
    if ":" in name:
        name, _, service = name.rpartition(":")
        if not service.isdigit():
            raise TableError(f"unknown service: {service}/tcp", value=text)
        port = int(service)
    if name.lower() == "localhost":
        return Host(text, 0, ("unix", "", port))
    return Host(text, 1, ("inet", name, port))


class MysqlConnection:
    def __init__(self, conn: Any, host: Host, table: MysqlConnector) -> None:
        self.conn = conn
        self.host = host
        self.table = table

    def quote(self, text: str) -> str:
        status = int(getattr(self.conn, "server_status", 0) or 0)
        return mysql_quote(text, bool(status & _NO_BACKSLASH_ESCAPES))

    def _query(self, text: str) -> list[str | None]:
        import pymysql

        where = self.table.where
        try:
            with self.conn.cursor() as cursor:
                cursor.execute(text)
                first = cursor.fetchall() if cursor.description is not None else None
                while cursor.nextset():
                    if cursor.description is not None and first is not None:
                        raise HostError(
                            f"{where}: query failed: multiple result sets returning data "
                            "are not supported"
                        )
                    if first is None and cursor.description is not None:
                        first = cursor.fetchall()
        except pymysql.Error as exc:
            raise HostError(f"{where}: query failed: {_error_text(exc)}") from None
        if first is None:
            if self.table.require_result_set:
                raise HostError(
                    f"{where}: query failed: query returned no result set"
                    + "(require_result_set = yes)"
                )
            return []
        return [_text(value) for row in first for value in row]

    async def query(self, text: str) -> list[str | None]:
        return await self.table.in_thread(self._query, text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection: nothing to report
            await self.table.in_thread(self.conn.close)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def _error_text(exc: Exception) -> str:
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    if len(args) == 2 and isinstance(args[1], str):
        return one_line(args[1])
    return one_line(str(exc))


class MysqlConnector:
    def __init__(self, config: TableConfig, where: str) -> None:
        self.where = where
        self.user = config.string("user")
        self.password = config.string("password")
        self.dbname = config.string("dbname", min_len=1)
        self.charset = config.string("charset", "utf8mb4", min_len=1)
        self.option_file = config.optional("option_file")
        self.option_group = config.string("option_group", "client")
        self.require_result_set = config.boolean("require_result_set", True)
        self.ssl = _ssl_options(config)
        self.timeout = 10
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="mailcarrier-mysql"
        )

    async def in_thread(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, func, *args)

    def _connect(self, host: Host) -> Any:
        import pymysql
        from pymysql.constants import CLIENT

        kind, name, port = host.target
        params: dict[str, Any] = {
            "user": self.user or None,
            "password": self.password,
            "database": self.dbname,
            "charset": self.charset,
            "conv": {},  # every value as text, as libmysqlclient hands them to Postfix
            "client_flag": CLIENT.MULTI_RESULTS,
            "autocommit": True,
            "connect_timeout": self.timeout,
            "read_timeout": self.timeout,
            "write_timeout": self.timeout,
        }
        if self.option_file:
            params["read_default_file"] = self.option_file
            params["read_default_group"] = self.option_group or "client"
        if kind == "unix":
            params["unix_socket"] = name or (None if self.option_file else DEFAULT_SOCKET)
        else:
            params["host"] = name
            params["port"] = port or 3306
        if self.ssl is not None:
            params["ssl"] = self.ssl
        try:
            return pymysql.connect(**params)
        except pymysql.Error as exc:
            raise HostError(f"connect to mysql server {host.text}: {_error_text(exc)}") from None
        except OSError as exc:
            raise HostError(f"connect to mysql server {host.text}: {exc}") from None

    async def connect(self, host: Host, timeout: float) -> MysqlConnection:
        conn = await self.in_thread(self._connect, host)
        return MysqlConnection(conn, host, self)


def _ssl_options(config: TableConfig) -> ssl.SSLContext | None:
    names = ("tls_cert_file", "tls_key_file", "tls_CAfile", "tls_CApath", "tls_ciphers")
    cert, key, cafile, capath, ciphers = (config.optional(n) for n in names)
    verify = config.boolean("tls_verify_cert", False) if config.has("tls_verify_cert") else None
    if not any((cert, key, cafile, capath, ciphers)) and verify is None:
        return None
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.check_hostname = bool(verify)
    if not verify:
        context.verify_mode = ssl.CERT_REQUIRED if (cafile or capath) else ssl.CERT_NONE
    if cert:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise TableError(
                f"{config.name}: tls_cert_file {cert}: {exc}",
                parameter="tls_cert_file",
                filename=config.filename,
            ) from None
    if ciphers:
        context.set_ciphers(ciphers)
    return context


class MysqlTable(NetworkTable):
    kind = "mysql"

    def __init__(self, spec: str, config: TableConfig, context: OpenContext) -> None:
        options = common_options(config, sql_query(config), context, spec)
        super().__init__(
            spec,
            config,
            options.templates,
            domain=options.domain,
            expansion_limit=options.expansion_limit,
        )
        pool = pool_options(config)
        hosts = [parse_host(text) for text in pool.hosts]
        self.connector = MysqlConnector(config, spec)
        self.connector.timeout = pool.timeout
        _require_pymysql(spec)
        self.pools: LoopPools[MysqlConnection] = LoopPools(
            lambda: HostPool(
                hosts,
                self.connector,
                where=spec,
                retry_interval=pool.retry_interval,
                idle_interval=pool.idle_interval,
                timeout=pool.timeout,
            )
        )

    async def search(self, key: str) -> Sequence[str | None]:
        async def ask(conn: MysqlConnection) -> list[str | None]:
            query = self.templates.expand_query(key, conn.quote)
            assert query is not None  # checked by the caller
            return await conn.query(query)

        return await self.pools.current().run(ask)

    def collect_warnings(self) -> list[str]:
        return self.pools.take_warnings()

    @property
    def pool(self) -> HostPool[MysqlConnection]:
        """The pool synchronous lookups use (the table loop's)."""
        return self.pools.for_loop(netloop.current().loop)


def _require_pymysql(spec: str) -> None:
    try:
        import pymysql  # noqa: F401
    except ImportError:
        raise TableError(
            f"{spec}: MySQL support needs PyMySQL: pip install 'mailcarrier[mysql]'"
        ) from None


def open_mysql(name: str, context: OpenContext) -> MysqlTable:
    config = load_config("mysql", name, NAMES, context)
    return MysqlTable(f"mysql:{name}", config, context)
