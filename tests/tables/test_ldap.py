"""ldap: tables against a private slapd (tests/support/peers/slapd.py): answers, DN and URL
recursion, binds, TLS, the UNIX-domain socket, connection reuse, and the faults: a server
down, one that never answers, failover to the next server, a wrong password, escaping of
keys that try to change the filter, and a malformed configuration file."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.command import map_main
from mailcarrier.tables.ldap import LdapTable
from tests.support import ldapdata
from tests.support.peers import slapd
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.tableservers import STALL, LineServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[slapd.Slapd]:
    if not slapd.available():
        pytest.skip("slapd is not installed (Debian slapd)")
    with slapd.running_slapd(ldapdata.LDIF, ca.issue_cert("127.0.0.1", "localhost")) as srv:
        yield srv


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def open_ldap(tmp_path: Path, url: str, name: str = "ldap.cf", **params: str) -> LdapTable:
    cf = tmp_path / name
    cf.write_text(ldapdata.cf_text(**ldapdata.base_params(url, **params)))
    table = open_table(f"ldap:{cf}")
    assert isinstance(table, LdapTable)
    return table


def accepted(server: slapd.Slapd) -> int:
    return server.log().count(" ACCEPT from ")


def test_answers(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url, result_attribute="mail, mailHost")
    assert (t.kind, t.fixed, t.network) == ("ldap", True, True)
    assert t.lookup("alice@example.com") == "alice@example.com,ali@example.com,mx1.example.com"
    assert t.lookup("ALI@EXAMPLE.COM") == "alice@example.com,ali@example.com,mx1.example.com"
    assert t.lookup("nobody@example.com") is None
    assert t.lookup("carol@example.com") == "carol@example.com"
    assert t.take_warnings() == []
    assert t.files() == (tmp_path / "ldap.cf",)


async def test_lookups_on_an_event_loop_share_the_connection(
    server: slapd.Slapd, tmp_path: Path
) -> None:
    t = open_ldap(tmp_path, server.url)
    before = accepted(server)
    for _ in range(5):
        assert await t.lookup_async("bob@example.com") == "bob@other.example"
    assert t.lookup("bob@example.com") == "bob@other.example"
    assert accepted(server) - before == 1
    assert t.pool.statistics()["open"] == 1


def test_groups_leaf_and_terminal(server: slapd.Slapd, tmp_path: Path) -> None:
    leaf = open_ldap(
        tmp_path,
        server.url,
        "leaf.cf",
        result_attribute="",
        leaf_result_attribute="mailRoutingAddress",
        special_result_attribute="member, memberURL",
    )
    # The group's own mailRoutingAddress is a leaf value: a group (it has members) skips it.
    assert leaf.lookup("staff@example.com") == "alice@mail.example.com,bob@other.example"
    assert leaf.lookup("alice@example.com") == "alice@mail.example.com"
    assert leaf.lookup("dynamic@example.com") == "bob@other.example,literal-backslash@example.com"
    terminal = open_ldap(
        tmp_path,
        server.url,
        "terminal.cf",
        result_attribute="mailRoutingAddress",
        terminal_result_attribute="mailHost",
        special_result_attribute="member",
    )
    assert terminal.lookup("delegated@example.com") == "lists.example.com"
    assert terminal.lookup("bob@example.com") == "mx2.example.com"
    assert terminal.lookup("carol@example.com") is None


def test_recursion_limit(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url, special_result_attribute="member", recursion_limit="2")
    with pytest.raises(TableLookupError):
        t.lookup("loop@example.com")
    cf = tmp_path / "ldap.cf"
    loop = f"cn=loop,{ldapdata.GROUPS}"
    assert t.take_warnings() == [
        f"dict_ldap_get_values[2]: {cf}: Recursion limit exceeded for special attribute "
        f"member={loop}"
    ]


def test_search_base_with_the_key(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(
        tmp_path,
        server.url,
        search_base="uid=%u,ou=people,dc=example,dc=com",
        scope="base",
        query_filter="(mail=%s)",
    )
    assert t.lookup("bob@example.com") == "bob@other.example"
    assert t.lookup("ghost@example.com") is None  # no such base: a dynamic base, not found
    assert t.take_warnings() == []
    fixed = open_ldap(tmp_path, server.url, "fixed.cf", search_base="ou=nowhere,dc=example,dc=com")
    with pytest.raises(TableLookupError):
        fixed.lookup("bob@example.com")
    assert fixed.take_warnings() == [
        f"dict_ldap_lookup: {tmp_path}/fixed.cf: Search base 'ou=nowhere,dc=example,dc=com' "
        "not found: 32: No such object"
    ]


def test_filter_injection_through_the_key(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url)
    start = len(server.filters())
    assert t.lookup("a*b@example.com") == "literal-star@example.com"  # not axxb's
    assert t.lookup("*") is None
    assert t.lookup("*)(uid=*") is None
    assert t.lookup("(paren)@example.com") == "literal-paren@example.com"
    assert t.lookup("back\\slash@example.com") == "literal-backslash@example.com"
    assert t.lookup("a\0b@example.com") is None
    for _ in range(50):  # slapd logs after it answers
        if len(server.filters()) >= start + 6:
            break
        time.sleep(0.02)
    assert server.filters()[start:] == [
        "(mailLocalAddress=a\\2Ab@example.com)",
        "(mailLocalAddress=\\2A)",
        "(mailLocalAddress=\\2A\\29\\28uid=\\2A)",
        "(mailLocalAddress=\\28paren\\29@example.com)",
        "(mailLocalAddress=back\\5Cslash@example.com)",
        "(mailLocalAddress=a)",  # slapd logs the value up to the NUL byte it received
    ]


def test_server_down_is_a_temporary_failure(tmp_path: Path) -> None:
    port = free_port()
    t = open_ldap(tmp_path, f"ldap://127.0.0.1:{port}")
    with pytest.raises(TableLookupError):
        t.lookup("alice@example.com")
    warning = (
        f"dict_ldap_connect: Unable to bind to server ldap://127.0.0.1:{port} with dn "
        f"{ldapdata.BIND_DN}: -1 (Can't contact LDAP server)"
    )
    assert t.take_warnings() == [warning, warning]  # one server is tried twice
    out, err = io.StringIO(), io.StringIO()
    assert map_main(["-q", "alice@example.com", f"ldap:{tmp_path}/ldap.cf"], out, err) == 75
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        f"mailcarrier: warning: {warning}",
        f"mailcarrier: warning: {warning}",
        f"mailcarrier: fatal: ldap:{tmp_path}/ldap.cf: lookup error: {warning}",
    ]


def test_server_down_without_bind(tmp_path: Path) -> None:
    t = open_ldap(tmp_path, f"ldap://127.0.0.1:{free_port()}", bind="no")
    with pytest.raises(TableLookupError):
        t.lookup("alice@example.com")
    assert (
        t.take_warnings() == ["dict_ldap_lookup: Search error -1: Can't contact LDAP server "] * 2
    )


def test_server_that_never_answers(tmp_path: Path) -> None:
    silent = LineServer(lambda _: STALL).start()
    try:
        t = open_ldap(tmp_path, f"ldap://{silent.inet}", timeout="1")
        started = time.monotonic()
        with pytest.raises(TableLookupError):
            t.lookup("alice@example.com")
        assert time.monotonic() - started < 30  # it gave up, and did not hang
        assert (
            t.take_warnings() == [f"ldap:{tmp_path}/ldap.cf: server did not answer within 1s"] * 2
        )
    finally:
        silent.stop()


def test_failover_to_the_next_server(server: slapd.Slapd, tmp_path: Path) -> None:
    down = free_port()
    silent = LineServer(lambda _: STALL).start()
    try:
        hosts = f"ldap://127.0.0.1:{down} ldap://{silent.inet} {server.url}"
        t = open_ldap(tmp_path, hosts, timeout="1")
        assert t.lookup("alice@example.com") == "alice@mail.example.com"
        assert t.take_warnings() == [
            f"dict_ldap_connect: Unable to bind to server ldap://127.0.0.1:{down} with dn "
            f"{ldapdata.BIND_DN}: -1 (Can't contact LDAP server)",
            f"ldap:{tmp_path}/ldap.cf: server did not answer within 1s",
        ]
        # Its connection is kept: the next lookups go straight to the working server.
        assert t.lookup("bob@example.com") == "bob@other.example"
        assert t.take_warnings() == []
    finally:
        silent.stop()


def test_servers_are_tried_in_order(server: slapd.Slapd, tmp_path: Path) -> None:
    second = LineServer(lambda _: STALL).start()
    try:
        t = open_ldap(tmp_path, f"{server.url} ldap://{second.inet}")
        for _ in range(3):
            assert t.lookup("alice@example.com") == "alice@mail.example.com"
        assert second.connections == 0
    finally:
        second.stop()


def test_wrong_bind_password(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url, bind_pw="wrong")
    with pytest.raises(TableLookupError):
        t.lookup("alice@example.com")
    warning = (
        f"dict_ldap_connect: Unable to bind to server {server.url} with dn "
        f"{ldapdata.BIND_DN}: 49 (Invalid credentials)"
    )
    assert t.take_warnings() == [warning, warning]


def test_anonymous_and_ldapv2(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url, bind="no", version="2")
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    # slapd refuses an LDAPv2 bind, as it does Postfix's.
    v2 = open_ldap(tmp_path, server.url, "v2.cf", version="2", bind_dn="", bind_pw="")
    with pytest.raises(TableLookupError):
        v2.lookup("alice@example.com")
    assert v2.take_warnings()[0] == (
        f"dict_ldap_connect: Unable to bind to server {server.url} with dn empty or implicit: "
        "2 (Protocol error)"
    )


def test_unix_socket_and_sasl_external(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.ldapi_url)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    sasl = open_ldap(
        tmp_path, server.ldapi_url, "sasl.cf", bind="sasl", sasl_mechs="EXTERNAL", bind_dn=""
    )
    assert sasl.lookup("alice@example.com") == "alice@mail.example.com"
    assert "method=163" in server.log()  # a SASL bind
    with pytest.raises(TableError, match="none of the SASL mechanisms this client supports"):
        open_ldap(tmp_path, server.ldapi_url, "gss.cf", bind="sasl", sasl_mechs="GSSAPI")


def test_ldaps(server: slapd.Slapd, tmp_path: Path, cafile: str) -> None:
    t = open_ldap(tmp_path, server.ldaps_url, tls_require_cert="yes", tls_ca_cert_file=cafile)
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    strict = open_ldap(
        tmp_path,
        server.ldaps_url,
        "strict.cf",
        tls_require_cert="yes",
        tls_ca_cert_file=str(other),
    )
    with pytest.raises(TableLookupError):
        strict.lookup("alice@example.com")
    # tls_require_cert = no: the chain is not checked (OpenLDAP's TLS_REQCERT never).
    lax = open_ldap(
        tmp_path, server.ldaps_url, "lax.cf", tls_require_cert="no", tls_ca_cert_file=str(other)
    )
    assert lax.lookup("alice@example.com") == "alice@mail.example.com"


def test_starttls(server: slapd.Slapd, tmp_path: Path, cafile: str) -> None:
    t = open_ldap(
        tmp_path, server.url, start_tls="yes", tls_require_cert="yes", tls_ca_cert_file=cafile
    )
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert "EXT oid=1.3.6.1.4.1.1466.20037" in server.log()
    wrong = tmp_path / "wrong.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    bad = open_ldap(
        tmp_path,
        server.url,
        "bad.cf",
        start_tls="yes",
        tls_require_cert="yes",
        tls_ca_cert_file=str(wrong),
    )
    with pytest.raises(TableLookupError):
        bad.lookup("alice@example.com")
    assert bad.take_warnings()[0] == "dict_ldap_connect: Unable to set STARTTLS: -11: Connect error"


def test_domain_and_main_cf_style(server: slapd.Slapd, tmp_path: Path) -> None:
    t = open_ldap(tmp_path, server.url, domain="example.com")
    assert t.lookup("alice@example.com") == "alice@mail.example.com"
    assert t.lookup("alice") is None
    values = {f"ldapsource_{k}": v for k, v in ldapdata.base_params(server.url).items()}
    source = open_table("ldap:ldapsource", main_cf=values.get)
    assert source.lookup("bob@example.com") == "bob@other.example"
    assert open_table(f"proxy:ldap:{tmp_path}/ldap.cf").lookup("bob@example.com") == (
        "bob@other.example"
    )


def test_malformed_configuration_file(tmp_path: Path) -> None:
    cf = tmp_path / "bad.cf"
    cf.write_text("server_host = ldap://127.0.0.1:1\nsize_limit = lots\n")
    out, err = io.StringIO(), io.StringIO()
    assert map_main(["-q", "alice@example.com", f"ldap:{cf}"], out, err) == 78
    assert err.getvalue() == (
        f"mailcarrier: fatal: {cf}:2: bad numerical configuration: size_limit = lots\n"
    )
    cf.write_text("server_host = ldap://127.0.0.1:1\nquery_filter\n")
    err = io.StringIO()
    assert map_main(["-q", "alice@example.com", f"ldap:{cf}"], out, err) == 78
    assert err.getvalue() == (
        f"mailcarrier: fatal: {cf}:2: missing '=' after attribute name: \"query_filter\"\n"
    )


def test_unknown_parameters_and_fixed_filters_are_warned_about(tmp_path: Path) -> None:
    cf = tmp_path / "odd.cf"
    cf.write_text(
        "server_host = ldap://127.0.0.1:1\nquery_filter = (objectClass=*)\nsearch_bse = x\n"
    )
    t = open_table(f"ldap:{cf}")
    assert t.warnings == [
        f"{cf}:3: unknown ldap parameter ignored: search_bse",
        f"dict_ldap_open: {cf}: Fixed query_filter (objectClass=*) is probably useless",
    ]
