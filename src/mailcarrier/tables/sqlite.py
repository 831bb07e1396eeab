"""``sqlite:/etc/postfix/x.cf``: lookups in an SQLite database file, as sqlite_table(5).

The configuration (``dbpath``, ``query`` or the obsolete ``table``/``select_field``/
``where_field``/``additional_conditions``, ``result_format``, ``domain``,
``expansion_limit``) is read as Postfix's dict_sqlite.c reads it; the database is opened
read-only. A ``%s`` (or any other expansion) outside single quotes in the query gets
Postfix's warning. Keys are quoted as sqlite3_mprintf's %q does (every ' doubled); only the
first column of each row is a result, and NULL is skipped.

The database is local: `lookup` asks it in the calling thread, and `lookup_async` in a worker
thread, so an event loop never waits on the disk (or on another writer's lock, waited for
up to ``timeout`` seconds, 10 by default). An SQL error (a bad query, a locked or damaged
database) fails the lookup temporarily (`TableLookupError`), as Postfix's "SQL step failed".
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import sql_quote_standard
from mailcarrier.tables.netconfig import OpenContext, load_config
from mailcarrier.tables.network import NetworkTable
from mailcarrier.tables.sqlbase import (
    DEFAULT_SQL_TIMEOUT,
    QUERY_NAMES,
    common_options,
    sql_query,
)

NAMES = ("dbpath", "timeout", *QUERY_NAMES)


def unquoted_expansions(query: str) -> list[str]:
    """The %x expansions of `query` outside single quotes (flag_non_recommended_query)."""
    found: list[str] = []
    in_quote = ""
    index = 0
    while index < len(query):
        char = query[index]
        if not in_quote:
            if char in "'\"":
                in_quote = char
        elif char == in_quote:
            in_quote = ""
        if in_quote != "'" and char == "%":
            following = query[index + 1 : index + 2]
            if following == "%":
                index += 1
            elif following.isalnum():
                found.append(query[index : index + 2])
                index += 1
        index += 1
    return found


class SqliteTable(NetworkTable):
    kind = "sqlite"

    def __init__(self, spec: str, config: TableConfig, context: OpenContext) -> None:
        query = sql_query(config)
        options = common_options(config, query, context, spec)
        super().__init__(
            spec,
            config,
            options.templates,
            domain=options.domain,
            expansion_limit=options.expansion_limit,
        )
        for item in unquoted_expansions(query):
            self.warn(
                f"sqlite:{config.name}: query >{query}< contains >{item}< without the "
                "recommended '' quotes"
            )
        self.dbpath = config.string("dbpath", min_len=1)
        timeout = config.integer("timeout", DEFAULT_SQL_TIMEOUT, 1)
        self._lock = threading.Lock()
        try:
            uri = Path(self.dbpath).resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
            self._conn.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as exc:
            raise TableError(
                f"sqlite:{config.name}: open database {self.dbpath}: {exc}",
                parameter="dbpath",
                value=self.dbpath,
                filename=config.filename,
            ) from None

    async def search(self, key: str) -> Sequence[str | None]:  # pragma: no cover - unused
        return self.search_sync(key)

    def search_sync(self, key: str) -> Sequence[str | None]:
        query = self.templates.expand_query(key, sql_quote_standard)
        assert query is not None  # checked by the caller
        try:
            with self._lock:
                rows = self._conn.execute(query).fetchall()
        except (sqlite3.Error, ValueError) as exc:
            problem = f"sqlite:{self.config.name}: SQL step failed for query '{query}': {exc}"
            self.lookup_warnings.append(problem)
            raise TableLookupError(problem) from None
        return [_text(row[0]) if row else None for row in rows]

    def lookup_in_thread(self, key: str) -> str | None:
        return self.lookup_blocking(key, self.search_sync)

    def lookup(self, key: str) -> str | None:
        return self.lookup_in_thread(key)

    async def lookup_async(self, key: str) -> str | None:
        return await asyncio.to_thread(self.lookup_in_thread, key)

    def close(self) -> None:
        self._conn.close()


def _text(value: object) -> str | None:
    """sqlite3_column_text(): the value as text; NULL stays None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def open_sqlite(name: str, context: OpenContext) -> SqliteTable:
    config = load_config("sqlite", name, NAMES, context)
    return SqliteTable(f"sqlite:{name}", config, context)
