"""ldapconf.py: ldap_table(5) parameters as dict_ldap_open() reads them, Postfix's warnings,
malformed values, LDAP URLs, and the quoting of keys in filters (RFC 4515) and DNs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.ldapconf import (
    LdapServer,
    LdapUrl,
    dn_quote,
    filter_quote,
    ldap_options,
    parse_ldap_url,
)
from mailcarrier.tables.ldapsearch import attrdesc_subtype


def config(text: str, name: str = "/etc/postfix/ldap.cf") -> TableConfig:
    return TableConfig.from_text(text, name)


def test_defaults() -> None:
    options, warnings = ldap_options(config(""))
    assert warnings == []
    assert options.servers == (LdapServer("ldap://localhost:389", "ldap", "localhost", 389),)
    assert (options.version, options.timeout, options.scope) == (2, 10, "SUBTREE")
    assert options.query_filter == "(mailacceptinggeneralid=%s)"
    assert (options.search_base, options.result_format) == ("", "%s")
    assert options.attributes == ("maildrop",)
    assert (options.bind, options.bind_dn, options.bind_pw) == ("simple", "", "")
    assert (options.recursion_limit, options.expansion_limit, options.size_limit) == (1000, 0, 0)
    assert (options.dereference, options.chase_referrals, options.start_tls) == (0, False, False)


def test_servers() -> None:
    text = (
        "server_host = ldap.example.com, ldap2.example.com:1389\n"
        "  ldap://[::1]:2389 ldaps://secure.example.com ldapi://%2Frun%2Fslapd%2Fldapi\n"
        "server_port = 3389\nversion = 3\n"
    )
    options, warnings = ldap_options(config(text))
    assert options.servers == (
        LdapServer("ldap://ldap.example.com:3389", "ldap", "ldap.example.com", 3389),
        LdapServer("ldap://ldap2.example.com:1389", "ldap", "ldap2.example.com", 1389),
        LdapServer("ldap://[::1]:2389", "ldap", "::1", 2389),
        LdapServer("ldaps://secure.example.com", "ldaps", "secure.example.com", 636),
        LdapServer("ldapi://%2Frun%2Fslapd%2Fldapi", "ldapi", path="/run/slapd/ldapi"),
    )
    assert warnings == []
    assert options.uses_tls


def test_warnings_as_postfix() -> None:
    text = (
        "server_host = ldaps://h bad:port\nscope = sideways\ndereference = 7\n"
        "cache = yes\ncache_size = 100\nstart_tls = yes\nversion = 4\n"
    )
    options, warnings = ldap_options(config(text))
    assert warnings == [
        "dict_ldap_open: /etc/postfix/ldap.cf Unknown version 4, using 2.",
        "dict_ldap_open: URL scheme ldaps requires protocol version 3",
        "dict_ldap_open: error parsing URL ldap://bad:port: Bad URL; skipping",
        "dict_ldap_open: /etc/postfix/ldap.cf: Unrecognized value sideways specified for "
        "scope; using sub",
        "dict_ldap_open: /etc/postfix/ldap.cf ignoring cache",
        "dict_ldap_open: /etc/postfix/ldap.cf ignoring cache_size",
        "dict_ldap_open: /etc/postfix/ldap.cf Unrecognized value 7 specified for "
        "dereference; using 0",
    ]
    assert (options.version, options.scope, options.dereference) == (3, "SUBTREE", 0)
    assert [s.url for s in options.servers] == ["ldaps://h"]


def test_start_tls_needs_version_3() -> None:
    options, warnings = ldap_options(config("start_tls = yes\n"))
    assert options.version == 3
    assert warnings == [
        "dict_ldap_open: /etc/postfix/ldap.cf start_tls requires protocol version 3"
    ]


def test_attribute_lists_in_postfix_order() -> None:
    text = (
        "result_attribute = mail, mailRoutingAddress\nspecial_result_attribute = member\n"
        "terminal_result_attribute = maildrop\nleaf_result_attribute = mailbox other\n"
    )
    options, _ = ldap_options(config(text))
    assert options.attributes == (
        "maildrop",
        "mailbox",
        "other",
        "mail",
        "mailRoutingAddress",
        "member",
    )
    assert (options.num_terminal, options.num_leaf, options.num_attributes) == (1, 2, 5)


def test_bind_words_and_result_filter() -> None:
    for word, bind in (("no", "none"), ("none", "none"), ("yes", "simple"), ("Simple", "simple")):
        assert ldap_options(config(f"bind = {word}\n"))[0].bind == bind
    assert ldap_options(config("result_filter = <%s>\n"))[0].result_format == "<%s>"
    both = config("result_filter = <%s>\nresult_format = [%s]\n")
    assert ldap_options(both)[0].result_format == "[%s]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bind = maybe\n", "/etc/postfix/ldap.cf:1: unsupported parameter value: bind = maybe"),
        ("timeout = soon\n", "/etc/postfix/ldap.cf:1: bad numerical configuration: timeout = soon"),
        (
            "recursion_limit = 0\n",
            "/etc/postfix/ldap.cf:1: invalid recursion_limit parameter value 0 < 1",
        ),
        (
            "start_tls = maybe\n",
            "/etc/postfix/ldap.cf:1: bad boolean configuration: start_tls = maybe",
        ),
        ("server_host = bad:port\n", "/etc/postfix/ldap.cf:1: no usable server_host"),
    ],
)
def test_malformed_values(text: str, message: str) -> None:
    with pytest.raises(TableError) as caught:
        ldap_options(config(text))
    assert str(caught.value) == message
    assert caught.value.parameter == text.split(" ", 1)[0]


def test_main_cf_style_names_its_parameters() -> None:
    values = {"ldapsource_bind": "maybe"}
    cfg = TableConfig.from_main_cf("ldapsource", values.get, ["bind"])
    with pytest.raises(TableError) as caught:
        ldap_options(cfg)
    assert caught.value.parameter == "ldapsource_bind"
    assert str(caught.value) == "ldapsource: unsupported parameter value: bind = maybe"


def test_filter_and_dn_quoting() -> None:
    assert filter_quote("a*b(c)d\\e\0f") == "a\\2Ab\\28c\\29d\\5Ce\\00f"
    assert filter_quote("jörg@example.com") == "jörg@example.com"  # bytes >= 0x80 kept
    assert dn_quote(' a"#+,;<>\\\tb') == "\\20a\\22\\23\\2B\\2C\\3B\\3C\\3E\\5C\\09b"
    assert dn_quote("a=b") == "a=b"  # as rfc2253_quote(): only these characters


@given(st.text(max_size=40))
def test_a_quoted_key_cannot_change_a_filter(key: str) -> None:
    quoted = filter_quote(key)
    assert not any(c in quoted for c in "*()\0")
    # Every backslash starts one of the escapes, and they undo to the key.
    undone = quoted
    for char in "*()\0":
        undone = undone.replace(f"\\{ord(char):02X}", char)
    assert undone.replace("\\5C", "\\") == key


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("uid=alice,dc=example,dc=com", None),
        (
            "ldap:///ou=people,dc=x?mail?one?(uid=b*)",
            LdapUrl("ou=people,dc=x", ("mail",), "LEVEL", "(uid=b*)"),
        ),
        ("<URL:LDAP://host/dc=x>", LdapUrl("dc=x", (), "BASE", "(objectClass=*)")),
        ("ldaps://h:636/dc=x?a,b?sub", LdapUrl("dc=x", ("a", "b"), "SUBTREE", "(objectClass=*)")),
        ("ldap:///o=a%20b??base?(cn=%2A)", LdapUrl("o=a b", (), "BASE", "(cn=*)")),
    ],
)
def test_ldap_urls(text: str, url: LdapUrl | None) -> None:
    assert parse_ldap_url(text) == url


@pytest.mark.parametrize("text", ["ldap:///dc=x??sideways", "ldap:///a?b?base?c?d?e"])
def test_malformed_urls(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ldap_url(text)


def test_attribute_descriptions() -> None:
    assert attrdesc_subtype("mail", "MAIL") == 1
    assert attrdesc_subtype("mail", "mail;lang-en") == 1
    assert attrdesc_subtype("mail;lang-en", "mail") == -1
    assert attrdesc_subtype("mail", "mailHost") == 0
    assert attrdesc_subtype("mail;x", "mail;y") == 0


def test_config_file_line_numbers(tmp_path: Path) -> None:
    cf = tmp_path / "x.cf"
    cf.write_text("# comment\nserver_host = h\n\ntimeout =\n  later\n")
    with pytest.raises(TableError) as caught:
        ldap_options(TableConfig.from_file(cf))
    assert str(caught.value) == f"{cf}:4: bad numerical configuration: timeout = later"
