"""Routing recipients to (transport, next hop)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.queue.route import RESOLVER_FAILURE, Route, Router
from mailcarrier.tables.base import TableLookupError
from tests.support import sqldata
from tests.support.settings import queue_layer, queue_settings


def test_relayhost_and_domain(tmp_path: Path) -> None:
    assert Router(queue_settings(tmp_path)).route("a@example.net") == Route(
        "smtp", "[127.0.0.1]:2525"
    )
    assert Router(queue_settings(tmp_path, relayhost="")).route("a@example.net") == Route(
        "smtp", "example.net"
    )


def test_relayhost_list_goes_whole_to_the_agent(tmp_path: Path) -> None:
    """Postfix 3.5+: relayhost may list several destinations, tried in order; the agent
    splits the list itself, so the route keeps all of them."""
    r = Router(queue_settings(tmp_path, relayhost="[127.0.0.1]:2525, [127.0.0.1]:2526"))
    assert r.route("a@example.net") == Route("smtp", "[127.0.0.1]:2525, [127.0.0.1]:2526")


def test_default_transport_nexthop_beats_relayhost(tmp_path: Path) -> None:
    r = Router(queue_settings(tmp_path, default_transport="lmtp:unix:/tmp/l"))
    assert r.route("a@example.net") == Route("lmtp", "unix:/tmp/l")


def test_transport_maps_table(tmp_path: Path) -> None:
    table = {
        "special@example.net": "lmtp:unix:/s",
        "example.com": "smtp:[10.0.0.1]:26",
        ".sub.example.org": "smtp:",
        "bounce.example": "error:5.1.1 go away",
        "later.example": "retry:try later",
        "odd.example": "pipe:",
    }
    r = Router(queue_settings(tmp_path), lookup=table.get)
    assert r.route("special@example.net") == Route("lmtp", "unix:/s")
    assert r.route("x@example.com") == Route("smtp", "[10.0.0.1]:26")
    assert r.route("x@a.sub.example.org") == Route("smtp", "[127.0.0.1]:2525")
    assert r.route("x@bounce.example") == Route("error", "5.1.1 go away")
    assert r.route("x@later.example") == Route("retry", "try later")
    assert r.route("x@odd.example").transport == "unavailable"
    assert r.route("x@other.example") == Route("smtp", "[127.0.0.1]:2525")


def test_transport_maps_from_configuration(tmp_path: Path) -> None:
    cfg = queue_settings(tmp_path, transport_maps="inline:{example.com=lmtp:unix:/x}")
    assert Router(cfg).route("a@example.com") == Route("lmtp", "unix:/x")


def _sqlite_transport(tmp_path: Path, rows: list[tuple[str, str]]) -> str:
    db = tmp_path / "transport.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
    conn.executemany("INSERT INTO m VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    cf = tmp_path / "transport.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(db), query="SELECT v FROM m WHERE k='%s'"))
    return f"sqlite:{cf}"


def test_a_table_that_cannot_answer_defers_the_recipient(tmp_path: Path) -> None:
    def down(key: str) -> str | None:
        raise TableLookupError("pgsql:/etc/t.cf: lookup error: no server available")

    r = Router(queue_settings(tmp_path), lookup=down)
    assert r.route("a@example.net") == Route("retry", "4.3.0 address resolver failure")
    assert RESOLVER_FAILURE == "4.3.0 address resolver failure"


async def test_network_transport_maps_are_asked_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailcarrier.tables.sqlite import SqliteTable

    spec = _sqlite_transport(tmp_path, [("example.com", "lmtp:unix:/x"), (".org", "retry:later")])
    r = Router(queue_settings(tmp_path, transport_maps=spec))
    assert r.network
    answers = await r.prefetch(["a@example.com", "b@sub.example.org", "c@example.net"])
    assert answers == {
        "a@example.com": "lmtp:unix:/x",
        "b@sub.example.org": "retry:later",
        "c@example.net": None,
    }

    def blocked(self: SqliteTable, key: str) -> str | None:
        raise AssertionError("a blocking lookup")

    monkeypatch.setattr(SqliteTable, "lookup", blocked)
    assert r.route("a@example.com", answers) == Route("lmtp", "unix:/x")
    assert r.route("b@sub.example.org", answers) == Route("retry", "later")
    assert r.route("c@example.net", answers) == Route("smtp", "[127.0.0.1]:2525")


async def test_a_network_table_that_is_down_defers(tmp_path: Path) -> None:
    from tests.tables.sqlfaults import dead_port

    cf = tmp_path / "dead.cf"
    cf.write_text(
        sqldata.cf_text(hosts=f"inet:127.0.0.1:{dead_port()}", dbname="m", query="SELECT '%s'")
    )
    r = Router(queue_settings(tmp_path, transport_maps=f"pgsql:{cf}"))
    answers = await r.prefetch(["a@example.com"])
    assert isinstance(answers["a@example.com"], TableLookupError)
    assert r.route("a@example.com", answers) == Route("retry", RESOLVER_FAILURE)


# --- named transports (master.cf services) ----------------------------------------------
MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
relay     unix  -       -       n       -       -       smtp -o smtp_helo_name=relay.example
viaproxy  unix  -       -       n       -       -       smtp -o smtp_helo_name=proxy.example
dovecot   unix  -       -       n       -       -       lmtp
pipe-it   unix  -       n       n       -       -       pipe flags=R argv=/bin/true
"""


def _named(tmp_path: Path, **params: str) -> Settings:
    (tmp_path / "master.cf").write_text(MASTER_CF)
    (tmp_path / "main.cf").write_text("")
    return Settings.load(tmp_path, {**queue_layer(tmp_path / "q"), **params})


def test_transport_maps_names_services(tmp_path: Path) -> None:
    table = {
        "example.com": "viaproxy:[10.0.0.1]:26",
        "example.org": "viaproxy",
        "lmtp.example": "dovecot:unix:/run/lmtp",
        "piped.example": "pipe-it:",
        "typo.example": "viaprxy:",
    }
    r = Router(_named(tmp_path), lookup=table.get)
    assert r.route("a@example.com") == Route("smtp", "[10.0.0.1]:26", "viaproxy")
    assert r.route("a@example.org") == Route("smtp", "[127.0.0.1]:2525", "viaproxy")
    assert r.route("a@lmtp.example") == Route("lmtp", "unix:/run/lmtp", "dovecot")
    assert r.route("a@lmtp.example").name == "dovecot"
    # Services master.cf defines with another command, and names it does not define,
    # are transports without an agent: their mail is deferred (scheduler).
    assert r.route("a@piped.example") == Route("unavailable", "pipe-it")
    assert r.route("a@typo.example") == Route("unavailable", "viaprxy")
    assert r.hint("viaprxy") == ' (did you mean "viaproxy"?)'
    assert r.hint("uucp") == ""
    # The built-in smtp is still main.cf's, not a service.
    assert r.route("a@other.example") == Route("smtp", "[127.0.0.1]:2525")


def test_default_transport_names_a_service(tmp_path: Path) -> None:
    r = Router(_named(tmp_path, default_transport="viaproxy"))
    assert r.route("a@example.net") == Route("smtp", "[127.0.0.1]:2525", "viaproxy")
    r = Router(_named(tmp_path, default_transport="dovecot:inet:[127.0.0.1]:24"))
    assert r.route("a@example.net") == Route("lmtp", "inet:[127.0.0.1]:24", "dovecot")


def test_relay_transport_for_relay_domains(tmp_path: Path) -> None:
    """relay_domains (not mydestination, which mailcarrier delivers like other domains)
    take relay_transport; master.cf's relay service carries its -o settings."""
    cfg = _named(tmp_path, relay_domains="relayed.example, localhost")
    r = Router(cfg)
    assert r.route("a@relayed.example") == Route("smtp", "[127.0.0.1]:2525", "relay")
    assert r.route("a@localhost") == Route("smtp", "[127.0.0.1]:2525")
    assert r.route("a@example.net") == Route("smtp", "[127.0.0.1]:2525")
    r = Router(_named(tmp_path, relay_domains="relayed.example", relay_transport="dovecot:unix:/r"))
    assert r.route("a@relayed.example") == Route("lmtp", "unix:/r", "dovecot")
    # Without master.cf, relay is the built-in SMTP client.
    r = Router(queue_settings(tmp_path, relay_domains="relayed.example"))
    assert r.route("a@relayed.example") == Route("smtp", "[127.0.0.1]:2525")


def test_sender_dependent_default_transport(tmp_path: Path) -> None:
    maps = "inline:{ {a@example.org=viaproxy}, {@bulk.example=dovecot:unix:/b}, {<>=relay},"
    maps += " {dunno@example.org=DUNNO} }"
    r = Router(_named(tmp_path, sender_dependent_default_transport_maps=maps))
    assert r.route("x@example.net", sender="a@example.org") == Route(
        "smtp", "[127.0.0.1]:2525", "viaproxy"
    )
    assert r.route("x@example.net", sender="n@bulk.example") == Route("lmtp", "unix:/b", "dovecot")
    assert r.route("x@example.net", sender="") == Route("smtp", "[127.0.0.1]:2525", "relay")
    for sender in ("dunno@example.org", "b@example.org"):
        assert r.route("x@example.net", sender=sender) == Route("smtp", "[127.0.0.1]:2525")
    # transport_maps still wins over the sender's default transport.
    r = Router(
        _named(tmp_path, sender_dependent_default_transport_maps=maps),
        lookup={"example.com": "smtp:[10.0.0.9]"}.get,
    )
    assert r.route("x@example.com", sender="a@example.org") == Route("smtp", "[10.0.0.9]")


def test_sender_dependent_relayhost(tmp_path: Path) -> None:
    maps = "inline:{ {a@example.org=[10.0.0.1]:587}, {@example.net=[10.0.0.2]}, {<>=[10.0.0.3]},"
    maps += " {d@example.org=DUNNO} }"
    r = Router(queue_settings(tmp_path, sender_dependent_relayhost_maps=maps))
    assert r.route("x@example.com", sender="a@example.org") == Route("smtp", "[10.0.0.1]:587")
    assert r.route("x@example.com", sender="b@example.net") == Route("smtp", "[10.0.0.2]")
    assert r.route("x@example.com", sender="") == Route("smtp", "[10.0.0.3]")
    assert r.route("x@example.com", sender="d@example.org") == Route("smtp", "[127.0.0.1]:2525")
    r = Router(queue_settings(tmp_path, relayhost="", sender_dependent_relayhost_maps=maps))
    assert r.route("x@example.com", sender="c@example.org") == Route("smtp", "example.com")
    # default_transport's own next hop beats the sender's relay host, as in Postfix.
    r = Router(
        queue_settings(
            tmp_path, default_transport="smtp:[10.0.0.9]", sender_dependent_relayhost_maps=maps
        )
    )
    assert r.route("x@example.com", sender="a@example.org") == Route("smtp", "[10.0.0.9]")


async def test_network_sender_tables_are_asked_on_the_loop(tmp_path: Path) -> None:
    spec = _sqlite_transport(tmp_path, [("a@example.org", "[10.0.0.7]")])
    r = Router(queue_settings(tmp_path, sender_dependent_relayhost_maps=spec))
    assert r.network
    answers = await r.prefetch(["x@example.com"], "a@example.org")
    assert r.route("x@example.com", answers, "a@example.org") == Route("smtp", "[10.0.0.7]")


@pytest.mark.parametrize(
    ("parameter", "value", "hint"),
    [
        ("default_transport", "viaprxy", ' (did you mean "viaproxy"?)'),
        ("relay_transport", "dovcot:unix:/x", ' (did you mean "dovecot"?)'),
        ("default_transport", "uucp", ""),
        ("default_transport", "pipe-it", ""),
    ],
)
def test_a_transport_nothing_defines_stops_the_start(
    tmp_path: Path, parameter: str, value: str, hint: str
) -> None:
    (tmp_path / "main.cf").write_text(f"# routing\n{parameter} = {value}\n")
    (tmp_path / "master.cf").write_text(MASTER_CF)
    with pytest.raises(ConfigError) as info:
        Router(Settings.load(tmp_path))
    name = value.partition(":")[0]
    assert str(info.value) == (
        f'{tmp_path / "main.cf"}:2: parameter {parameter}: unknown mail transport "{name}": '
        "not a built-in transport (smtp, relay, lmtp, error, retry) nor an smtp or lmtp "
        f"service of {tmp_path / 'master.cf'}{hint}"
    )


_DOMAINS = ["example.net", "EXAMPLE.net", "sub.example.net", "example.org", "a.b.example.org", ""]


@settings(max_examples=60, deadline=None)
@given(
    relayhost=st.sampled_from(["", "[127.0.0.1]:2525"]),
    relay_domains=st.sampled_from(["", "example.net", "!sub.example.net, .example.net"]),
    mydestination=st.sampled_from(["", "localhost, example.org", "example.net"]),
    default_transport=st.sampled_from(["smtp", "relay", "error:5.1.1 no", "retry:later"]),
    parents=st.sampled_from(["", "relay_domains", "relay_domains mydestination"]),
    addresses=st.lists(
        st.tuples(st.sampled_from(["a", "B", "a+x"]), st.sampled_from(_DOMAINS)), max_size=12
    ),
)
def test_a_router_without_tables_routes_by_domain_as_it_asks_everything(
    relayhost: str,
    relay_domains: str,
    mydestination: str,
    default_transport: str,
    parents: str,
    addresses: list[tuple[str, str]],
) -> None:
    """Without tables the route of each domain is kept: every answer is the one the whole
    resolution (`_route`) gives."""
    config = queue_settings(
        Path("/nonexistent"),
        relayhost=relayhost,
        relay_domains=relay_domains,
        mydestination=mydestination,
        default_transport=default_transport,
        parent_domain_matches_subdomains=parents,
    )
    router = Router(config)
    assert router._by_domain is not None
    for local, domain in addresses:
        address = f"{local}@{domain}" if domain else local
        expected = router._route(address, address.rpartition("@")[2], None, "")
        assert router.route(address) == expected


def test_a_router_with_tables_asks_them_for_every_address(tmp_path: Path) -> None:
    table = {"special@example.net": "lmtp:unix:/s"}
    router = Router(queue_settings(tmp_path), lookup=table.get)
    assert router._by_domain is None
    assert router.route("special@example.net") == Route("lmtp", "unix:/s")
    assert router.route("other@example.net") == Route("smtp", "[127.0.0.1]:2525")
