"""sqlite: lookups in the calling thread and, for event loops, in a worker thread; the
database opened read-only; SQL errors as temporary failures; Postfix's quoting warning."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.sqlite import SqliteTable, unquoted_expansions
from tests.support import sqldata


def table(tmp_path: Path, query: str = "SELECT v FROM m WHERE k='%s'", **extra: str) -> SqliteTable:
    db = tmp_path / "m.db"
    if not db.exists():
        sqldata.fill_sqlite(db)
    cf = tmp_path / "s.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(db), query=query, **extra))
    opened = open_table(f"sqlite:{cf}")
    assert isinstance(opened, SqliteTable)
    return opened


def test_sync_and_async(tmp_path: Path) -> None:
    t = table(tmp_path)
    assert t.network and t.fixed
    assert t.lookup("ALICE@example.com") == "alice-1,alice-2"
    threads: list[str] = []
    original = t.lookup_in_thread

    def spy(key: str) -> str | None:
        threads.append(threading.current_thread().name)
        return original(key)

    t.lookup_in_thread = spy  # type: ignore[method-assign]
    assert asyncio.run(t.lookup_async("o'hara@example.com")) == "irish"
    assert threads and threads[0] != threading.main_thread().name


def test_empty_result_warning_and_null(tmp_path: Path) -> None:
    t = table(tmp_path)
    assert t.lookup("empty@example.com") is None
    assert t.lookup("null@example.com") is None
    assert t.take_warnings() == [
        f'table "sqlite:{tmp_path}/s.cf": empty lookup result for: "empty@example.com" -- ignored'
    ]


def test_sql_error_is_a_temporary_failure(tmp_path: Path) -> None:
    t = table(tmp_path, query="SELECT v FROM nosuch WHERE k='%s'")
    with pytest.raises(TableLookupError, match="SQL step failed for query"):
        t.lookup("plain")


def test_expansion_limit(tmp_path: Path) -> None:
    t = table(tmp_path, expansion_limit="1")
    assert t.lookup("plain") == "p"
    with pytest.raises(TableLookupError) as info:
        t.lookup("alice@example.com")
    assert (
        str(info.value) == f"{tmp_path}/s.cf: Expansion limit exceeded for key: 'alice@example.com'"
    )


def test_database_missing(tmp_path: Path) -> None:
    cf = tmp_path / "s.cf"
    cf.write_text(f"dbpath = {tmp_path}/nope.db\nquery = SELECT 1\n")
    with pytest.raises(TableError, match="open database"):
        open_table(f"sqlite:{cf}")


def test_read_only(tmp_path: Path) -> None:
    t = table(tmp_path, query="DELETE FROM m WHERE k='%s'")
    with pytest.raises(TableLookupError, match="readonly"):
        t.lookup("plain")


def test_unquoted_expansion_warning(tmp_path: Path) -> None:
    assert unquoted_expansions("SELECT v FROM m WHERE k=%s OR k='%u' OR x=\"%d\" AND 100%%") == [
        "%s",
        "%d",
    ]
    t = table(tmp_path, query="SELECT v FROM m WHERE k=%s")
    assert t.warnings == [
        f"sqlite:{tmp_path}/s.cf: query >SELECT v FROM m WHERE k=%s< contains >%s< without "
        "the recommended '' quotes"
    ]
