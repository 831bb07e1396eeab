"""tls/sts.py: the ``_mta-sts`` TXT record, the policy file and MX patterns (RFC 8461 3.1, 3.2,
4.1), whole and with hypothesis for the policy grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tls.sts import (
    MAX_AGE_LIMIT,
    StsPolicy,
    StsPolicyError,
    StsRecord,
    StsRecordError,
    mx_matches,
    parse_policy,
    select_record,
    valid_mx_pattern,
)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], StsRecord("20160831085700Z")),
        (["v=STSv1;id=abc"], StsRecord("abc")),
        (["v=spf1 -all", "v=STSv1; id=1; ext=value"], StsRecord("1")),
        (["v=spf1 -all"], None),
        ([], None),
    ],
)
def test_select_record(texts: list[str], expected: StsRecord | None) -> None:
    assert select_record(texts) == expected


@pytest.mark.parametrize(
    ("texts", "problem"),
    [
        (["v=STSv1; id=1", "v=STSv1; id=2"], "2 STSv1 records"),
        (["v=STSv1;"], 'no id in record "v=STSv1;"'),
        (["v=STSv1; id=has-dash"], 'malformed id "has-dash" in record "v=STSv1; id=has-dash"'),
        (["v=STSv1; id=" + "a" * 33], 'malformed id "' + "a" * 33 + '"'),
        (["v=STSv1; id=1; id=2"], 'more than one id in record "v=STSv1; id=1; id=2"'),
        (["v=STSv1; junk"], 'malformed field "junk" in record "v=STSv1; junk"'),
        (["v=STSv10; id=1"], 'malformed record "v=STSv10; id=1"'),
    ],
)
def test_malformed_records(texts: list[str], problem: str) -> None:
    with pytest.raises(StsRecordError) as info:
        select_record(texts)
    assert str(info.value).startswith(problem)


def test_parse_policy_with_crlf_lf_and_unknown_keys() -> None:
    body = (
        b"version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmx: *.Example.NET\n"
        b"future_key: whatever\nmax_age: 604800\r\n"
    )
    assert parse_policy(body) == StsPolicy("enforce", ("mail.example.com", "*.example.net"), 604800)


def test_none_mode_needs_no_mx() -> None:
    assert parse_policy(b"version: STSv1\nmode: none\nmax_age: 0\n") == StsPolicy("none", (), 0)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"mode: enforce\nmax_age: 1\nmx: a.test\n", "no version field"),
        (b"version: STSv2\nmode: enforce\nmax_age: 1\nmx: a.test\n", 'unknown version "STSv2"'),
        (b"version: STSv1\nmax_age: 1\nmx: a.test\n", "no mode field"),
        (b"version: STSv1\nmode: strict\nmax_age: 1\nmx: a.test\n", 'unknown mode "strict"'),
        (b"version: STSv1\nmode: enforce\nmx: a.test\n", "no max_age field"),
        (b"version: STSv1\nmode: enforce\nmax_age: -1\nmx: a.test\n", 'bad max_age "-1"'),
        (
            b"version: STSv1\nmode: enforce\nmax_age: 31557601\nmx: a.test\n",
            'bad max_age "31557601"',
        ),
        (b"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a*.test\n", 'bad mx pattern "a*.test"'),
        (b"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *.test\n", 'bad mx pattern "*.test"'),
        (b"version: STSv1\nmode: testing\nmax_age: 1\n", "no mx field in testing mode"),
        (b"version: STSv1\ngarbage line\n", 'line 2: malformed "garbage line"'),
        (b"version: STSv1\n\xff\n", "policy is not UTF-8 text"),
    ],
)
def test_bad_policies(body: bytes, problem: str) -> None:
    with pytest.raises(StsPolicyError) as info:
        parse_policy(body)
    assert str(info.value) == problem


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.example.com", "MAIL.example.com.", True),
        ("*.example.com", "mx.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("mail.example.com", "mx.example.com", False),
        ("*.", "a.", False),
    ],
)
def test_mx_matches(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [("a.b", True), ("*.a.b", True), ("*.b", False), ("a..b", False), ("-a.b", False), ("", False)],
)
def test_valid_mx_pattern(pattern: str, valid: bool) -> None:
    assert valid_mx_pattern(pattern) is valid


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_HOST = st.lists(_LABEL, min_size=2, max_size=4).map(".".join)


@given(
    mode=st.sampled_from(["enforce", "testing"]),
    mx=st.lists(st.one_of(_HOST, _HOST.map(lambda h: "*." + h)), min_size=1, max_size=4),
    max_age=st.integers(0, MAX_AGE_LIMIT),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_written_policies_read_back(mode: str, mx: list[str], max_age: int, newline: str) -> None:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    policy = parse_policy(newline.join(lines).encode())
    assert policy == StsPolicy(mode, tuple(mx), max_age)
    for pattern in mx:
        host = pattern.replace("*", "mx", 1)
        assert mx_matches(pattern, host)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_policy_or_one_error(body: bytes) -> None:
    try:
        parse_policy(body)
    except StsPolicyError as exc:
        assert "\n" not in str(exc)
