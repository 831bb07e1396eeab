"""Tests of mailcarrier.stages: each stage's Postfix phrases.

Diagnostics are read by people and by log tools, so the phrases must be Postfix's own:
"lost connection with h[a] while sending RCPT TO", "(in reply to end of DATA command)".
Each stage's time limit is the transport's (tests/transport/test_options.py).
"""

from __future__ import annotations

import pytest

from mailcarrier.protocol import stages as protocol_stages
from mailcarrier.protocol.commands import (
    Auth,
    Command,
    Data,
    DataEnd,
    Ehlo,
    Helo,
    Lhlo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTls,
)
from mailcarrier.stages import Stage


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.name)
def test_every_stage_has_a_while_phrase(stage: Stage) -> None:
    assert stage.while_phrase
    assert stage.while_phrase == stage.while_phrase.strip()
    assert not stage.while_phrase.startswith("while")  # callers write "while <phrase>"


@pytest.mark.parametrize(
    ("stage", "phrase"),
    [
        (Stage.MAIL, "MAIL FROM command"),
        (Stage.RCPT, "RCPT TO command"),
        (Stage.DATA, "DATA command"),
        (Stage.DOT, "end of DATA command"),
        (Stage.EHLO, "EHLO command"),
        (Stage.HELO, "HELO command"),
        (Stage.LHLO, "LHLO command"),
        (Stage.STARTTLS, "STARTTLS command"),
        (Stage.RSET, "RSET command"),
        (Stage.QUIT, "QUIT command"),
        (Stage.XFORWARD, "XFORWARD command"),
    ],
)
def test_command_phrases_match_postfix(stage: Stage, phrase: str) -> None:
    assert stage.command_phrase == phrase


@pytest.mark.parametrize(
    ("stage", "phrase"),
    [
        (Stage.GREETING, "receiving the initial server greeting"),
        (Stage.EHLO, "performing the EHLO handshake"),
        (Stage.HELO, "performing the HELO handshake"),
        (Stage.LHLO, "performing the LHLO handshake"),
        (Stage.MAIL, "sending MAIL FROM"),
        (Stage.RCPT, "sending RCPT TO"),
        (Stage.DATA, "sending DATA command"),
        (Stage.BODY, "sending message body"),
        (Stage.DOT, "sending end of data -- message may be sent more than once"),
        (Stage.RSET, "sending RSET"),
        (Stage.QUIT, "sending QUIT"),
    ],
)
def test_while_phrases_match_postfix(stage: Stage, phrase: str) -> None:
    assert stage.while_phrase == phrase


@pytest.mark.parametrize("stage", [Stage.CONNECT, Stage.GREETING, Stage.BODY], ids=lambda s: s.name)
def test_stages_without_a_command_have_no_command_phrase(stage: Stage) -> None:
    assert stage.command_phrase == ""


@pytest.mark.parametrize(
    "command",
    [
        Ehlo("c"),
        Helo("c"),
        Lhlo("c"),
        StartTls(),
        Auth("PLAIN"),
        MailFrom("a@x"),
        RcptTo("b@x"),
        Data(),
        DataEnd(),
        Rset(),
        Noop(),
        Quit(),
    ],
    ids=lambda c: type(c).__name__,
)
def test_every_command_can_be_named_in_a_diagnostic(command: Command) -> None:
    assert command.stage.command_phrase.endswith(" command")
    assert command.stage.while_phrase


def test_stages_are_distinct_members() -> None:
    """No two stages share their phrases (an Enum would make such members aliases)."""
    assert len({(s.while_phrase, s.command_phrase) for s in Stage}) == len(Stage) == 17


def test_protocol_stages_is_the_same_table() -> None:
    """protocol/stages.py re-exports the one class that errors.py types TransportError with."""
    assert protocol_stages.Stage is Stage
