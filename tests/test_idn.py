"""The one IDNA conversion (idn.py): UTS #46 non-transitional, as Postfix's
midna_domain_to_ascii() asks ICU for it, and not Python's IDNA 2003 codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.idn import address_to_ascii, domain_to_ascii, valid_hostname


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # IDNA 2008: "ß" is a letter of its own (IDNA 2003, str.encode("idna"), gives fass.de).
        ("faß.de", "xn--fa-hia.de"),
        ("bücher.example", "xn--bcher-kva.example"),
        # UTS #46 maps case and width in the whole name, and the ideographic full stop.
        ("FAß.DE", "xn--fa-hia.de"),
        ("München.DE", "xn--mnchen-3ya.de"),
        ("\uff26\uff21\u00df\u3002\uff24\uff25", "xn--fa-hia.de"),  # full-width FAß.DE
        # ASCII labels of a non-ASCII name may hold "_" (no STD3 rules), as SRV and TLSA names.
        ("_25._tcp.bücher.example", "_25._tcp.xn--bcher-kva.example"),
        ("xn--fa-hia.bücher.example", "xn--fa-hia.xn--bcher-kva.example"),
        ("faß.de.", "xn--fa-hia.de."),
        # ASCII names are not touched (Postfix converts only names that are not all ASCII).
        ("Example.COM", "Example.COM"),
        ("a_b.example", "a_b.example"),
        ("", ""),
    ],
)
def test_domain_to_ascii(name: str, expected: str) -> None:
    assert domain_to_ascii(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "ü" * 70 + ".example",  # a label over 63 octets
        "faß..de",  # an empty label
        "xn--zz.bücher.example",  # a bad A-label
        "ab--c.bücher.example",  # "--" in the 3rd and 4th place (UTS #46 CheckHyphens)
        "-faß.de",  # a leading hyphen
        "a\u200db.bücher.example",  # ZERO WIDTH JOINER out of context (IDNA 2008)
        "fa\u00dfe\ufffd.de",  # a disallowed code point
    ],
)
def test_domain_to_ascii_refuses(name: str) -> None:
    assert domain_to_ascii(name) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("user@faß.de", "user@xn--fa-hia.de"),
        ("jörg@bücher.example", "jörg@xn--bcher-kva.example"),  # the local part as it is
        ("a@example.org", "a@example.org"),
        ("postmaster", "postmaster"),
        ("a@" + "ü" * 70 + ".example", None),
    ],
)
def test_address_to_ascii(address: str, expected: str | None) -> None:
    assert address_to_ascii(address) == expected


@given(st.text(alphabet=st.sampled_from("aßüö-._1xnAÉ。"), min_size=1, max_size=30))
def test_a_result_is_a_valid_ascii_host_name_and_converts_to_itself(name: str) -> None:
    result = domain_to_ascii(name)
    if result is None or name.isascii():
        return
    assert result.isascii()
    assert valid_hostname(result.removesuffix("."))
    assert domain_to_ascii(result) == result
