"""The same ldap_table(5) files and keys through Postfix's ``postmap -q`` (Debian's
postfix-ldap) and ``mailcarrier map -q``, against one private slapd: the same answers, line
for line, the same warnings, and the same filters and search bases as slapd received them.

The configurations cover result attributes with several values, result_format with the
key's parts, %u/%d/%1 in filters and search bases, the domain filter, DN and URL recursion
with special, leaf and terminal attributes, scope, simple binds, LDAPv2 without a bind, the
UNIX-domain socket with SASL EXTERNAL, ldaps and STARTTLS; the keys try filter and DN
injection (``*``, ``(``, ``)``, ``\\``, ``,``), upper case and non-ASCII. Failures (a limit
exceeded, a missing base) are compared one key at a time: postmap stops with "query error"
where map -q says 75.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import ldapdata
from tests.support.peers import slapd
from tests.support.postmap import has_map_type, ours, postmap, same_answers

KEYS = [
    "alice@example.com",
    "ALICE@Example.COM",
    "ali@example.com",
    "bob@example.com",
    "carol@example.com",
    "staff@example.com",
    "dynamic@example.com",
    "nested@example.com",
    "delegated@example.com",
    "a*b@example.com",
    "*@example.com",
    "(paren)@example.com",
    "back\\slash@example.com",
    "a)(uid=*@example.com",
    "alice,ou=people@example.com",
    "jörg@example.com",
    "@example.com",
    "alice",
    "nobody@example.org",
]

CONFIGS: dict[str, dict[str, str]] = {
    "plain": {},
    "multi": {"result_attribute": "mail, mailRoutingAddress, mailHost"},
    "format": {"result_attribute": "mailHost", "result_format": "smtp:[%s] for %U at %D"},
    "parts": {
        "query_filter": "(|(mailLocalAddress=%u@%d)(uid=%u)(mcDomain=%1))",
        "result_attribute": "uid",
    },
    "domain": {"domain": "example.com, !other.example"},
    "groups": {"special_result_attribute": "member, memberURL"},
    "leaf": {
        "result_attribute": "",
        "leaf_result_attribute": "mailRoutingAddress",
        "special_result_attribute": "member, memberURL",
    },
    "terminal": {
        "result_attribute": "mail",
        "terminal_result_attribute": "mailHost",
        "special_result_attribute": "member",
    },
    "base": {
        "search_base": "uid=%u,ou=people,dc=example,dc=com",
        "scope": "base",
        "query_filter": "(mail=%s)",
    },
    "one": {"search_base": "ou=people,dc=example,dc=com", "scope": "one"},
    "v2-nobind": {"version": "2", "bind": "no"},
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[slapd.Slapd]:
    if not slapd.available():
        pytest.skip("slapd is not installed (Debian slapd)")
    if not has_map_type("ldap"):
        pytest.skip("postmap has no ldap tables (Debian postfix-ldap)")
    with slapd.running_slapd(ldapdata.LDIF, ca.issue_cert("127.0.0.1", "localhost")) as srv:
        yield srv


def _cf(tmp_path: Path, name: str, params: dict[str, str]) -> str:
    tmp_path.chmod(0o755)
    cf = tmp_path / f"{name}.cf"
    cf.write_text(ldapdata.cf_text(**params))
    cf.chmod(0o644)
    return f"ldap:{cf}"


def _compare_searches(server: slapd.Slapd, tmp_path: Path, spec: str, keys: list[str]) -> None:
    """The same answers, warnings, and the same searches as slapd logged them."""
    before = len(server.filters()), len(server.bases())
    theirs = postmap(tmp_path, spec, keys)
    middle = len(server.filters()), len(server.bases())
    mine = ours(spec, keys)
    assert (mine.status, mine.stdout) == (theirs.status, theirs.stdout)
    assert mine.warnings == [w.replace("postmap", "mailcarrier") for w in theirs.warnings]
    filters, bases = server.filters(), server.bases()
    assert filters[middle[0] :] == filters[before[0] : middle[0]]
    assert bases[middle[1] :] == bases[before[1] : middle[1]]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ldap_answers_as_postmap(server: slapd.Slapd, tmp_path: Path, name: str) -> None:
    spec = _cf(tmp_path, name, ldapdata.base_params(server.url, **CONFIGS[name]))
    _compare_searches(server, tmp_path, spec, KEYS)


def test_the_answers_themselves(server: slapd.Slapd, tmp_path: Path) -> None:
    """What the shared answers are, for the record (postmap gives the same)."""
    spec = _cf(tmp_path, "groups", ldapdata.base_params(server.url, **CONFIGS["groups"]))
    _, mine = same_answers(tmp_path, spec, KEYS)
    assert mine.stdout == (
        "alice@example.com\talice@mail.example.com\n"
        "ALICE@Example.COM\talice@mail.example.com\n"
        "ali@example.com\talice@mail.example.com\n"
        "bob@example.com\tbob@other.example\n"
        "staff@example.com\talice@mail.example.com,bob@other.example,staff-owner@example.com\n"
        "dynamic@example.com\tbob@other.example,literal-backslash@example.com\n"
        "nested@example.com\talice@mail.example.com,bob@other.example,staff-owner@example.com\n"
        "delegated@example.com\talice@mail.example.com\n"
        "a*b@example.com\tliteral-star@example.com\n"
        "(paren)@example.com\tliteral-paren@example.com\n"
        "back\\slash@example.com\tliteral-backslash@example.com\n"
    )
    # A member that does not exist is skipped, with Postfix's warning.
    ghost = f"uid=ghost,{ldapdata.PEOPLE}"
    assert f"warning: dict_ldap_get_values[2]: DN {ghost} not found, skipping " in mine.warnings


def test_filter_injection_is_escaped_as_postfix_does(server: slapd.Slapd, tmp_path: Path) -> None:
    spec = _cf(tmp_path, "plain", ldapdata.base_params(server.url))
    keys = ["a*b@example.com", "*", "a)(uid=*", "back\\slash@example.com", "(paren)@example.com"]
    start = len(server.filters())
    _compare_searches(server, tmp_path, spec, keys)
    assert server.filters()[start : start + len(keys)] == [
        "(mailLocalAddress=a\\2Ab@example.com)",
        "(mailLocalAddress=\\2A)",
        "(mailLocalAddress=a\\29\\28uid=\\2A)",
        "(mailLocalAddress=back\\5Cslash@example.com)",
        "(mailLocalAddress=\\28paren\\29@example.com)",
    ]


def test_search_base_is_dn_escaped_as_postfix_does(server: slapd.Slapd, tmp_path: Path) -> None:
    spec = _cf(tmp_path, "base", ldapdata.base_params(server.url, **CONFIGS["base"]))
    keys = ["alice,ou=groups@example.com", "a+b@example.com", "#x;y<z>@example.com"]
    start = len(server.bases())
    _compare_searches(server, tmp_path, spec, keys)
    # As slapd logs them (its pretty form escapes "=" in a value too).
    assert server.bases()[start : start + 3] == [
        "uid=alice\\2Cou\\3Dgroups,ou=people,dc=example,dc=com",
        "uid=a\\2Bb,ou=people,dc=example,dc=com",
        "uid=\\23x\\3By\\3Cz\\3E,ou=people,dc=example,dc=com",
    ]


def test_over_the_unix_socket_sasl_and_tls(
    server: slapd.Slapd, ca: trustme.CA, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    cafile.chmod(0o644)
    for name, params in {
        "ldapi": {"server_host": server.ldapi_url},
        "sasl-external": {
            "server_host": server.ldapi_url,
            "bind": "sasl",
            "sasl_mechs": "EXTERNAL",
            "bind_dn": "",
            "bind_pw": "",
        },
        "starttls": {
            "start_tls": "yes",
            "tls_ca_cert_file": str(cafile),
            "tls_require_cert": "yes",
        },
        "ldaps": {
            "server_host": server.ldaps_url,
            "tls_ca_cert_file": str(cafile),
            "tls_require_cert": "yes",
        },
    }.items():
        spec = _cf(tmp_path, name, ldapdata.base_params(server.url, **params))
        _, mine = same_answers(tmp_path, spec, KEYS[:4])
        assert mine.stdout.count("\n") == 4, name


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"expansion_limit": "2", "special_result_attribute": "member"}, "staff@example.com"),
        ({"size_limit": "1", "query_filter": "(mail=*%d)"}, "x@example.com"),
        ({"search_base": "ou=nowhere,dc=example,dc=com"}, "alice@example.com"),
        ({"recursion_limit": "3", "special_result_attribute": "member"}, "loop@example.com"),
        ({"bind_pw": "wrong"}, "alice@example.com"),
    ],
)
def test_failures_as_postmap(
    server: slapd.Slapd, tmp_path: Path, params: dict[str, str], key: str
) -> None:
    """postmap: "fatal: table ...: query error"; map -q: exit 75; the warnings alike."""
    spec = _cf(tmp_path, "fail", ldapdata.base_params(server.url, **params))
    theirs = postmap(tmp_path, spec, [key])
    mine = ours(spec, [key])
    assert theirs.status == 1 and theirs.stdout == ""
    assert theirs.warnings[-1].startswith(f"fatal: table {spec}: query error")
    assert (mine.status, mine.stdout) == (75, "")
    assert mine.warnings[-1].startswith(f"fatal: {spec}: lookup error: ")
    postfix_warnings = [w for w in theirs.warnings if w.startswith("warning: ")]
    ours_warnings = [w for w in mine.warnings if w.startswith("warning: ")]
    # Postfix reconnects once after a failed bind; so does the pool (one server, twice).
    assert ours_warnings == postfix_warnings or ours_warnings == postfix_warnings * 2
