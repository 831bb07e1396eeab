"""Hostile servers and hostile input through the command line: log lines, JSON, notices.

A scripted server (tests/support/scripted.py) answers with replies full of bytes no
real server sends: CR inside a line, ESC sequences, NUL, DEL, 8-bit text, invalid UTF-8,
C1 controls, a fake syslog line. `mailcarrier deliver --json` and the queue
(`sendmail`, `run --once`, `queue list`) run in-process in a thread (they run their own
event loop) while the server runs in the test's loop. Whatever the server says: each log
line is one line with those bytes replaced as Postfix's printable() replaces them, the JSON
parses with a strict parser, and the bounce notice in the queue has exactly its headers and
delivery-status fields.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import io
import json
import os
import re
from pathlib import Path
from typing import Any, cast

import pytest

from mailcarrier.cli import run
from mailcarrier.queue.spool import Spool
from tests.support.scripted import Close, Expect, ReadRest, ReadUntil, ScriptedServer, Send, Step
from tests.support.wire import EHLO, mail, rcpt

# Bytes no server should send, and what a log line shows instead: CR and ESC (a terminal
# sequence), NUL, DEL, valid UTF-8 (kept), invalid UTF-8 (the reply parser shows it as
# \xNN text), a C1 control (NEL, valid UTF-8), LINE SEPARATOR.
HOSTILE = b"\r\x1b[2J\x00\x7f \xc3\xa9 \xff\xfe \xc2\x85 \xe2\x80\xa8"
SHOWN = "??[2J?? é \\xff\\xfe ? ?"
# ...and the same in the JSON result, where the text is kept as it was received.
KEPT = "\r\x1b[2J\x00\x7f é \\xff\\xfe \x85 \u2028"
FORGED = b" Jan  1 00:00:00 mx postfix/smtp[1]: 0FAKE: to=<x@y>, status=sent (250 ok)"
SHOWN_FORGED = " Jan  1 00:00:00 mx postfix/smtp[1]: 0FAKE: to=<x@y>, status=sent (250 ok)"

PREFIX = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ postfix/(?P<proc>[a-z]+)\[\d+\]: ")
DELAYS = re.compile(r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, ")
MESSAGE = b"Subject: hostile\n\nbody\n"


def _strict_json(text: str) -> Any:
    """json.loads that refuses what a strict parser refuses: lone surrogates (which Python
    accepts as \\udcxx escapes)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, value in pairs:
            for s in (key, value):
                if isinstance(s, str):
                    s.encode("utf-8")  # raises on a lone surrogate
        return dict(pairs)

    data = json.loads(text, object_pairs_hook=hook)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # lists of strings too
    return data


def _clean(text: str) -> bool:
    """No control character (C0, DEL, C1) and no Unicode line break in `text`."""
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text)


def _log_lines(stderr: str) -> list[str]:
    """Log lines with the syslog prefix and the delays taken out; every line checked."""
    out = []
    for line in stderr.splitlines():
        assert _clean(line), repr(line)
        m = PREFIX.match(line)
        assert m, repr(line)
        out.append(DELAYS.sub("", line[m.end() :]))
    return out


async def _cli(argv: list[str], stdin: bytes = MESSAGE) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        run,
        ["-o", "smtp_helo_name=client.example", *argv],
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue(), err.getvalue()


async def _server(*scripts: list[Step]) -> ScriptedServer:
    return await ScriptedServer(*scripts).start()


START: list[Step] = [
    Send(b"220 mx.example ESMTP " + HOSTILE + b"\r\n"),
    Expect(EHLO, alone=False),
    Send(b"250-mx.example " + HOSTILE + b"\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
]
BATCH = mail() + rcpt("b@example.net") + rcpt("c@example.net") + b"DATA\r\n"
QUIT_STEPS: list[Step] = [Expect(b"QUIT\r\n", alone=False), Send(b"221 bye\r\n"), Close()]
RELAY = "127.0.0.1[127.0.0.1]:{port}"

# --- deliver --json ------------------------------------------------------------------------

CASES: dict[str, tuple[list[Step], int, list[tuple[str, str, str, str]]]] = {
    # A 5xx greeting: the server refuses to talk (smtp_skip_5xx_greeting: a deferral).
    "greeting": (
        [Send(b"554 5.7.1 go away " + HOSTILE + b"\r\n"), ReadRest()],
        75,
        [
            (
                "b@example.net",
                "deferred",
                "4.7.1",
                "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away {}",
            ),
            (
                "c@example.net",
                "deferred",
                "4.7.1",
                "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away {}",
            ),
        ],
    ),
    # A 421 to EHLO is the server refusing to talk too (Postfix's wording).
    "ehlo": (
        [
            Send(b"220 mx.example ESMTP " + HOSTILE + b"\r\n"),
            Expect(EHLO, alone=False),
            Send(b"421-4.3.2 busy " + HOSTILE + b"\r\n421" + FORGED + b"\r\n"),
            ReadRest(),
        ],
        75,
        [
            (
                "b@example.net",
                "deferred",
                "4.3.2",
                "host 127.0.0.1[127.0.0.1] refused to talk to me: 421-4.3.2 busy {} 421{forged}",
            ),
            (
                "c@example.net",
                "deferred",
                "4.3.2",
                "host 127.0.0.1[127.0.0.1] refused to talk to me: 421-4.3.2 busy {} 421{forged}",
            ),
        ],
    ),
    # RCPT 550 for b (a bounce), 4xx at the final dot for c (a deferral).
    "rcpt and dot 4xx": (
        [
            *START,
            Expect(BATCH, alone=False),
            Send(
                b"250 2.1.0 ok\r\n550-5.1.1 <b@example.net> "
                + HOSTILE
                + b"\r\n550"
                + FORGED
                + b"\r\n250 2.1.5 ok\r\n354 go "
                + HOSTILE
                + b"\r\n"
            ),
            ReadUntil(b"\r\n.\r\n"),
            Send(b"451 4.3.0 try later " + HOSTILE + b"\r\n"),
            *QUIT_STEPS,
        ],
        75,
        [
            (
                "b@example.net",
                "bounced",
                "5.1.1",
                "host 127.0.0.1[127.0.0.1] said: 550-5.1.1 <b@example.net> {} 550{forged}"
                " (in reply to RCPT TO command)",
            ),
            (
                "c@example.net",
                "deferred",
                "4.3.0",
                "host 127.0.0.1[127.0.0.1] said: 451 4.3.0 try later {}"
                " (in reply to end of DATA command)",
            ),
        ],
    ),
    "dot 5xx": (
        [
            *START,
            Expect(BATCH, alone=False),
            Send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
            ReadUntil(b"\r\n.\r\n"),
            Send(b"554 5.6.0 " + HOSTILE + b"\r\n"),
            *QUIT_STEPS,
        ],
        69,
        [
            (
                "b@example.net",
                "bounced",
                "5.6.0",
                "host 127.0.0.1[127.0.0.1] said: 554 5.6.0 {} (in reply to end of DATA command)",
            ),
            (
                "c@example.net",
                "bounced",
                "5.6.0",
                "host 127.0.0.1[127.0.0.1] said: 554 5.6.0 {} (in reply to end of DATA command)",
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_deliver_hostile_replies_one_clean_line_and_strict_json(case: str) -> None:
    script, code, expected = CASES[case]
    server = await _server(script)
    try:
        argv = ["deliver", "--nexthop", server.nexthop, "-f", "a@example.org", "--json"]
        argv += ["-r", "b@example.net", "-r", "c@example.net", "-"]
        got, stdout, stderr = await _cli(argv)
    finally:
        await server.stop()
    server.check()
    assert got == code, stderr
    relay = RELAY.format(port=server.port)
    assert _log_lines(stderr) == [
        f"{{qid}}: to=<{rcpt}>, relay={relay}, dsn={dsn}, status={status} "
        f"({diag.format(SHOWN, forged=SHOWN_FORGED)})".replace("{qid}", _qid(stdout))
        for rcpt, status, dsn, diag in expected
    ]
    assert stderr.count("\n") == len(expected)
    result = _strict_json(stdout)
    assert [
        (r["address"], r["status"], r["dsn"], r["diagnostic"]) for r in result["recipients"]
    ] == [
        (rcpt, status, dsn, diag.format(KEPT, forged=SHOWN_FORGED))
        for rcpt, status, dsn, diag in expected
    ]


def _qid(stdout: str) -> str:
    return cast("str", json.loads(stdout)["queue_id"])


async def test_deliver_argv_that_is_not_utf8() -> None:
    """A recipient given as bytes that are not UTF-8 (decoded by Python with
    surrogateescape) is not an address: refused before connecting, in one clean line."""
    server = await _server([*START, ReadRest()])
    try:
        argv = ["deliver", "--nexthop", server.nexthop, "-f", "a@example.org", "--json"]
        got, stdout, stderr = await _cli([*argv, "-r", "b\udcff\udcfe@example.net", "-"])
    finally:
        await server.stop()
    assert (got, stdout) == (65, "")
    assert stderr == (
        "mailcarrier: fatal: bad recipient address syntax: 'b\\udcff\\udcfe@example.net'\n"
    )
    assert server.connections == []


async def test_usage_error_quoting_hostile_input_is_one_clean_line() -> None:
    got, stdout, stderr = await _cli(
        [
            "deliver",
            "--nexthop",
            "[127.0.0.1]:9",
            "-f",
            "a@x",
            "-r",
            "b@x",
            "/nonexistent/\x1b[2J\udcff\n",
        ]
    )
    assert got == 65 and stdout == ""
    assert stderr == (
        "mailcarrier: fatal: cannot open message file /nonexistent/?[2J??:"
        " No such file or directory\n"
    )


# --- the queue: sendmail, run --once, queue list ---------------------------------------------


def _queue_opts(queue: Path, nexthop: str) -> list[str]:
    return [
        "-o", f"queue_directory={queue}",
        "-o", f"relayhost={nexthop}",
        "-o", "myorigin=example.org",
        "-o", "myhostname=mc.example",
        "-o", f"maillog_file={queue / 'maillog'}",
        "-o", "smtp_connection_cache_on_demand=no",
    ]  # fmt: skip


NOTICE_HEADERS = [
    "From",
    "Subject",
    "To",
    "Auto-Submitted",
    "Date",
    "Message-Id",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
]


def _field(entity: email.message.Message, name: str) -> str:
    """A field's value as written (UTF-8), whatever the parser made of 8-bit text."""
    for key, value in entity.raw_items():
        if key.lower() == name.lower():
            return str(value).encode("utf-8", "surrogateescape").decode("utf-8")
    raise KeyError(name)


def _notice(queue: Path, original: str) -> email.message.Message:
    spool = Spool(queue)
    (notice_id,) = [i for i in spool.ids("deferred") if i != original]
    notice = spool.read("deferred", notice_id)
    assert notice.envelope.sender == ""
    assert [r.address for r in notice.envelope.recipients] == ["s@example.org"]
    with open(notice.path, "rb") as f:
        f.seek(notice.envelope.content_offset)
        return email.message_from_bytes(f.read(notice.envelope.size), policy=email.policy.compat32)


async def test_queue_bounce_and_deferral_from_a_hostile_server(tmp_path: Path) -> None:
    """b is refused at RCPT (bounce notice to the sender), c deferred at the final dot; the
    notice's own delivery is refused with a 421 greeting, so it stays in the queue."""
    batch = mail("s@example.org") + rcpt("b@example.net") + rcpt("c@example.net") + b"DATA\r\n"
    first = [
        *START,
        Expect(batch, alone=False),
        Send(
            b"250 2.1.0 ok\r\n550-5.1.1 <b@example.net> "
            + HOSTILE
            + b"\r\n550"
            + FORGED
            + b"\r\n250 2.1.5 ok\r\n354 go\r\n"
        ),
        ReadUntil(b"\r\n.\r\n"),
        Send(b"451 4.3.0 try later " + HOSTILE + b"\r\n"),
        *QUIT_STEPS,
    ]
    busy: list[Step] = [Send(b"421 4.3.2 busy " + HOSTILE + b"\r\n"), ReadRest()]
    server = await _server(first, busy)
    opts = _queue_opts(tmp_path, server.nexthop)
    try:
        sendmail = ["sendmail", "-f", "s@example.org", "b@example.net", "c@example.net"]
        assert await _cli([*opts, *sendmail]) == (0, "", "")
        (qid,) = Spool(tmp_path).ids("incoming")
        assert await _cli([*opts, "run", "--once"]) == (0, "", "")
    finally:
        await server.stop()
    server.check()
    relay = RELAY.format(port=server.port)
    said = "host 127.0.0.1[127.0.0.1] said:"
    bounce = f"550-5.1.1 <b@example.net> {SHOWN} 550{SHOWN_FORGED}"
    later = f"451 4.3.0 try later {SHOWN}"
    maillog = (tmp_path / "maillog").read_text(encoding="utf-8")
    notice_id = next(i for i in Spool(tmp_path).ids("deferred") if i != qid)
    # One line per event, the peer's bytes replaced; the forged line stays inside the
    # bounce line (the only line with "0FAKE" in it), it never starts one.
    assert [re.sub(r"size=\d+", "size=N", line) for line in _log_lines(maillog)] == [
        f"{qid}: uid=0 from=<s@example.org>".replace("uid=0", f"uid={os.getuid()}"),
        f"{qid}: message-id=<{qid}@mc.example>",
        f"{qid}: from=<s@example.org>, size=N, nrcpt=2 (queue active)",
        f"{qid}: to=<b@example.net>, relay={relay}, dsn=5.1.1, status=bounced "
        f"({said} {bounce} (in reply to RCPT TO command))",
        f"{qid}: to=<c@example.net>, relay={relay}, dsn=4.3.0, status=deferred "
        f"({said} {later} (in reply to end of DATA command))",
        f"{qid}: sender non-delivery notification: {notice_id}",
        f"{notice_id}: from=<>, size=N, nrcpt=1 (queue active)",
        f"{notice_id}: to=<s@example.org>, relay={relay}, dsn=4.3.2, status=deferred "
        f"(host 127.0.0.1[127.0.0.1] refused to talk to me: 421 4.3.2 busy {SHOWN})",
    ]
    assert maillog.count("0FAKE") == 1

    notice = _notice(tmp_path, qid)
    assert notice.keys() == NOTICE_HEADERS
    assert notice["To"] == "s@example.org"
    parts = cast("list[email.message.Message]", notice.get_payload())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    ]
    text = cast("bytes", parts[0].get_payload(decode=True)).decode("utf-8")
    assert text.splitlines()[-1] == (
        f"<b@example.net>: {said} {bounce} (in reply to RCPT TO command)"
    )
    blocks = cast("list[email.message.Message]", parts[1].get_payload())
    assert [b.keys() for b in blocks] == [
        ["Reporting-MTA", "X-Postfix-Queue-ID", "X-Postfix-Sender", "Arrival-Date"],
        ["Final-Recipient", "Original-Recipient", "Action", "Status", "Remote-MTA",
         "Diagnostic-Code", "Last-Attempt-Date"],
    ]  # fmt: skip
    assert _field(blocks[0], "X-Postfix-Queue-ID") == qid
    assert _field(blocks[1], "Final-Recipient") == "rfc822; b@example.net"
    assert _field(blocks[1], "Remote-MTA") == "dns; 127.0.0.1"
    assert _field(blocks[1], "Diagnostic-Code") == f"smtp; {bounce}"

    # queue list: the stored deferral reason cannot forge a line of the listing.
    code, listing, err = await _cli([*opts, "queue", "list"])
    assert code == 0 and err == ""
    assert all(_clean(line) for line in listing.splitlines())
    reason = f"({said} {later} (in reply to end of DATA command))"
    assert " ".join(listing.split()).count(" ".join(reason.split())) == 1
    code, listing, err = await _cli([*opts, "queue", "list", "--json"])
    entries = [_strict_json(line) for line in listing.splitlines()]
    by_id = {e["queue_id"]: e for e in entries}
    assert by_id[qid]["recipients"] == [
        {
            "address": "c@example.net",
            "delay_reason": (
                f"{said} 451 4.3.0 try later {KEPT} (in reply to end of DATA command)"
            ),
        }
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Sam\r\nBcc: victim@example.net",
        "Sam\n\n--boundary\nContent-Type: text/html",
        "Sam\x1b[2J\x00\x7f\x85",
        'Sam "Q" <q@x>, (c); [d] \\',
        "Jörg \udcff Müller",
    ],
)
async def test_sendmail_full_name_is_one_from_header(tmp_path: Path, name: str) -> None:
    opts = _queue_opts(tmp_path, "[127.0.0.1]:9")
    got = await _cli([*opts, "sendmail", "-F", name, "-f", "s@example.org", "r@example.net"])
    assert got == (0, "", "")
    spool = Spool(tmp_path)
    (qid,) = spool.ids("incoming")
    message = spool.read("incoming", qid)
    with open(message.path, "rb") as f:
        f.seek(message.envelope.content_offset)
        data = f.read(message.envelope.size)
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    assert parsed.keys() == ["From", "Date", "Message-Id", "Subject"]
    assert parsed["Message-Id"] == f"<{qid}@mc.example>"
    assert email.utils.parsedate_to_datetime(parsed["Date"])
    shown, address = email.utils.parseaddr(parsed["From"])
    assert address == "s@example.org"
    decoded = str(email.header.make_header(email.header.decode_header(shown)))
    cleaned = " ".join(re.sub("[\x00-\x1f\x7f-\x9f]", " ", name).split())
    assert decoded == cleaned.replace("\udcff", "\ufffd")
    assert parsed.get_payload() == "body\n"
