"""8-bit content and SMTPUTF8 found one way (delivery/autodetect.py), and the same on the wire
whichever way a message enters: ``deliver`` (CLI), `make_request` + `deliver` (API) and
``sendmail`` + ``run --once`` (queue), with smtputf8_autodetect_classes on and off."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mailcarrier
from mailcarrier.cli import run
from mailcarrier.config.params_smtp import SMTPUTF8_AUTODETECT_CLASSES
from mailcarrier.delivery.autodetect import (
    ContentScan,
    MailSource,
    scan_stream,
    smtputf8_autodetect,
    smtputf8_requested,
    spool_stream,
)
from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import RecordingHandler
from tests.support.settings import make_settings

LIMIT = 102400


def scanned(data: bytes, limit: int = LIMIT) -> tuple[bool, bool]:
    scan = ContentScan(limit)
    scan.feed(data)
    scan.finish()
    return scan.eight_bit, scan.header_utf8


# --- ContentScan ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "eight_bit", "header_utf8"),
    [
        (b"Subject: hi\r\n\r\nbody\r\n", False, False),
        (b"Subject: hi\r\n\r\nb\xc3\xbcdy\r\n", True, False),
        ("Subject: grüße\r\n\r\nbody\r\n".encode(), True, True),
        ("From: a@b\nTo: c@d\n X-Cont: ü\n\nx\n".encode(), True, True),  # a continuation
        ("X-Name : ü\n\nx\n".encode(), True, True),  # white space before the colon
        (b"Subject: hi\n", False, False),  # only a header, no body
        ("Subject: grüße".encode(), True, True),  # a last line without its line break
        # A first line that is no header field starts the body (Postfix's cleanup).
        ("hellö wörld\nSubject: x\n\n".encode(), True, False),
        # ... and so does the first such line after the header fields (no space in a name).
        ("Subject: hi\nnot a header: ü\n".encode(), True, False),
        ("Subject: hi\nnot ä header\n".encode(), True, False),
        (" ü continued without a field\n\n".encode(), True, False),
        (b"", False, False),
    ],
)
def test_scan(message: bytes, eight_bit: bool, header_utf8: bool) -> None:
    assert scanned(message) == (eight_bit, header_utf8)


def test_the_header_is_looked_at_up_to_header_size_limit() -> None:
    message = b"X-Long: " + b"a" * 100 + "ü".encode() + b"\r\n\r\n"
    assert scanned(message, limit=50) == (True, False)
    assert scanned(message, limit=200) == (True, True)


MESSAGE_PARTS = st.lists(
    st.sampled_from(
        [b"Subject: a\n", b"X-U: \xc3\xbc\n", b" cont\n", b"\n", b"body\n", b"\xff\n", b"x: y\r\n"]
    ),
    max_size=8,
)


@given(MESSAGE_PARTS, st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_any_split_gives_the_same_result(parts: list[bytes], cuts: list[int]) -> None:
    message = b"".join(parts)
    whole = scanned(message)
    scan = ContentScan(LIMIT)
    positions = sorted({min(c, len(message)) for c in cuts})
    start = 0
    for cut in [*positions, len(message)]:
        scan.feed(message[start:cut])
        start = cut
    scan.finish()
    assert (scan.eight_bit, scan.header_utf8) == whole


def test_scan_stream_puts_the_stream_back() -> None:
    src = io.BytesIO(b"skip" + "Subject: ü\n\nx\n".encode())
    src.seek(4)
    scan = scan_stream(src, LIMIT)
    assert (scan.eight_bit, scan.header_utf8) == (True, True)
    assert src.tell() == 4


def test_spool_stream_copies_and_scans() -> None:
    dest = io.BytesIO()
    scan = spool_stream(io.BytesIO(b"Subject: a\n\n\xe2\x82\xac\n"), dest, LIMIT)
    assert dest.getvalue() == b"Subject: a\n\n\xe2\x82\xac\n"
    assert (scan.eight_bit, scan.header_utf8) == (True, False)


# --- smtputf8_autodetect_classes --------------------------------------------------------------


def test_the_parameter_names_every_class() -> None:
    assert set(SMTPUTF8_AUTODETECT_CLASSES) == {s.value for s in MailSource} | {"all"}


@pytest.mark.parametrize(
    ("classes", "enable", "detected"),
    [
        ("sendmail, verify", "yes", {MailSource.SENDMAIL, MailSource.VERIFY}),
        ("bounce notify", "yes", {MailSource.BOUNCE, MailSource.NOTIFY}),
        ("all", "yes", set(MailSource)),
        ("", "yes", set()),
        ("all", "no", set()),
    ],
)
def test_autodetect(classes: str, enable: str, detected: set[MailSource]) -> None:
    settings = make_settings(smtputf8_autodetect_classes=classes, smtputf8_enable=enable)
    assert {s for s in MailSource if smtputf8_autodetect(settings, s)} == detected


def test_an_unknown_class_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="smtputf8_autodetect_classes"):
        make_settings(smtputf8_autodetect_classes="sendmail, pickup").get_list(
            "smtputf8_autodetect_classes"
        )


@pytest.mark.parametrize(
    ("addresses", "header_utf8", "explicit", "on", "off", "disabled"),
    [
        (("a@example.org", "b@example.net"), False, False, False, False, False),
        (("a@example.org", "b@example.net"), True, False, True, False, False),
        (("a@example.org", "zoë@example.net"), False, False, True, False, False),
        (("jörg@example.org", "b@example.net"), False, False, True, False, False),
        # A UTF-8 domain alone needs no SMTPUTF8: the client can send it in A-labels.
        (("a@bücher.example", "b@faß.de"), False, False, False, False, False),
        (("a@example.org", "b@example.net"), False, True, True, True, False),
    ],
)
def test_requested(
    addresses: tuple[str, ...],
    header_utf8: bool,
    explicit: bool,
    on: bool,
    off: bool,
    disabled: bool,
) -> None:
    for settings, expected in (
        (make_settings(), on),
        (make_settings(smtputf8_autodetect_classes="bounce"), off),
        (make_settings(smtputf8_enable="no", smtputf8_autodetect_classes="all"), disabled),
    ):
        got = smtputf8_requested(
            settings,
            MailSource.SENDMAIL,
            addresses=addresses,
            header_utf8=header_utf8,
            explicit=explicit,
        )
        assert got is expected


@pytest.mark.parametrize(
    ("content", "encoding", "smtputf8"),
    [
        (b"Subject: a\n\nb\n", "7bit", False),
        (b"Subject: a\n\nb\xc3\xbc\n", "8bit", False),
        ("Subject: ü\n\nb\n".encode(), "8bit", True),
    ],
)
def test_make_request_declares_what_it_finds(
    tmp_path: Path, content: bytes, encoding: str, smtputf8: bool
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(content)
    # Text (str) is the message itself, never a file name (api_content.py).
    for given_content in (content, path, content.decode(), io.BytesIO(content)):
        request = mailcarrier.make_request(
            given_content, sender="a@example.org", recipients=["b@example.net"], nexthop="[x]"
        )
        assert (request.encoding, request.smtputf8) == (encoding, smtputf8)


def test_make_request_spools_a_pipe(tmp_path: Path) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    request = mailcarrier.make_request(
        Pipe("Subject: ü\n\nx\n".encode()),  # type: ignore[arg-type]
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop="[x]",
    )
    assert (request.encoding, request.smtputf8) == ("8bit", True)
    assert not isinstance(request.content, (Path, str))
    assert request.content.read() == "Subject: ü\n\nx\n".encode()


def test_make_request_explicit_smtputf8_and_disabled() -> None:
    request = mailcarrier.make_request(
        b"x\n", sender="a@example.org", recipients=["b@x"], nexthop="[x]", smtputf8=True
    )
    assert request.smtputf8
    request = mailcarrier.make_request(
        b"x\n",
        sender="a@example.org",
        recipients=["b@x"],
        nexthop="[x]",
        smtputf8=True,
        config=make_settings(smtputf8_enable="no"),
    )
    assert not request.smtputf8


# --- the same on the wire, whichever way the message enters --------------------------------

# From, Date and Message-Id are present, so sendmail adds nothing: the three ways send the
# same bytes, and SIZE= must be equal too.
HEAD = b"From: s@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <1@example.org>\n"
CASES = {
    "ascii": (HEAD + b"Subject: plain\n\nbody\n", "b@example.net"),
    "8bit-body": (HEAD + b"Subject: plain\n\nb\xc3\xbcdy\n", "b@example.net"),
    "utf8-header": (HEAD + "Subject: grüße\n\nbody\n".encode(), "b@example.net"),
    "utf8-local-part": (HEAD + b"Subject: plain\n\nbody\n", "zoë@example.net"),
}
# MAIL FROM parameters after SIZE=, with smtputf8_autodetect_classes listing sendmail or not.
# Without autodetection UTF-8 in the header asks for nothing (Postfix's "as before"); a UTF-8
# local part still gets SMTPUTF8 from a server that offers it (RFC 6531 3.4 allows no UTF-8
# envelope without it; Postfix would send the address bare).
EXPECTED = {
    "ascii": ("", ""),
    "8bit-body": (" BODY=8BITMIME", " BODY=8BITMIME"),
    "utf8-header": (" BODY=8BITMIME SMTPUTF8", " BODY=8BITMIME"),
    "utf8-local-part": (" SMTPUTF8", " SMTPUTF8"),
}


@pytest.fixture
def wire_server() -> Iterator[DsnAiosmtpdServer]:
    handler = RecordingHandler(extra_keywords=("PIPELINING",))
    server = DsnAiosmtpdServer(handler, data_size_limit=10_000_000)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _options(queue: Path, server: DsnAiosmtpdServer, classes: str) -> dict[str, str]:
    return {
        "queue_directory": str(queue),
        "relayhost": server.nexthop,
        "myorigin": "example.org",
        "smtp_helo_name": "client.example",
        "smtputf8_autodetect_classes": classes,
    }


def _cli(options: dict[str, str], *argv: str, stdin: bytes = b"") -> None:
    words = [w for name, value in options.items() for w in ("-o", f"{name}={value}")]
    out, err = io.StringIO(), io.StringIO()
    code = run([*words, *argv], stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    assert code == 0, err.getvalue()


def _three_ways(
    tmp_path: Path, server: DsnAiosmtpdServer, content: bytes, rcpt: str, classes: str
) -> list[str]:
    """MAIL FROM as received from deliver (CLI), make_request + deliver (API), and
    sendmail + run --once."""
    options = _options(tmp_path / "queue", server, classes)
    _cli(options, "deliver", "--nexthop", server.nexthop, "-f", "s@example.org", "-r", rcpt,
         stdin=content)  # fmt: skip
    request = mailcarrier.make_request(
        content,
        sender="s@example.org",
        recipients=[rcpt],
        nexthop=server.nexthop,
        config=make_settings(options),
    )
    result = mailcarrier.deliver_sync(request, config=make_settings(options), log=MemoryLog())
    assert result.recipients[0].status.value == "sent"
    _cli(options, "sendmail", "-f", "s@example.org", rcpt, stdin=content)
    _cli(options, "run", "--once")
    return list(server.wire.mail)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("classes", ["sendmail, verify", "bounce, notify"], ids=["on", "off"])
def test_the_same_mail_from_three_ways(
    tmp_path: Path, wire_server: DsnAiosmtpdServer, case: str, classes: str
) -> None:
    content, rcpt = CASES[case]
    size = len(content)  # SIZE= counts the message as it is stored (Postfix: as queued)
    params = EXPECTED[case][0 if classes.startswith("sendmail") else 1]
    mail = _three_ways(tmp_path, wire_server, content, rcpt, classes)
    assert mail == [f"FROM:<s@example.org> SIZE={size}{params}"] * 3
    assert [m.rcpt_tos for m in wire_server.messages] == [[rcpt]] * 3
