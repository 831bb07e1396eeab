"""Submission: headers, recipients from headers, Bcc removal, dots, bad input."""

from __future__ import annotations

import email
import email.policy
import email.utils
import io
import os
from pathlib import Path

import pytest

from mailcarrier.errors import DataError
from mailcarrier.notify import Notify
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from tests.queue.helpers import spool
from tests.support.settings import queue_settings


def _submit(tmp_path: Path, data: bytes, **kw: object) -> tuple[Spool, str]:
    sp = spool(tmp_path)
    opts = SubmitOptions(**kw)  # type: ignore[arg-type]
    queue_id = submit_stream(io.BytesIO(data), opts, settings=queue_settings(tmp_path), spool=sp)
    return sp, queue_id


def _content(sp: Spool, queue_id: str) -> bytes:
    msg = sp.read("incoming", queue_id)
    with open(msg.path, "rb") as f:
        f.seek(msg.envelope.content_offset)
        return f.read(msg.envelope.size)


def test_recipients_from_headers_and_bcc_removed(tmp_path: Path) -> None:
    data = (
        b"To: A <a@example.net>, b@example.net\nCc: c@example.net\nBcc: hidden@example.net\n\nhi\n"
    )
    sp, qid = _submit(
        tmp_path,
        data,
        sender="s@example.org",
        recipients=("x@example.net",),
        extract_recipients=True,
    )
    env = sp.read("incoming", qid).envelope
    assert [r.address for r in env.recipients] == [
        "x@example.net",
        "a@example.net",
        "b@example.net",
        "c@example.net",
        "hidden@example.net",
    ]
    body = _content(sp, qid)
    assert b"Bcc" not in body and b"hidden" not in body
    assert (
        b"\nDate: " in body
        and b"Message-Id: <" in body
        and body.startswith(b"From: <s@example.org>")
    )


def test_resent_headers_win_with_t(tmp_path: Path) -> None:
    data = b"To: old@example.net\nResent-To: new@example.net\n\nhi\n"
    sp, qid = _submit(tmp_path, data, sender="s@example.org", extract_recipients=True)
    assert [r.address for r in sp.read("incoming", qid).envelope.recipients] == ["new@example.net"]


def test_lone_dot_ends_input_unless_ignore_dots(tmp_path: Path) -> None:
    data = b"Subject: x\n\nline\n.\nafter\n"
    sp, qid = _submit(
        tmp_path, data, sender="s@example.org", recipients=("r@example.net",), ignore_dots=False
    )
    assert _content(sp, qid).endswith(b"\nline\n")
    sp, qid = _submit(
        tmp_path / "2",
        data,
        sender="s@example.org",
        recipients=("r@example.net",),
        ignore_dots=True,
    )
    assert _content(sp, qid).endswith(b"\nline\n.\nafter\n")


def test_envelope_options_and_qualification(tmp_path: Path) -> None:
    data = "Subject: é\n\nbody é\n".encode()
    sp, qid = _submit(
        tmp_path,
        data,
        sender="",
        recipients=("postmaster",),
        full_name="Full Name",
        notify=Notify.SUCCESS,
        ret="HDRS",
        envid="E1",
    )
    env = sp.read("incoming", qid).envelope
    assert env.sender == ""
    assert env.recipients[0].address == "postmaster@example.org"
    assert env.recipients[0].dsn_notify == Notify.SUCCESS
    assert (env.dsn_ret, env.dsn_envid, env.encoding) == ("HDRS", "E1", "8bit")


def test_full_name_in_added_from(tmp_path: Path) -> None:
    sp, qid = _submit(
        tmp_path,
        b"\nbody\n",
        sender="s@example.org",
        recipients=("r@example.net",),
        full_name="Sam Sender",
    )
    assert _content(sp, qid).startswith(b"From: Sam Sender <s@example.org>\n")


@pytest.mark.parametrize(
    ("data", "kw"),
    [
        (b"Subject: x\n\nhi\n", {"recipients": ("bad address@example.net",)}),
        (b"Subject: x\n\nhi\n", {"recipients": ("a@b@c",)}),
        (
            b"Subject: x\n\nhi\n",
            {"recipients": ("r@example.net",), "sender": "no spaces allowed@x"},
        ),
        (b"Subject: x\nthis is not a header\n\nhi\n", {"recipients": ("r@example.net",)}),
        (b"To: <unterminated\n\nhi\n", {"extract_recipients": True}),
        (b"Subject: x\n\nhi\n", {"extract_recipients": True}),
    ],
)
def test_bad_input_queues_nothing(tmp_path: Path, data: bytes, kw: dict[str, object]) -> None:
    kw.setdefault("sender", "s@example.org")
    with pytest.raises(DataError):
        _submit(tmp_path, data, **kw)
    assert os.listdir(tmp_path / "incoming") == []


def test_message_size_limit(tmp_path: Path) -> None:
    sp = spool(tmp_path)
    cfg = queue_settings(tmp_path, message_size_limit="100")
    opts = SubmitOptions(sender="s@example.org", recipients=("r@example.net",))
    with pytest.raises(DataError, match="too big"):
        submit_stream(io.BytesIO(b"\n" + b"x" * 200), opts, settings=cfg, spool=sp)
    assert os.listdir(tmp_path / "incoming") == []


@pytest.mark.parametrize(
    ("sender", "rcpt", "data", "expected"),
    [
        ("s@example.org", "r@example.net", b"Subject: hi\n\nb\xc3\xbcdy\n", False),
        ("s@b\u00fccher.example", "r@m\u00fcnchen.example", b"From: s\nSubject: hi\n\nx\n", False),
        # The From: that submission adds holds the UTF-8 domain: a UTF-8 header (as cleanup's).
        ("s@b\u00fccher.example", "r@m\u00fcnchen.example", b"Subject: hi\n\nx\n", True),
        ("j\u00f6rg@example.org", "r@example.net", b"Subject: hi\n\nx\n", True),
        ("s@example.org", "z\u00f6e@example.net", b"Subject: hi\n\nx\n", True),
        ("s@example.org", "r@example.net", "Subject: gr\u00fc\u00dfe\n\nx\n".encode(), True),
    ],
)
def test_smtputf8_flag(tmp_path: Path, sender: str, rcpt: str, data: bytes, expected: bool) -> None:
    # RFC 6531 3.4 / RFC 6532 3.7: UTF-8 local parts and headers need SMTPUTF8; UTF-8
    # domains alone do not (the client can send them as A-labels).
    sp, qid = _submit(tmp_path, data, sender=sender, recipients=(rcpt,))
    assert sp.read("incoming", qid).envelope.smtputf8 is expected


def _header_fields(content: bytes) -> list[tuple[str, str]]:
    msg = email.message_from_bytes(content, policy=email.policy.compat32)
    return [(name, str(value)) for name, value in msg.items()]


@pytest.mark.parametrize(
    ("full_name", "from_line"),
    [
        (
            "Sam\r\nBcc: victim@example.net",
            b'From: "Sam Bcc: victim@example.net" <s@example.org>\n',
        ),
        ("Sam\nSubject: forged\n\nbody", b'From: "Sam Subject: forged body" <s@example.org>\n'),
        ("Sam\x1b[2J\x00\x7fX", b'From: "Sam [2J X" <s@example.org>\n'),
        ('Sam "Q" <q@x>, (c)', b'From: "Sam \\"Q\\" <q@x>, (c)" <s@example.org>\n'),
        ("Jörg\r\n Müller", b"From: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <s@example.org>\n"),
    ],
)
def test_full_name_is_one_clean_from_header(
    tmp_path: Path, full_name: str, from_line: bytes
) -> None:
    sp, qid = _submit(
        tmp_path,
        b"Subject: hi\n\nbody\n",
        sender="s@example.org",
        recipients=("r@example.net",),
        full_name=full_name,
    )
    content = _content(sp, qid)
    assert content.startswith(from_line)
    fields = _header_fields(content)
    assert [name for name, _ in fields] == ["From", "Date", "Message-Id", "Subject"]
    assert fields[2][1] == f"<{qid}@mc.example>"
    assert email.utils.parsedate_to_datetime(fields[1][1]) is not None
    assert content.endswith(b"\nSubject: hi\n\nbody\n")


def test_myhostname_cannot_break_the_message_id(tmp_path: Path) -> None:
    """main.cf refuses CR, LF and NUL in a value; other control characters get this far."""
    sp = spool(tmp_path)
    cfg = queue_settings(tmp_path, myhostname="mc\x1b\x85.example")
    opts = SubmitOptions(sender="s@example.org", recipients=("r@example.net",))
    qid = submit_stream(io.BytesIO(b"\nbody\n"), opts, settings=cfg, spool=sp)
    fields = _header_fields(_content(sp, qid))
    assert fields[2] == ("Message-Id", f"<{qid}@mc??.example>")


@pytest.mark.parametrize(
    "kw",
    [
        {"recipients": ('"a\x1bb"@example.net',)},
        {"recipients": ('"a\tb"@example.net',)},
        {"recipients": ("a\x85b@example.net",)},
        {"recipients": ("a\udcffb@example.net",)},
        {"recipients": ("r@example.net",), "sender": '"s\x7f"@example.org'},
        {"recipients": ("r@example.net",), "envid": "E\x1b1"},
        {"recipients": ("r@example.net",), "envid": "Eé"},
        {"recipients": ("r@example.net",), "envid": "E" * 101},
    ],
)
def test_control_characters_in_envelope_values_are_refused(
    tmp_path: Path, kw: dict[str, object]
) -> None:
    """Addresses and ENVID end up in notice headers and log lines: refused at the door
    (RFC 5321 4.1.2 qtextSMTP; RFC 3461 4.4 ENVID), with a printable message."""
    kw.setdefault("sender", "s@example.org")
    with pytest.raises(DataError) as info:
        _submit(tmp_path, b"Subject: x\n\nhi\n", **kw)
    assert str(info.value).isprintable()
    assert os.listdir(tmp_path / "incoming") == []


# --- original recipients (Postfix's cleanup: orig_rcpt and the DSN original recipient) -----


def test_original_recipients_are_recorded(tmp_path: Path) -> None:
    data = b"To: Hidden <h@example.net>\n\nx\n"
    sp, qid = _submit(
        tmp_path,
        data,
        sender="s@example.org",
        recipients=("user", " <b+tag@example.net> ", "C@Example.NET"),
        extract_recipients=True,
    )
    rcpts = [
        (r.address, r.orig_address, r.dsn_orcpt)
        for r in sp.read("incoming", qid).envelope.recipients
    ]
    assert rcpts == [
        # As given (orig_to=), and as qualified with myorigin (ORCPT, as cleanup records it).
        ("user@example.org", "user", "rfc822;user@example.org"),
        ("b+tag@example.net", "b+tag@example.net", "rfc822;b+tag@example.net"),
        ("C@Example.NET", "C@Example.NET", "rfc822;C@Example.NET"),
        ("h@example.net", "h@example.net", "rfc822;h@example.net"),
    ]


@pytest.mark.parametrize(
    ("classes", "orcpt"),
    [
        ("sendmail", "utf-8;zo\u00eb@example.net"),
        ("verify", "rfc822;zo\u00eb@example.net"),
    ],
)
def test_original_recipient_type_follows_smtputf8_autodetection(
    tmp_path: Path, classes: str, orcpt: str
) -> None:
    sp = spool(tmp_path)
    cfg = queue_settings(tmp_path, smtputf8_autodetect_classes=classes)
    opts = SubmitOptions(sender="s@example.org", recipients=("zo\u00eb@example.net",))
    qid = submit_stream(io.BytesIO(b"Subject: x\n\nx\n"), opts, settings=cfg, spool=sp)
    (rcpt,) = sp.read("incoming", qid).envelope.recipients
    assert rcpt.dsn_orcpt == orcpt


@pytest.mark.parametrize(
    ("classes", "enable", "expected"),
    [("sendmail", "yes", True), ("verify", "yes", False), ("all", "no", False)],
)
def test_smtputf8_autodetect_classes(
    tmp_path: Path, classes: str, enable: str, expected: bool
) -> None:
    sp = spool(tmp_path)
    cfg = queue_settings(tmp_path, smtputf8_autodetect_classes=classes, smtputf8_enable=enable)
    opts = SubmitOptions(sender="s@example.org", recipients=("r@example.net",))
    data = "Subject: gr\u00fc\u00dfe\n\nx\n".encode()
    qid = submit_stream(io.BytesIO(data), opts, settings=cfg, spool=sp)
    envelope = sp.read("incoming", qid).envelope
    assert (envelope.smtputf8, envelope.encoding) == (expected, "8bit")
