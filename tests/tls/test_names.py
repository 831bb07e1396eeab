"""RFC 6125 name matching (tls/names.py)."""

from __future__ import annotations

import pytest
import trustme
from cryptography import x509

from mailcarrier.tls.names import certificate_names, expand_matches, first_match, name_matches
from tests.support.tls import mint_self_signed


@pytest.mark.parametrize(
    ("cert_name", "wanted", "ok"),
    [
        ("mx.example.com", "mx.example.com", True),
        ("MX.Example.COM", "mx.example.com", True),
        ("*.example.com", "mx.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("mx.*.com", "mx.example.com", False),  # wildcard only left-most
        ("m*.example.com", "mx.example.com", False),  # no partial-label wildcards
        ("*.com", "example.com", False),
        ("mx.example.com", ".example.com", True),
        ("example.com", ".example.com", False),
        ("*.example.com", ".example.com", True),
        ("*.sub.example.com", ".example.com", True),
        ("mx.other.com", ".example.com", False),
    ],
)
def test_name_matches(cert_name: str, wanted: str, ok: bool) -> None:
    assert name_matches(cert_name, wanted) is ok


def test_san_wins_over_cn() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("san.example.com", common_name="cn.example.com")
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    assert certificate_names(cert) == ("san.example.com",)
    assert first_match(cert, ("cn.example.com",)) is None


def test_cn_used_without_san() -> None:
    cert = mint_self_signed("cn-only.example.com")[0]
    assert "cn-only.example.com" in certificate_names(cert)


def test_expand_strategies() -> None:
    assert expand_matches(
        ("hostname", "nexthop", "dot-nexthop", "Literal.Example."), "MX.a.b", "a.b"
    ) == (
        "mx.a.b",
        "a.b",
        ".a.b",
        "literal.example",
    )


def test_match_names_are_a_labels() -> None:
    """Certificates carry A-labels (RFC 6125 6.4.2): a UTF-8 next hop is matched in the
    A-label form its DNS lookup used (IDNA 2008, not Python's IDNA 2003 "fass.de")."""
    assert expand_matches(
        ("hostname", "nexthop", "dot-nexthop", ".Bücher.Example", "."),
        "mx.faß.de",
        "FAß.de",
    ) == ("mx.xn--fa-hia.de", "xn--fa-hia.de", ".xn--fa-hia.de", ".xn--bcher-kva.example")
    assert name_matches("*.xn--fa-hia.de", expand_matches(("hostname",), "mx.faß.de", "x")[0])
