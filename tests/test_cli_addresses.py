"""Envelope injection, black-box: malformed and malicious addresses through `mailcarrier
deliver`, `mailcarrier sendmail` and the Python API are refused before anything is sent or
queued (one line, exit 65; `AddressError` from the API), and odd but valid ones reach the
server quoted exactly as Postfix quotes them, with only the parameters the client chose.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailcarrier
from mailcarrier.cli import run
from mailcarrier.errors import AddressError, UsageError
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

MESSAGE = b"Subject: addresses\n\nbody\n"

# Thirty-odd addresses that must never reach a server. The CLI and submission qualify a
# bare local part with myorigin and drop one pair of angle brackets, as sendmail does; what
# is left must be an RFC 5321 Mailbox.
HOSTILE = [
    "b@example.net> NOTIFY=NEVER",
    "b@example.net>\r\nRCPT TO:<evil@example.com",
    "b@example.net\nRCPT TO:<evil@example.com>",
    "b@example.net SIZE=1",
    "b@example.net ORCPT=rfc822;x@y",
    "b@example.net NOTIFY=SUCCESS",
    "<b@example.net> NOTIFY=NEVER",
    "b@exa mple.net",
    "b c@example.net",
    "b\t@example.net",
    "b@[127.0.0.1] SIZE=1",
    "b@[127.0.0.1]>",
    "b@[not a literal]",
    "b@example..net",
    "b@.example.net",
    "b@-example.net",
    "b@",
    "@example.net",
    "",
    "   ",
    "b\x00@example.net",
    "b\x1b[31m@example.net",
    "b\x7f@example.net",
    "b\u0085@example.net",
    "b@example.net=x",
    "b@exam<ple.net",
    "b>@example.net",
    'b"c@example.net',
    '"unterminated@example.net',
    "b@example.net,c@example.org",
    "b@example.net;c@example.org",
    "b(comment)@example.net",
    "x" * 1001 + "@example.net",
]


def _run(*argv: str, stdin: bytes = MESSAGE) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _one_fatal_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mailcarrier: fatal: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING", "DSN"))).start()
    yield srv
    srv.stop()


# An empty sender is the null sender <>: every hostile address as a recipient, every one
# that is not blank as a sender.
ROLES = [("recipient", a) for a in HOSTILE] + [("sender", a) for a in HOSTILE if a.strip()]


@pytest.mark.parametrize(("role", "address"), ROLES, ids=[f"{r}-{a!r}"[:40] for r, a in ROLES])
def test_deliver_refuses_with_65(server: AiosmtpdServer, address: str, role: str) -> None:
    before = len(server.handler.messages)
    sender, rcpt = (address, "b@example.net") if role == "sender" else ("a@example.org", address)
    code, out, err = _run(
        "-o", "myorigin=example.org", "deliver", "--nexthop", server.nexthop,
        "-f", sender, "-r", rcpt, "--json",
    )  # fmt: skip
    assert code == 65, err
    assert out == ""
    line = _one_fatal_line(err)
    assert f"{role} address" in line
    # No CR/LF/ESC of the address reaches the terminal or a log reader.
    assert not any(c in line for c in "\r\x1b\x00")
    assert len(server.handler.messages) == before


# sendmail parses each recipient argument as an RFC 822 address list, as Postfix's does:
# these two are well-formed lists there (two addresses; a comment dropped).
SENDMAIL_LISTS = {
    "b@example.net,c@example.org": ["b@example.net", "c@example.org"],
    "b(comment)@example.net": ["b@example.net"],
}
SENDMAIL_HOSTILE = [a for a in HOSTILE if a not in SENDMAIL_LISTS]


def _queued(queue: Path) -> list[str]:
    return [
        n
        for d in ("incoming", "active", "deferred")
        if (queue / d).exists()
        for n in os.listdir(queue / d)
    ]


@pytest.mark.parametrize("address", SENDMAIL_HOSTILE, ids=[repr(a)[:30] for a in SENDMAIL_HOSTILE])
def test_sendmail_refuses_with_65_and_queues_nothing(tmp_path: Path, address: str) -> None:
    queue = tmp_path / "queue"
    code, _, err = _run(
        "-o", f"queue_directory={queue}", "-o", "myorigin=example.org",
        "sendmail", "-f", "a@example.org", address,
    )  # fmt: skip
    assert code == 65, err
    line = _one_fatal_line(err)
    assert not any(c in line for c in "\r\x1b\x00")
    assert _queued(queue) == []


@pytest.mark.parametrize("argument", sorted(SENDMAIL_LISTS))
def test_sendmail_takes_address_lists_as_postfix_does(tmp_path: Path, argument: str) -> None:
    queue = tmp_path / "queue"
    code, _, err = _run(
        "-o", f"queue_directory={queue}", "-o", "myorigin=example.org",
        "sendmail", "-f", "a@example.org", argument,
    )  # fmt: skip
    assert code == 0, err
    (queue_id,) = _queued(queue)
    code, out, _ = _run("-o", f"queue_directory={queue}", "queue", "show", "--envelope", queue_id)
    found = [
        line.removeprefix("recipient: ")
        for line in out.splitlines()
        if line.startswith("recipient: ")
    ]
    assert found == SENDMAIL_LISTS[argument]


# The API takes Postfix's internal form too (an unquoted local part, quoted on the wire), so a
# few of the CLI's refusals are sendable there; the rest must raise before connecting.
API_SENDABLE = {"b c@example.net", "b\t@example.net", 'b"c@example.net', "b>@example.net"}
API_SENDABLE |= {"b(comment)@example.net", '"unterminated@example.net'}
API_SENDABLE |= {"b@example.net,c@example.org", "b@example.net;c@example.org"}
API_SENDABLE |= {"b@example.net ORCPT=rfc822;x@y"}


@pytest.mark.parametrize(
    "address",
    [a for a in HOSTILE if a not in API_SENDABLE and a.strip()] + ["   "],
    ids=lambda a: repr(a)[:30],
)
def test_api_refuses_before_connecting(address: str) -> None:
    with pytest.raises(UsageError) as info:
        mailcarrier.make_request(
            MESSAGE, sender="a@example.org", recipients=[address], nexthop="[127.0.0.1]:9"
        )
    assert "recipient address" in str(info.value)
    with pytest.raises(UsageError):
        mailcarrier.make_request(
            MESSAGE, sender=address, recipients=["b@example.net"], nexthop="[127.0.0.1]:9"
        )


def test_api_error_is_an_address_error() -> None:
    with pytest.raises(AddressError, match="bad recipient address syntax"):
        mailcarrier.make_request(
            MESSAGE, sender="", recipients=["b@x> NOTIFY=NEVER"], nexthop="[127.0.0.1]:9"
        )


@pytest.mark.parametrize(
    ("address", "wired"),
    [
        ("b c@example.net", '"b c"@example.net'),
        ('b"c@example.net', '"b\\"c"@example.net'),
        ("b>@example.net", '"b>"@example.net'),
        ("b@example.net ORCPT=rfc822;x@y", '"b@example.net ORCPT=rfc822;x"@y'),
        ('"b c"@example.net', '"b c"@example.net'),
        ("b=NOTIFY@example.net", "b=NOTIFY@example.net"),
    ],
)
def test_api_odd_addresses_are_quoted_on_the_wire(address: str, wired: str) -> None:
    """The RCPT arguments exactly as the server received them: the quoted path and the
    parameters the client chose, nothing else."""
    srv = DsnAiosmtpdServer(RecordingHandler())
    srv.start()
    try:
        request = mailcarrier.make_request(
            MESSAGE,
            sender="a@example.org",
            recipients=[address],
            nexthop=srv.nexthop,
            notify="SUCCESS",
        )
        result = mailcarrier.deliver_sync(request, config=mailcarrier.Config.defaults())
    finally:
        srv.stop()
    (status,) = result.recipients
    assert status.status.value == "sent", status.diagnostic
    assert srv.wire.rcpt == [f"TO:<{wired}> NOTIFY=SUCCESS"]
    assert srv.wire.mail == ["FROM:<a@example.org>"]
