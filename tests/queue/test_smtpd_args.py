"""queue/smtpd_args.py: MAIL FROM and RCPT TO arguments as smtpd(8) reads them, with the
replies Postfix gives to bad ones; xtext values decoded (hypothesis: whatever xtext_encode
writes, the server reads back)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.notify import Notify
from mailcarrier.protocol.commands import xtext_encode
from mailcarrier.queue.smtpd_args import (
    MailOptions,
    Refusal,
    mail_options,
    parse_path,
    rcpt_options,
)
from mailcarrier.queue.submit import RecipientDSN

SYNTAX = "501 5.5.4 Syntax: MAIL FROM:<address>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM:<a@example.org>", ("a@example.org", [])),
        (
            "from: <a@example.org> SIZE=10 BODY=8BITMIME",
            ("a@example.org", ["SIZE=10", "BODY=8BITMIME"]),
        ),
        ("FROM:<>", ("", [])),
        ("FROM:a@example.org", ("a@example.org", [])),  # strict_rfc821_envelopes = no
        ('FROM:<"odd>local"@example.org>', ('"odd>local"@example.org', [])),
    ],
)
def test_parse_path(text: str, expected: tuple[str, list[str]]) -> None:
    assert parse_path("FROM", text, SYNTAX) == expected


@pytest.mark.parametrize("text", ["", "FROM", "TO:<a@b>", "FROM:<a@b", "FROM:<a@b>X=1", "FROM:"])
def test_parse_path_syntax_errors(text: str) -> None:
    with pytest.raises(Refusal) as caught:
        parse_path("FROM", text, SYNTAX)
    assert caught.value.reply == SYNTAX


def test_mail_options() -> None:
    words = ["SIZE=100", "body=8bitmime", "RET=hdrs", "ENVID=a+2Bb", "SMTPUTF8", "AUTH=<>"]
    assert mail_options(words, size_limit=1000, smtputf8_enable=True) == MailOptions(
        100, "8BITMIME", "HDRS", "a+b", True
    )


@pytest.mark.parametrize(
    ("word", "reply"),
    [
        ("SIZE=2000", "552 5.3.4 Message size exceeds fixed limit"),
        ("SIZE=x", "501 5.5.4 Bad message size syntax"),
        ("BODY=BINARYMIME", "501 5.5.4 Unsupported BODY parameter"),
        ("RET=SOME", "501 5.5.4 Bad RET parameter syntax"),
        ("ENVID=a+zz", "501 5.5.4 Error: Bad ENVID parameter syntax"),
        ("SMTPUTF8", "555 5.5.4 Unsupported option: SMTPUTF8"),  # smtputf8_enable = no
        ("XYZ=1", "555 5.5.4 Unsupported option: XYZ=1"),
    ],
)
def test_mail_option_refusals(word: str, reply: str) -> None:
    with pytest.raises(Refusal) as caught:
        mail_options([word], size_limit=1000, smtputf8_enable=False)
    assert caught.value.reply == reply


def test_rcpt_options() -> None:
    words = ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a+2Bb@example.org"]
    assert rcpt_options(words) == RecipientDSN(
        Notify.SUCCESS | Notify.FAILURE, "rfc822;a+b@example.org"
    )


@pytest.mark.parametrize(
    ("word", "reply"),
    [
        ("NOTIFY=NEVER,SUCCESS", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("ORCPT=rfc822", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;a+0Ab", "501 5.5.4 Error: Bad ORCPT parameter syntax"),  # a line break
        ("FOO", "555 5.5.4 Unsupported option: FOO"),
    ],
)
def test_rcpt_option_refusals(word: str, reply: str) -> None:
    with pytest.raises(Refusal) as caught:
        rcpt_options([word])
    assert caught.value.reply == reply


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=100))
def test_envid_xtext_round_trip(envid: str) -> None:
    words = [f"ENVID={xtext_encode(envid)}"]
    assert mail_options(words, size_limit=0, smtputf8_enable=True).envid == envid
