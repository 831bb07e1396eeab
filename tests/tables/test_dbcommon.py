"""Tests for tables/dbcommon.py: query and result templates (db_common.c), quoting, the
expansion limit and the domain filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables import open_table
from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.dbcommon import (
    DomainFilter,
    ExpansionLimit,
    Templates,
    sql_quote_standard,
)


def q(query: str, key: str, result: str = "%s") -> str | None:
    return Templates(query, result, where="t").expand_query(key, sql_quote_standard)


@pytest.mark.parametrize(
    ("query", "key", "expected"),
    [
        ("k='%s'", "User@Example.COM", "k='User@Example.COM'"),
        ("%%s %s", "a", "%s a"),
        ("u='%u' d='%d'", "user@example.com", "u='user' d='example.com'"),
        ("u='%u'", "nodomain", "u='nodomain'"),
        ("u='%u'", "@example.com", None),  # empty local part: suppressed
        ("d='%d'", "nodomain", None),  # no domain: suppressed
        ("d='%d'", "user@", None),
        ("%1.%2.%3", "u@mail.example.com", "com.example.mail"),
        ("%3", "u@example.com", None),  # too few labels
        ("%2", "u@a..com", "a"),  # empty labels do not count (argv_split)
        ("%S/%U/%D", "u@x.org", "u@x.org/u/x.org"),
        ("k='%s'", "", None),
        ("%s is 100%%", "a", "a is 100%"),
        ("%%", "a", "%"),
        ("SELECT 1", "a", "SELECT 1"),
        ("%s%s", "a'b", "a''ba''b"),
    ],
)
def test_query_expansion(query: str, key: str, expected: str | None) -> None:
    assert q(query, key) == expected
    # The check made before a lookup agrees with the expansion (no query, no lookup).
    assert Templates(query, where="t").fills_query(key) is (expected is not None)


@pytest.mark.parametrize("value", ["mx.example.net", "a%b", "'quoted'"])
def test_default_result_format_is_the_value(value: str) -> None:
    assert Templates("k='%s'", where="t").expand_result(value, "key") == value


def test_result_template_uses_upper_case_for_the_key() -> None:
    t = Templates("k='%s'", "smtp:[%s] for %U at %D", where="t")
    assert t.expand_result("mx.example.net", "joe@example.com") == (
        "smtp:[mx.example.net] for joe at example.com"
    )
    # %d in the result: a result without a domain is skipped.
    t = Templates("k='%s'", "%u+x@%d", where="t")
    assert t.expand_result("a@b.c", "k") == "a+x@b.c"
    assert t.expand_result("plain", "k") is None
    assert t.expand_result("", "k") is None


def test_flags_of_both_templates_apply_to_the_query() -> None:
    # %D in result_format needs the key's domain: the query is suppressed without one.
    t = Templates("k='%s'", "%s@%D", where="t")
    assert t.expand_query("nodomain") is None
    assert t.expand_query("a@b.c") == "k='a@b.c'"


@pytest.mark.parametrize("template", ["k='%x'", "%", "a %"])
def test_invalid_template(template: str) -> None:
    with pytest.raises(TableError) as info:
        Templates(template, where="/etc/postfix/x.cf")
    assert str(info.value) == f"/etc/postfix/x.cf: Invalid query template: {template}"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("x' OR '1'='1", "k='x'' OR ''1''=''1'"),
        ("'; DROP TABLE m; --", "k='''; DROP TABLE m; --'"),
        ("a\\'b", "k='a\\''b'"),
    ],
)
def test_injection_attempts_are_quoted(key: str, expected: str) -> None:
    assert q("k='%s'", key) == expected


@given(st.text(max_size=40))
def test_standard_quoting_keeps_the_key_inside_one_literal(key: str) -> None:
    quoted = sql_quote_standard(key)
    # Undoing the doubling gives the key back, and no lone quote is left to end the literal.
    assert quoted.replace("''", "'") == key
    assert "'" not in quoted.replace("''", "")


_label = st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True)


@given(st.from_regex(r"[a-z]{0,5}", fullmatch=True), st.lists(_label, min_size=1, max_size=4))
def test_expansion_of_addresses(local: str, labels: list[str]) -> None:
    domain = ".".join(labels)
    key = f"{local}@{domain}"
    expanded = q("%u|%d|%1", key)
    if not local:
        assert expanded is None
    else:
        assert expanded == f"{local}|{domain}|{labels[-1]}"


def test_expansion_limit() -> None:
    t = Templates("k='%s'", where="t")
    warnings: list[str] = []
    limit = ExpansionLimit(2, "/x.cf")
    assert limit.join(t, ["a", None, "", "b"], "key", warnings.append) == "a,b"
    assert warnings == ['table "t": empty lookup result for: "key" -- ignored']
    with pytest.raises(TableLookupError) as info:
        limit.join(t, ["a", "b", "c"], "key")
    assert str(info.value) == "/x.cf: Expansion limit exceeded for key: 'key'"
    assert ExpansionLimit(0, "/x.cf").join(t, [None], "key") is None


def test_domain_filter() -> None:
    table = open_table("inline:{ listed.example=1 }")
    items = ["example.com", "!bad.example", "listed:table", "bad.example"]
    domains = DomainFilter(items, [None, None, table, None])
    assert domains.matches("u@Example.COM")
    assert not domains.matches("u@bad.example")  # the negation comes first
    assert domains.matches("u@listed.example")
    assert not domains.matches("@example.com")  # empty local part
    assert not domains.matches("example.com")  # no domain
    assert not domains.matches("u@other.example")


# The "plain" fast paths (no %u %d %N in either template, result_format "%s": every
# non-empty key fills the query, one non-empty value is its own result) against the general
# path of the same templates.
_QUERIES = ["k='%s'", "k='%u'", "d='%d'", "%1", "%S/%U", "%%s %s", "k='%s' and 1"]
_RESULTS = ["%s", "%u", "%d", "<%s>", "%S"]
_TEXT = st.text(alphabet="ab@.%' ", max_size=8)


@given(
    st.sampled_from(_QUERIES),
    st.sampled_from(_RESULTS),
    _TEXT,
    st.lists(st.one_of(st.none(), _TEXT), max_size=3),
    st.integers(0, 2),
)
def test_plain_fast_paths_match_the_general_path(
    query: str, result: str, key: str, values: list[str | None], limit: int
) -> None:
    fast = Templates(query, result, where="t")
    general = Templates(query, result, where="t")
    general.plain = False  # the general path, whatever the templates
    assert fast.plain == (query in ("k='%s'", "%%s %s", "k='%s' and 1") and result == "%s")
    assert fast.fills_query(key) == general.fills_query(key)

    def joined(templates: Templates) -> tuple[str | None, str, list[str]]:
        warnings: list[str] = []
        try:
            out = ExpansionLimit(limit, "/x.cf").join(templates, values, key, warnings.append)
        except TableLookupError as exc:
            return None, str(exc), warnings
        return out, "", warnings

    assert joined(fast) == joined(general)
