"""ORCPT of the envelope a transaction sends (delivery/outcome.py), as Postfix derives it."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.outcome import (
    build_envelope,
    mark_replies,
    mark_transaction,
    orcpt_for,
)
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.protocol.reply import Reply
from mailcarrier.transport.records import TransactionResult


@pytest.mark.parametrize(
    ("dsn_orcpt", "orig", "utf8", "expected"),
    [
        ("rfc822;given@example.org", "alias@example.org", True, "rfc822;given@example.org"),
        ("", "alias@example.org", False, "rfc822;alias@example.org"),
        ("", "alias@example.org", True, "rfc822;alias@example.org"),  # ASCII: rfc822
        ("", "zoë@example.org", True, "utf-8;zoë@example.org"),  # RFC 6533
        ("", "zoë@example.org", False, "rfc822;zoë@example.org"),  # SMTPUTF8 not in play
        ("", "a b@example.org", False, 'rfc822;"a b"@example.org'),  # quoted local part
        ("", "", True, ""),
    ],
)
def test_orcpt_for(dsn_orcpt: str, orig: str, utf8: bool, expected: str) -> None:
    assert orcpt_for(dsn_orcpt, orig, utf8=utf8) == expected


def _orcpts(
    sender: str, *recipients: Recipient, smtputf8: bool = False, enable: bool = True
) -> list[str]:
    request = DeliveryRequest(
        queue_id="4ABCDEF123",
        nexthop="[x]",
        sender=sender,
        recipients=recipients,
        content=io.BytesIO(b""),
        smtputf8=smtputf8,
    )
    tracker = RecipientTracker(recipients)
    envelope = build_envelope(request, tracker, tracker.pending(), 0, smtputf8_enable=enable)
    return [r.orcpt for r in envelope.recipients]


def test_build_envelope_derives_orcpt_from_the_original_recipient() -> None:
    got = _orcpts(
        "a@example.org",
        Recipient("b@example.net", orig_address="b-alias@example.net"),
        Recipient("c@example.net", dsn_orcpt="rfc822;given@example.net"),
        Recipient("d@example.net"),
    )
    assert got == ["rfc822;b-alias@example.net", "rfc822;given@example.net", ""]


@pytest.mark.parametrize(
    ("sender", "rcpt", "smtputf8", "kind"),
    [
        ("a@example.org", "b@example.net", False, "rfc822"),
        ("a@example.org", "b@example.net", True, "utf-8"),  # the request flag
        ("jörg@example.org", "b@example.net", False, "utf-8"),  # a UTF-8 sender
        ("a@example.org", "b@bücher.example", False, "utf-8"),  # a UTF-8 recipient
    ],
)
def test_the_utf8_type_follows_postfix_smtputf8_flags(
    sender: str, rcpt: str, smtputf8: bool, kind: str
) -> None:
    """smtp_proto.c: "utf-8" when any SMTPUTF8 flag of the request is set (requested, or a
    UTF-8 sender or recipient) and the original address is not ASCII."""
    got = _orcpts(sender, Recipient(rcpt, orig_address="zoë@example.net"), smtputf8=smtputf8)
    assert got == [f"{kind};zoë@example.net"]


def test_no_utf8_type_with_smtputf8_disabled() -> None:
    got = _orcpts(
        "jörg@example.org", Recipient("b@x", orig_address="zoë@x"), smtputf8=True, enable=False
    )
    assert got == ["rfc822;zoë@x"]


# --- the usual outcome's fast path is the general walk ---------------------------------------

_REPLY_CODES = st.sampled_from([250, 251, 354, 421, 450, 451, 452, 550, 552, 554])


@st.composite
def _results(draw: st.DrawFn) -> tuple[TransactionResult, list[int], bool]:
    """Transactions of every shape, weighted towards the usual one (all accepted)."""
    n = draw(st.integers(1, 4))
    usual = draw(st.booleans())

    def reply(code: int) -> Reply:
        return Reply.make(code, f"{code // 100}.0.0 text {code}")

    def maybe(codes: st.SearchStrategy[int], ok: int) -> Reply | None:
        if usual:
            return reply(ok)
        return draw(st.none() | codes.map(reply))

    result = TransactionResult(
        mail=maybe(_REPLY_CODES, 250),
        rcpt=[maybe(_REPLY_CODES, 250) for _ in range(n)],
        data=maybe(_REPLY_CODES, 354),
        dot=[maybe(_REPLY_CODES, 250)] if usual or draw(st.booleans()) else [],
    )
    pending = sorted(draw(st.sets(st.integers(0, 20), min_size=n, max_size=n)))
    return result, pending, draw(st.booleans())


@given(_results())
def test_fast_path_marks_as_the_general_walk(
    case: tuple[TransactionResult, list[int], bool],
) -> None:
    result, pending, final = case
    fast: list[tuple[int, Verdict]] = []
    general: list[tuple[int, Verdict]] = []
    args = (result, pending, "mx[192.0.2.1]", "mx[192.0.2.1]:25")
    left_fast = mark_transaction(
        *args, lmtp=False, soft_bounce=False, final=final, mark=lambda i, v: fast.append((i, v))
    )
    left_general = mark_replies(
        *args, lmtp=False, soft_bounce=False, final=final, mark=lambda i, v: general.append((i, v))
    )
    assert (fast, left_fast) == (general, left_general)
