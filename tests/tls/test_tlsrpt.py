"""tls/tlsrpt.py: the ``_smtp._tls`` record (RFC 8460 3) and the result types (4.3); and the
counting store delivery/tlsrpt_store.py, which keeps its counts across reopening."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.tls.tlsrpt import (
    RESULT_TYPES,
    Attempt,
    check_result_type,
    parse_record,
    problem_result_type,
)
from mailcarrier.tls.verify import HOSTNAME_MISMATCH, NO_TLSA_MATCH, PeerCheck, Trust


@pytest.mark.parametrize(
    ("text", "uris"),
    [
        ("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", ("mailto:tlsrpt@example.com",)),
        (
            "v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/v1",
            ("mailto:a@example.com", "https://r.example.com/v1"),
        ),
        ("v=TLSRPTv1; rua=https://r.example.com/; ext=1", ("https://r.example.com/",)),
        ("v=TLSRPTv2; rua=mailto:a@example.com", None),
        ("rua=mailto:a@example.com; v=TLSRPTv1", None),
        ("v=TLSRPTv1", None),
        ("v=TLSRPTv1; rua=ftp://example.com/", None),
        ("v=STSv1; id=1", None),
    ],
)
def test_parse_record(text: str, uris: tuple[str, ...] | None) -> None:
    assert parse_record(text) == uris


@given(st.text(max_size=80))
def test_parse_record_never_raises(text: str) -> None:
    found = parse_record(text)
    assert found is None or all(u.lower().startswith(("mailto:", "https:")) for u in found)


@pytest.mark.parametrize(
    ("check", "dane", "result"),
    [
        (
            PeerCheck(Trust.UNTRUSTED, False, False, "certificate has expired"),
            False,
            "certificate-expired",
        ),
        (
            PeerCheck(Trust.TRUSTED, True, False, HOSTNAME_MISMATCH),
            False,
            "certificate-host-mismatch",
        ),
        (
            PeerCheck(Trust.UNTRUSTED, False, False, "self-signed certificate"),
            False,
            "certificate-not-trusted",
        ),
        (PeerCheck(Trust.UNTRUSTED, False, False, NO_TLSA_MATCH), True, "validation-failure"),
    ],
)
def test_check_result_type(check: PeerCheck, dane: bool, result: str) -> None:
    assert check_result_type(check, dane=dane) == result
    assert result in RESULT_TYPES


def test_problem_result_type() -> None:
    assert problem_result_type("STARTTLS was not offered") == "starttls-not-supported"
    assert problem_result_type(f"certificate verification failed: {HOSTNAME_MISMATCH}") == (
        "certificate-host-mismatch"
    )
    assert problem_result_type("TLSv1.1 is older than TLSv1.2") == "validation-failure"


def test_store_counts_survive_reopening(tmp_path: Path) -> None:
    ok = Attempt("2026-12-01", "example.com", "sts", ("version: STSv1",), ("*.example.com",))
    bad = Attempt("2026-12-01", "example.com", "tlsa", ("3 1 1 ab",), (), "validation-failure")
    other_day = Attempt("2026-12-02", "example.com", "no-policy-found")
    store = TlsrptStore(tmp_path)
    assert store.days() == [] and store.rows("2026-12-01") == []
    store.record(ok)
    store.record(ok)
    store.record(bad, 3)
    store.record(other_day)
    store.close()
    again = TlsrptStore(tmp_path)
    assert again.days() == ["2026-12-01", "2026-12-02"]
    assert again.rows("2026-12-01") == [(ok, 2), (bad, 3)]
    again.forget("2026-12-01")
    assert again.days() == ["2026-12-02"]
