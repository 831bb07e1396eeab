"""printable.py: Postfix's printable() on str, and JSON-safe strings.

The cases of Postfix's own test (util/printable.c) are here byte for byte: the input bytes
are decoded as the program decodes text from outside (surrogateescape: one lone surrogate per
invalid byte), and the expected output is Postfix's with each ``?`` one replaced byte.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.printable import json_safe, printable

# (input bytes, Postfix's output with util_utf8_enable = 1), from util/printable.c.
POSTFIX_CASES = [
    (b"printable", b"printable"),
    (b"non\bn-printable", b"non?n-printable"),
    (b"na\303\257ve", b"na\303\257ve"),
    (b"na\303ve", b"na?ve"),
    (
        b"\320\262\320\270\320\272\321\202\320\276\321\200",
        b"\320\262\320\270\320\272\321\202\320\276\321\200",
    ),
    (
        b"\320\262\320\320\272\272\321\202\320\276\321\200",
        b"\320\262?\320\272?\321\202\320\276\321\200",
    ),
    (
        b"\327\225\231\327\247\327\230\327\225\326\274\327\250",
        b"\327\225?\327\247\327\230\327\225\326\274\327\250",
    ),
    (
        b"\344\270\255\345\344\272\222\350\224\347\275\221\347"
        b"\273\234\345\217\221\345\261\225\347\212\266\345\206\265\347\273"
        b"\237\350\256\241\346\212\245\345",
        b"\344\270\255?\344\272\222??\347\275\221\347"
        b"\273\234\345\217\221\345\261\225\347\212\266\345\206\265\347\273"
        b"\237\350\256\241\346\212\245?",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), POSTFIX_CASES)
def test_postfix_cases(raw: bytes, expected: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    assert printable(text).encode("utf-8") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb", "a??b"),
        ("a\tb", "a?b"),
        ("\x00\x1b[31mred\x7f", "??[31mred?"),
        ("C1 \x85 NEL \x9b CSI", "C1 ? NEL ? CSI"),
        ("line\u2028sep\u2029para", "line?sep?para"),
        ("nbsp\xa0and é ok", "nbsp\xa0and é ok"),
        ("bad \udcff byte", "bad ? byte"),
        ("", ""),
    ],
)
def test_controls_replaced_utf8_kept(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_ascii_only_replaces_each_byte() -> None:
    """smtputf8_enable = no: every non-ASCII byte is replaced, as Postfix replaces bytes."""
    assert printable("naïve\r 中 \udcff", utf8=False) == "na??ve? ??? ?"
    assert printable("plain", utf8=False) == "plain"


def test_other_replacement() -> None:
    assert printable("a\nb", replacement=" ") == "a b"


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200), errors=st.sampled_from(["surrogateescape", "backslashreplace"]))
def test_any_bytes_give_one_printable_line(raw: bytes, errors: str) -> None:
    text = printable(raw.decode("utf-8", errors))
    # One line for every reader: Python's splitlines() knows the most line breaks.
    assert len(text.splitlines()) <= 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
    text.encode("utf-8")  # strict: no lone surrogate is left
    assert printable(text) == text
    ascii_text = printable(raw.decode("utf-8", errors), utf8=False)
    assert all(" " <= c <= "~" for c in ascii_text)


def _no_surrogates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    for key, value in pairs:
        for s in (key, value):
            if isinstance(s, str) and any("\ud800" <= c <= "\udfff" for c in s):
                raise ValueError(f"lone surrogate in {s!r}")
    return dict(pairs)


def test_json_safe_replaces_lone_surrogates() -> None:
    value = {"a\udcff": ["x\udcfe", ("t\ud800",), 1, None, 2.5], "ok": "é\x00\x1b"}
    safe = json_safe(value)
    assert safe == {"a\ufffd": ["x\ufffd", ("t\ufffd",), 1, None, 2.5], "ok": "é\x00\x1b"}
    text = json.dumps(safe)
    assert json.loads(text, object_pairs_hook=_no_surrogates)["ok"] == "é\x00\x1b"
    # Unsafe input would have produced an invalid escape a strict parser refuses.
    with pytest.raises(ValueError, match="lone surrogate"):
        json.loads(json.dumps(value), object_pairs_hook=_no_surrogates)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=100))
def test_json_safe_any_bytes(raw: bytes) -> None:
    text = json.dumps({"v": json_safe(raw.decode("utf-8", "surrogateescape"))})
    json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")  # strict
