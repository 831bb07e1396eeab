"""SMTPUTF8 decisions (delivery/smtputf8.py): A-labels, when SMTPUTF8 is needed, the verdict."""

from __future__ import annotations

import pytest

from mailcarrier.delivery.smtputf8 import (
    a_label_address,
    envelope_needs_smtputf8,
    smtputf8_envelope,
)
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.protocol.commands import RcptTo
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.protocol.reply import Reply
from mailcarrier.status import DeliveryStatus
from mailcarrier.transport.records import Envelope


def _caps(*keywords: str) -> Capabilities:
    lines = ["mx.example", *keywords]
    return Capabilities.parse(
        Reply(
            250, tuple(f"250{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines))
        )
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("a@example.org", "a@example.org"),
        ("", ""),
        ("a@bücher.example", "a@xn--bcher-kva.example"),
        # UTS #46 maps case in the whole name, as ICU does for Postfix.
        ("a@München.DE", "a@xn--mnchen-3ya.de"),
        # IDNA 2008 (non-transitional): "ß" is a letter of its own, not "ss" (IDNA 2003).
        ("user@faß.de", "user@xn--fa-hia.de"),
        ("a@_25._tcp.bücher.example", "a@_25._tcp.xn--bcher-kva.example"),
        ("jörg@example.org", None),
        ("jörg@bücher.example", None),
        ("a@" + "ü" * 70 + ".example", None),  # label too long for DNS
    ],
)
def test_a_label_address(address: str, expected: str | None) -> None:
    assert a_label_address(address) == expected


def test_envelope_needs_smtputf8_only_for_utf8_local_parts() -> None:
    assert not envelope_needs_smtputf8(["a@example.org", "b@bücher.example"])
    assert envelope_needs_smtputf8(["a@example.org", "jörg@example.org"])
    assert not envelope_needs_smtputf8([""])


def _envelope(sender: str, *rcpts: str) -> Envelope:
    return Envelope(sender, tuple(RcptTo(r, index=i) for i, r in enumerate(rcpts)))


def test_server_with_smtputf8_gets_utf8_as_is() -> None:
    env = _envelope("a@bücher.example", "jörg@example.org")
    out = smtputf8_envelope(env, False, _caps("SMTPUTF8"), "mx[127.0.0.1]")
    assert isinstance(out, Envelope)
    assert out.smtputf8 and out.sender == "a@bücher.example"
    assert out.recipients[0].address == "jörg@example.org"


def test_requested_smtputf8_is_sent_even_for_ascii() -> None:
    out = smtputf8_envelope(_envelope("a@x", "b@y"), True, _caps("SMTPUTF8"), "mx")
    assert isinstance(out, Envelope) and out.smtputf8


def test_ascii_envelope_without_request_needs_nothing() -> None:
    out = smtputf8_envelope(_envelope("a@x", "b@y"), False, _caps("SMTPUTF8"), "mx")
    assert isinstance(out, Envelope) and not out.smtputf8
    out = smtputf8_envelope(_envelope("a@x", "b@y"), False, _caps(), "mx")
    assert isinstance(out, Envelope) and not out.smtputf8


def test_domains_become_a_labels_without_smtputf8() -> None:
    env = _envelope("a@bücher.example", "b@münchen.example", "c@example.org")
    out = smtputf8_envelope(env, False, _caps("8BITMIME"), "mx")
    assert isinstance(out, Envelope) and not out.smtputf8
    assert out.sender == "a@xn--bcher-kva.example"
    assert [r.address for r in out.recipients] == [
        "b@xn--mnchen-3ya.example",
        "c@example.org",
    ]
    assert [r.index for r in out.recipients] == [0, 1]


@pytest.mark.parametrize(
    ("sender", "rcpt"),
    [
        ("a@example.org", "b@example.org"),
        ("jörg@example.org", "b@example.org"),
        ("a@example.org", "jörg@example.org"),
    ],
)
def test_smtputf8_required_but_not_offered(sender: str, rcpt: str) -> None:
    out = smtputf8_envelope(_envelope(sender, rcpt), True, _caps(), "mx.example[192.0.2.1]")
    assert out == Verdict(
        DeliveryStatus.BOUNCED,
        "5.6.7",
        "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. "
        "The last attempted server was mx.example[192.0.2.1]",
    )


@pytest.mark.parametrize(
    ("sender", "rcpt", "wire_sender", "wire_rcpt"),
    [
        ("jörg@bücher.example", "b@example.org", "jörg@xn--bcher-kva.example", "b@example.org"),
        ("a@example.org", "zoë@faß.de", "a@example.org", "zoë@xn--fa-hia.de"),
    ],
)
def test_unrequested_utf8_local_part_goes_as_it_is(
    sender: str, rcpt: str, wire_sender: str, wire_rcpt: str
) -> None:
    """Unflagged (autodetection off for the class of mail): never required, as in Postfix;
    domains in A-labels, the local part as it is."""
    out = smtputf8_envelope(_envelope(sender, rcpt), False, _caps("8BITMIME"), "mx")
    assert isinstance(out, Envelope) and not out.smtputf8
    assert (out.sender, out.recipients[0].address) == (wire_sender, wire_rcpt)
