"""The small directory the LDAP table tests search (tests/support/peers/slapd.py serves it),
and ldap_table(5) files for it.

People under ``ou=people`` (``mailLocalAddress`` is what mail is addressed to,
``mailRoutingAddress`` where it goes, ``mailHost`` the host), some with ``*``, ``(``, ``)``
or ``\\`` in their address and one (``axxb``) that a wildcard would wrongly find; groups
under ``ou=groups``: members by DN (``staff``, with a member that does not exist), by URL
(``dynamic``), a group of groups (``nested``), a group that holds itself (``loop``) and one
delegated to a list host (``delegated``: its ``mailHost`` is terminal); TLS policies under
``ou=policies`` (``mcDomain`` -> ``mcTlsPolicy``, more with `policy_entry`); and
``cn=postfix``, the account the tables bind as (`BIND_DN`, `BIND_PW`). `cf_text(**params)`
writes an ldap_table(5) file, `base_params(url)` the parameters most tests start from.
"""

from __future__ import annotations

from typing import Final

from tests.support.peers.slapd import SUFFIX

BIND_DN: Final = f"cn=postfix,{SUFFIX}"
BIND_PW: Final = "postfix-secret"
PEOPLE: Final = f"ou=people,{SUFFIX}"
GROUPS: Final = f"ou=groups,{SUFFIX}"
POLICIES: Final = f"ou=policies,{SUFFIX}"


def _person(uid: str, locals_: list[str], routing: str = "", host: str = "") -> str:
    lines = [
        f"dn: uid={uid},{PEOPLE}",
        "objectClass: inetOrgPerson",
        "objectClass: inetLocalMailRecipient",
        f"uid: {uid}",
        f"cn: {uid}",
        f"sn: {uid}",
    ]
    lines += [f"mail: {a}" for a in locals_]
    lines += [f"mailLocalAddress: {a}" for a in locals_]
    if routing:
        lines.append(f"mailRoutingAddress: {routing}")
    if host:
        lines.append(f"mailHost: {host}")
    return "\n".join(lines) + "\n"


def _group(cn: str, address: str, members: list[str], extra: list[str] | None = None) -> str:
    lines = [
        f"dn: cn={cn},{GROUPS}",
        "objectClass: groupOfNames",
        "objectClass: inetLocalMailRecipient",
        f"cn: {cn}",
        f"mailLocalAddress: {address}",
    ]
    lines += [f"member: {m}" for m in members]
    lines += extra or []
    return "\n".join(lines) + "\n"


def policy_entry(domain: str, policy: str) -> str:
    return (
        f"dn: cn={domain},{POLICIES}\n"
        "objectClass: mcTlsPolicyEntry\n"
        f"cn: {domain}\n"
        f"mcDomain: {domain}\n"
        f"mcTlsPolicy: {policy}\n"
    )


def _ou(name: str) -> str:
    return f"dn: ou={name},{SUFFIX}\nobjectClass: organizationalUnit\nou: {name}\n"


ALICE: Final = f"uid=alice,{PEOPLE}"
BOB: Final = f"uid=bob,{PEOPLE}"

ENTRIES: Final = [
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
    f"dn: {BIND_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n"
    f"cn: postfix\nuserPassword: {BIND_PW}\n",
    _ou("people"),
    _ou("groups"),
    _ou("policies"),
    _person(
        "alice",
        ["alice@example.com", "ali@example.com"],
        "alice@mail.example.com",
        "mx1.example.com",
    ),
    _person("bob", ["bob@example.com"], "bob@other.example", "mx2.example.com"),
    _person("carol", ["carol@example.com"]),
    _person("star", ["a*b@example.com"], "literal-star@example.com"),
    _person("axxb", ["axxb@example.com"], "wildcard-victim@example.com"),
    _person("paren", ["(paren)@example.com"], "literal-paren@example.com"),
    _person("backslash", ["back\\slash@example.com"], "literal-backslash@example.com"),
    _person("jorg", ["jörg@example.com"], "joerg@mail.example.com"),
    _group(
        "staff",
        "staff@example.com",
        [ALICE, BOB, f"uid=ghost,{PEOPLE}"],
        ["mailRoutingAddress: staff-owner@example.com"],
    ),
    (
        f"dn: cn=dynamic,{GROUPS}\nobjectClass: groupOfURLs\n"
        "objectClass: inetLocalMailRecipient\ncn: dynamic\n"
        "mailLocalAddress: dynamic@example.com\n"
        f"memberURL: ldap:///{PEOPLE}?mailRoutingAddress?one?(uid=b*)\n"
    ),
    _group("nested", "nested@example.com", [f"cn=staff,{GROUPS}"]),
    _group("loop", "loop@example.com", [f"cn=loop,{GROUPS}"]),
    _group("delegated", "delegated@example.com", [ALICE], ["mailHost: lists.example.com"]),
    policy_entry("secure.example", "secure match=mx.secure.example"),
    policy_entry("encrypt.example", "encrypt"),
]
LDIF: Final = "\n".join(ENTRIES)


def cf_text(**params: str) -> str:
    return "".join(f"{name} = {value}\n" for name, value in params.items())


def base_params(url: str, **params: str) -> dict[str, str]:
    """A table of people and groups by mailLocalAddress, LDAPv3, bound as cn=postfix."""
    out = {
        "server_host": url,
        "version": "3",
        "search_base": SUFFIX,
        "query_filter": "(mailLocalAddress=%s)",
        "result_attribute": "mailRoutingAddress",
        "bind": "yes",
        "bind_dn": BIND_DN,
        "bind_pw": BIND_PW,
        "timeout": "5",
    }
    out.update(params)
    return out
