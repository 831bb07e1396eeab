"""pgsql: against a real PostgreSQL server (tests/conftest.py's pg_server) and its faults:
server down, a server that never answers, failover to the second host, a wrong password,
recovery after retry_interval, pooled connections, and a loop that never blocks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.pgsql import PgsqlTable, parse_host
from tests.support import sqldata
from tests.support.peers.pgsql import PgServer
from tests.tables.sqlfaults import InOrder, dead_port, silent_listener, ticks_while

QUERY = "SELECT v FROM m WHERE k='%s'"


def table(tmp_path: Path, name: str = "pg.cf", **params: str) -> PgsqlTable:
    cf = tmp_path / name
    cf.write_text(sqldata.cf_text(query=QUERY, **params))
    opened = open_table(f"pgsql:{cf}")
    assert isinstance(opened, PgsqlTable)
    opened.pool.rng = InOrder()  # type: ignore[assignment]
    return opened


def login(server: PgServer) -> dict[str, str]:
    return {"user": sqldata.USER, "password": sqldata.PASSWORD, "dbname": sqldata.DATABASE}


def test_lookups_sync_and_async_share_one_pool(tmp_path: Path, pg_server: PgServer) -> None:
    t = table(tmp_path, **sqldata.pgsql_params(pg_server))
    assert t.lookup("Alice@Example.com") == "alice-1,alice-2"
    assert asyncio.run(t.lookup_async("o'hara@example.com")) == "irish"
    assert asyncio.run(t.lookup_async("nobody@example.org")) is None
    assert t.pool.statistics()["open"] == 1  # one connection, reused by both kinds of caller
    # The same configuration opened again is the same table (and pool).
    assert open_table(f"pgsql:{tmp_path / 'pg.cf'}") is t


async def test_concurrent_lookups_use_several_connections(
    tmp_path: Path, pg_server: PgServer
) -> None:
    t = table(tmp_path, **sqldata.pgsql_params(pg_server))
    keys = ["alice@example.com", "plain", "nobody", "smtp.example.net"] * 5
    found = await asyncio.gather(*(t.lookup_async(k) for k in keys))
    assert found[:4] == ["alice-1,alice-2", "p", None, "relay@gateway.example"]
    assert 1 <= t.pools.current().statistics()["open"] <= 16  # 8 per entry, host listed twice


def test_server_down_is_a_temporary_failure(tmp_path: Path) -> None:
    port = dead_port()
    t = table(tmp_path, hosts=f"inet:127.0.0.1:{port}", dbname="mail", user="u", password="p")
    with pytest.raises(TableLookupError) as info:
        t.lookup("alice@example.com")
    assert str(info.value).startswith(f"pgsql:{tmp_path}/pg.cf: lookup error: connect to pgsql")
    warnings = t.take_warnings()
    # One host is tried twice at once (a load balancer), then skipped for retry_interval.
    assert len(warnings) == 2
    assert all(w.startswith(f"connect to pgsql server inet:127.0.0.1:{port}: ") for w in warnings)
    assert all("Connection refused" in w for w in warnings)
    with pytest.raises(TableLookupError, match="no server available"):
        t.lookup("alice@example.com")  # within retry_interval: not tried again
    assert t.take_warnings() == []


async def test_server_that_never_answers_times_out_without_blocking(tmp_path: Path) -> None:
    with silent_listener() as port:
        t = table(tmp_path, hosts=f"inet:127.0.0.1:{port}", dbname="mail", user="u", timeout="1")
        started = time.monotonic()
        outcome, ticks = await ticks_while(asyncio.ensure_future(t.lookup_async("x@y.z")))
        elapsed = time.monotonic() - started
    assert isinstance(outcome, TableLookupError)
    assert elapsed < 10  # two tries of about a second each, not the driver's own waits
    assert ticks >= 20  # the caller's loop ran all along
    assert t.take_warnings() == [f"pgsql:{tmp_path}/pg.cf: server did not answer within 1s"] * 2


def test_failover_to_the_second_host(tmp_path: Path, pg_server: PgServer) -> None:
    port = dead_port()
    hosts = f"inet:127.0.0.1:{port}, inet:127.0.0.1:{pg_server.port}"
    t = table(tmp_path, hosts=hosts, **login(pg_server))
    assert t.lookup("plain") == "p"
    warnings = t.take_warnings()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"connect to pgsql server inet:127.0.0.1:{port}: "
    )
    assert t.lookup("plain") == "p"  # the working host stays in use
    assert t.take_warnings() == []


def test_wrong_password(tmp_path: Path, pg_server: PgServer) -> None:
    t = table(tmp_path, **sqldata.pgsql_params(pg_server, password="wrong"))
    with pytest.raises(TableLookupError):
        t.lookup("plain")
    warnings = t.take_warnings()
    assert warnings and all(
        'password authentication failed for user "postfix"' in w for w in warnings
    )


def test_recovers_after_retry_interval(tmp_path: Path, pg_server: PgServer) -> None:
    t = table(tmp_path, **sqldata.pgsql_params(pg_server, retry_interval="1"))
    assert t.lookup("plain") == "p"
    for state in t.pool.states:  # as if both entries had just failed
        state.status = type(state.status).FAIL
        state.retry_at = time.monotonic() - 1  # the table loop's clock is monotonic
    assert t.lookup("plain") == "p"


def test_bad_query_is_a_temporary_failure(tmp_path: Path, pg_server: PgServer) -> None:
    cf = tmp_path / "bad.cf"
    params = sqldata.pgsql_params(pg_server)
    cf.write_text(sqldata.cf_text(query="SELECT v FROM nosuchtable WHERE k='%s'", **params))
    t = open_table(f"pgsql:{cf}")
    with pytest.raises(TableLookupError):
        t.lookup("plain")
    assert any('relation "nosuchtable" does not exist' in w for w in t.take_warnings())


def test_dbname_required_for_non_uri_hosts(tmp_path: Path) -> None:
    cf = tmp_path / "x.cf"
    cf.write_text("hosts = db1\nquery = SELECT 1\n")
    with pytest.raises(TableError) as info:
        open_table(f"pgsql:{cf}")
    assert str(info.value) == f"{cf}: pgsql:{cf} host target 'db1' requires dbname setting"


@pytest.mark.parametrize(
    ("text", "rank", "target"),
    [
        ("unix:/run/postgresql", 0, ("unix", "/run/postgresql", "")),
        ("inet:db.example:5433", 1, ("inet", "db.example", "5433")),
        ("db.example", 1, ("inet", "db.example", "")),
        ("postgresql://u@db/x", 2, ("uri", "postgresql://u@db/x", "")),
    ],
)
def test_hosts(text: str, rank: int, target: tuple[str, str, str]) -> None:
    host = parse_host(text)
    assert (host.rank, host.target) == (rank, target)


def test_main_cf_style(pg_server: PgServer) -> None:
    values = {f"pgsource_{k}": v for k, v in sqldata.pgsql_params(pg_server).items()}
    values["pgsource_query"] = QUERY
    t = open_table("pgsql:pgsource", main_cf=values.get)
    assert t.lookup("plain") == "p"
    assert t.files() == ()


def test_a_failed_query_is_reported_as_dict_pgsql_does(tmp_path: Path, pg_server: PgServer) -> None:
    cf = tmp_path / "bad.cf"
    params = sqldata.pgsql_params(pg_server)
    cf.write_text(sqldata.cf_text(query="SELECT nosuch FROM m WHERE k='%s'", **params))
    t = open_table(f"pgsql:{cf}")
    with pytest.raises(TableLookupError):
        t.lookup("plain")
    prefix = f"pgsql query failed: fatal error from host {params['hosts']}: "
    expected = "column \"nosuch\" does not exist LINE 1: SELECT nosuch FROM m WHERE k='plain' ^"
    assert t.take_warnings() == [prefix + expected] * 2  # the host, listed twice


def test_the_last_statement_answers(tmp_path: Path, pg_server: PgServer) -> None:
    cf = tmp_path / "two.cf"
    params = sqldata.pgsql_params(pg_server)
    cf.write_text(sqldata.cf_text(query="SELECT 'first'; SELECT v FROM m WHERE k='%s'", **params))
    assert open_table(f"pgsql:{cf}").lookup("plain") == "p"  # PQexec(): the last result


def test_a_connection_the_server_dropped_is_replaced(tmp_path: Path, pg_server: PgServer) -> None:
    t = table(tmp_path, **sqldata.pgsql_params(pg_server))
    assert t.lookup("plain") == "p"
    pg_server.sql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{sqldata.USER}'"
    )
    assert t.lookup("plain") == "p"  # the broken one fails, the other entry reconnects
    warnings = t.take_warnings()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"pgsql query failed: fatal error from host {sqldata.pgsql_params(pg_server)['hosts']}: "
    )


async def test_a_burst_of_one_key_is_one_query(
    tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailcarrier.tables.pgsql import PgConnection

    sent: list[str] = []
    query = PgConnection.query

    async def counted(self: PgConnection, text: str) -> list[str | None]:
        sent.append(text)
        return await query(self, text)

    monkeypatch.setattr(PgConnection, "query", counted)
    t = table(tmp_path, **sqldata.pgsql_params(pg_server))
    found = await asyncio.gather(*(t.lookup_async("Alice@Example.com") for _ in range(20)))
    assert found == ["alice-1,alice-2"] * 20
    assert sent == ["SELECT v FROM m WHERE k='alice@example.com'"]
    await t.lookup_async("alice@example.com")  # answered: the next one asks again
    assert len(sent) == 2
