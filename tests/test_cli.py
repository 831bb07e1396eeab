"""`mailcarrier deliver` from the command line: exit codes, JSON result, errors, log lines.

Most cases call `mailcarrier.cli.run()` in-process against aiosmtpd (it runs its own event
loop, so these tests are synchronous); a few run the installed `.venv/bin/mailcarrier` as a
real subprocess. Every error must be one line on stderr with the sysexits code of DESIGN.md
and never a traceback. No test uses the bare ``domain`` form: it would query real DNS.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.cli import run
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port

REPO = Path(__file__).resolve().parent.parent
MAILCARRIER = REPO / ".venv" / "bin" / "mailcarrier"
MESSAGE = b"Subject: cli\n\nhello from the command line\n"
JSON_KEYS = ["address", "status", "dsn", "relay", "diagnostic", "delay", "delays", "conn_use"]
LOG_LINE = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ postfix/(smtp|lmtp)\[\d+\]: "
    r"(?P<qid>\w+): to=<(?P<to>[^>]*)>, relay=\S+, (conn_use=\d+, )?delay=[\d.]+, "
    r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, (tls=\S+, )?dsn=\d\.\d{1,3}\.\d{1,3}, "
    r"status=(?P<status>sent|deferred|bounced) \(.*\)$"
)


class Outcome:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    @property
    def log_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ": to=<" in line]


def cli(*argv: str, stdin: bytes = MESSAGE) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["-o", "smtp_helo_name=client.example", *argv],
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
    )
    return Outcome(code, out.getvalue(), err.getvalue())


def deliver_args(server: AiosmtpdServer, *rcpts: str, sender: str = "a@example.org") -> list[str]:
    args = ["deliver", "--nexthop", server.nexthop, "-f", sender, "--json"]
    for r in rcpts:
        args += ["-r", r]
    return args


def assert_clean_error(outcome: Outcome, code: int, *words: str) -> None:
    assert outcome.code == code, outcome.stderr
    assert outcome.stdout == ""
    assert "Traceback" not in outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mailcarrier: fatal: ")
    for word in words:
        assert word in lines[0]


# --- exit codes and JSON ----------------------------------------------------------------------


def test_all_sent_exit_0_and_json_shape(smtp_server: AiosmtpdServer) -> None:
    outcome = cli(*deliver_args(smtp_server, "b@example.net", "c@example.net"), "-")
    assert outcome.code == 0, outcome.stderr
    data = outcome.json
    assert list(data) == ["queue_id", "recipients"]
    assert isinstance(data["queue_id"], str) and data["queue_id"]
    recipients = data["recipients"]
    assert isinstance(recipients, list) and len(recipients) == 2
    for entry, address in zip(recipients, ["b@example.net", "c@example.net"], strict=True):
        assert list(entry) == JSON_KEYS
        assert entry["address"] == address
        assert entry["status"] == "sent"
        assert entry["dsn"] == "2.0.0"
        assert entry["relay"] == f"127.0.0.1[127.0.0.1]:{smtp_server.port}"
        assert entry["diagnostic"] == "250 2.0.0 Ok: queued"
        assert isinstance(entry["delay"], float | int) and entry["delay"] >= 0
        assert len(entry["delays"]) == 4
        assert all(isinstance(d, float | int) and d >= 0 for d in entry["delays"])
        assert entry["delay"] == pytest.approx(sum(entry["delays"]), abs=1e-5)
        assert entry["conn_use"] == 1
    # Log lines on stderr, one per recipient, in Postfix's format with the same queue ID.
    lines = outcome.log_lines
    assert len(lines) == 2
    for line in lines:
        m = LOG_LINE.match(line)
        assert m, line
        assert m["qid"] == data["queue_id"]
        assert m["status"] == "sent"
    assert smtp_server.messages[0].content == b"Subject: cli\r\n\r\nhello from the command line\r\n"


@pytest.mark.parametrize(
    ("rejects", "code", "statuses"),
    [
        ({"b": "450 4.2.0 try later"}, 75, ["deferred"]),
        ({"b": "550 5.1.1 unknown"}, 69, ["bounced"]),
        ({"b": "550 5.1.1 unknown", "c": "450 4.2.0 later"}, 75, ["bounced", "deferred"]),
        ({"b": "550 5.1.1 unknown"}, 69, ["bounced", "sent"]),
        ({"c": "451 4.3.0 later"}, 75, ["sent", "deferred"]),
    ],
    ids=["deferred", "bounced", "bounced+deferred", "bounced+sent", "sent+deferred"],
)
def test_exit_codes(
    smtp_handler: RecordingHandler,
    smtp_server: AiosmtpdServer,
    rejects: dict[str, str],
    code: int,
    statuses: list[str],
) -> None:
    smtp_handler.reject = rejects
    rcpts = ["b@example.net", "c@example.net"][: len(statuses)]
    outcome = cli(*deliver_args(smtp_server, *rcpts))
    assert outcome.code == code, outcome.stderr
    assert [r["status"] for r in outcome.json["recipients"]] == statuses
    # Lines appear in the order recipients are marked (RCPT rejections before the dot).
    logged = {m["to"]: m["status"] for m in map(LOG_LINE.match, outcome.log_lines) if m}
    assert logged == dict(zip(rcpts, statuses, strict=True))


def test_connection_refused_is_deferred_75() -> None:
    port = free_port()
    outcome = cli("deliver", "--nexthop", f"[127.0.0.1]:{port}", "-f", "", "-r", "b@x.example")
    assert outcome.code == 75
    assert outcome.stdout == ""  # no --json
    assert f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused" in outcome.stderr
    assert "dsn=4.4.1, status=deferred" in outcome.stderr


def test_message_from_file(smtp_server: AiosmtpdServer, tmp_path: Path) -> None:
    message = tmp_path / "msg.eml"
    message.write_bytes(b"Subject: file\n\n.dot\nbody\n")
    outcome = cli(*deliver_args(smtp_server, "b@example.net"), str(message), stdin=b"IGNORED")
    assert outcome.code == 0, outcome.stderr
    assert smtp_server.messages[0].content == b"Subject: file\r\n\r\n.dot\r\nbody\r\n"


def test_message_from_stdin_by_default(smtp_server: AiosmtpdServer) -> None:
    outcome = cli(*deliver_args(smtp_server, "b@example.net"), stdin=b"Subject: in\n\nx\n")
    assert outcome.code == 0, outcome.stderr
    assert smtp_server.messages[0].content == b"Subject: in\r\n\r\nx\r\n"


def test_null_sender_and_dsn_options(smtp_server: AiosmtpdServer) -> None:
    # aiosmtpd announces DSN here but refuses its parameters: NOTIFY=/RET= are really sent.
    outcome = cli(
        *deliver_args(smtp_server, "b@example.net", sender=""), "-N", "success,delay", "-R", "hdrs"
    )
    assert outcome.code == 69
    (entry,) = outcome.json["recipients"]
    assert "555" in entry["diagnostic"]  # aiosmtpd: "MAIL FROM parameters not recognized"


def test_lmtp_transport_flag_logs_as_lmtp() -> None:
    port = free_port()
    outcome = cli(
        "deliver", "--transport", "lmtp", "--nexthop", f"inet:[127.0.0.1]:{port}",
        "-f", "a@example.org", "-r", "b@example.net", "--json",
    )  # fmt: skip
    assert outcome.code == 75
    assert " postfix/lmtp[" in outcome.stderr
    (entry,) = outcome.json["recipients"]
    assert entry["status"] == "deferred"


def test_transport_flag_names_a_master_cf_service(
    tmp_path: Path, smtp_server: AiosmtpdServer
) -> None:
    """``deliver --transport NAME``: a master.cf smtp service, with its -o settings (the
    EHLO name the server saw); a name nothing defines is a usage error with a hint."""
    (tmp_path / "main.cf").write_text("myhostname = mc.example\n")
    (tmp_path / "master.cf").write_text(
        "named unix - - n - - smtp -o { smtp_helo_name = named.example }\n"
    )
    base = ["-c", str(tmp_path), "deliver", "--nexthop", smtp_server.nexthop]
    base += ["-f", "a@example.org", "-r", "b@example.net"]
    assert cli(*base, "--transport", "named").code == 0
    assert cli(*base).code == 0
    # cli() gives -o smtp_helo_name=client.example; the service's own -o wins over it.
    assert [m.helo for m in smtp_server.messages] == ["named.example", "client.example"]
    outcome = cli(*base, "--transport", "nmaed")
    assert (outcome.code, outcome.stderr) == (
        64,
        'mailcarrier: fatal: --transport: unknown transport "nmaed" (want smtp, lmtp or an smtp or '
        'lmtp service of master.cf) (did you mean "named"?)\n',
    )


class _Unreadable(io.BytesIO):
    """Standard input that fails the test if it is read."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("deliver -bv read standard input")


@pytest.mark.parametrize(
    ("rejects", "code"), [({}, 0), ({"c@": "550 5.1.1 <c@example.net>: unknown user"}, 69)]
)
def test_probe_flag_verifies_recipients_without_a_message(
    smtp_handler: RecordingHandler, smtp_server: AiosmtpdServer, rejects: dict[str, str], code: int
) -> None:
    """``deliver -bv`` (sendmail's "verify, do not collect or deliver a message"): MAIL,
    RCPT and RSET; standard input is not read, nothing is delivered, and the JSON result,
    the exit code and the delivery lines read the RCPT replies."""
    smtp_handler.reject = rejects
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", "smtp_helo_name=client.example", "deliver", "-bv"]
    argv += deliver_args(smtp_server, "b@example.net", "c@example.net")[1:]
    assert run(argv, stdin=_Unreadable(), stdout=out, stderr=err) == code, err.getvalue()
    assert smtp_server.messages == []
    entries = json.loads(out.getvalue())["recipients"]
    assert [list(entry) for entry in entries] == [JSON_KEYS, JSON_KEYS]
    assert (entries[0]["status"], entries[0]["dsn"], entries[0]["diagnostic"]) == (
        "sent",
        "2.1.5",
        "250 2.1.5 Ok",
    )
    lines = [line for line in err.getvalue().splitlines() if ": to=<" in line]
    assert lines[0].endswith(", dsn=2.1.5, status=deliverable (250 2.1.5 Ok)")
    if rejects:
        assert (entries[1]["status"], entries[1]["dsn"]) == ("bounced", "5.1.1")
        assert lines[1].endswith(
            "status=undeliverable (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <c@example.net>: "
            "unknown user (in reply to RCPT TO command))"
        )
    else:
        assert entries[1]["status"] == "sent"
        assert lines[1].endswith("status=deliverable (250 2.1.5 Ok)")


# --- errors -----------------------------------------------------------------------------------

BASE = ["deliver", "--nexthop", "[127.0.0.1]:9", "-f", "a@example.org", "-r", "b@example.net"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["deliver", "-f", "a@example.org", "-r", "b@example.net"], ["--nexthop"]),
        (["deliver", "--nexthop", "[127.0.0.1]", "-r", "b@example.net"], ["-f"]),
        (["deliver", "--nexthop", "[127.0.0.1]", "-f", "a@example.org"], ["-r"]),
        ([*BASE, "-N", "BOGUS"], ["NOTIFY", "BOGUS"]),
        ([*BASE, "-N", "NEVER,SUCCESS"], ["NEVER"]),
        ([*BASE, "-R", "sometimes"], ["-R"]),
        (["deliver", "--nexthop", "[127.0.0.1", "-f", "a", "-r", "b"], ["[127.0.0.1"]),
        (["deliver", "--nexthop", "[127.0.0.1]:port", "-f", "a", "-r", "b"], ["[127.0.0.1]:port"]),
        (
            ["deliver", "--transport", "lmtp", "--nexthop", "bogus:/x", "-f", "a", "-r", "b"],
            ["bogus:/x"],
        ),
        (["nosuchcommand"], ["nosuchcommand"]),
        (["-o", "no_equals_sign", *BASE], ["no_equals_sign"]),
        ([*BASE, "--transport", "uucp"], ["uucp"]),
        ([*BASE, "-bv"], ["-bv", "/dev/null"]),
    ],
    ids=[
        "missing-nexthop",
        "missing-sender",
        "missing-rcpt",
        "bad-notify",
        "notify-never-plus",
        "bad-ret",
        "unclosed-bracket",
        "bad-port",
        "bad-lmtp-dest",
        "unknown-command",
        "bad-o-syntax",
        "bad-transport",
        "probe-with-file",
    ],
)
def test_usage_errors_exit_64(argv: list[str], words: list[str]) -> None:
    assert_clean_error(cli(*argv, "/dev/null"), 64, *words)


@pytest.mark.parametrize(
    ("option", "parameter"),
    [
        ("smtp_connect_timeout=abc", "smtp_connect_timeout"),
        ("smtp_line_length_limit=-5", "smtp_line_length_limit"),
        ("smtp_skip_5xx_greeting=perhaps", "smtp_skip_5xx_greeting"),
        ("smtp_rcpt_timeout=0s", "smtp_rcpt_timeout"),
    ],
)
def test_bad_config_value_exit_78(option: str, parameter: str) -> None:
    outcome = cli("-o", option, *BASE, "/dev/null")
    assert_clean_error(outcome, 78, parameter)


def test_missing_config_dir_exit_78(tmp_path: Path) -> None:
    assert_clean_error(cli("-c", str(tmp_path / "absent"), *BASE, "/dev/null"), 78)


def test_bad_main_cf_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("# comment\nsmtp_helo_timeout = soon\n")
    outcome = cli("-c", str(tmp_path), *BASE, "/dev/null")
    assert_clean_error(outcome, 78, "smtp_helo_timeout", "main.cf:2")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_message_file_exit_65(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "absent.eml"
    if kind == "directory":
        path = tmp_path
    assert_clean_error(cli(*BASE, str(path)), 65, str(path))


# --- the real executable ----------------------------------------------------------------------

needs_script = pytest.mark.skipif(
    not MAILCARRIER.exists(), reason="the mailcarrier console script is not installed in .venv"
)


@needs_script
def test_subprocess_delivers_from_stdin(smtp_server: AiosmtpdServer) -> None:
    proc = subprocess.run(
        [str(MAILCARRIER), *deliver_args(smtp_server, "b@example.net"), "-"],
        input=MESSAGE,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    data = json.loads(proc.stdout)
    assert data["recipients"][0]["status"] == "sent"
    (line,) = [ln for ln in stderr.splitlines() if ": to=<" in ln]
    assert LOG_LINE.match(line)
    assert smtp_server.messages[0].content == b"Subject: cli\r\n\r\nhello from the command line\r\n"


@needs_script
def test_subprocess_mixed_result(
    smtp_handler: RecordingHandler, smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    smtp_handler.reject = {"x": "550 5.1.1 <x@example.net>: unknown", "y": "452 4.2.2 full"}
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    args = deliver_args(smtp_server, "x@example.net", "y@example.net", "z@example.net")
    proc = subprocess.run(
        [str(MAILCARRIER), *args, str(message)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 75, proc.stderr.decode()
    assert [r["status"] for r in json.loads(proc.stdout)["recipients"]] == [
        "bounced",
        "deferred",
        "sent",
    ]


@needs_script
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["deliver", "-f", "a", "-r", "b"], 64),
        (["-o", "smtp_connect_timeout=abc", *BASE, "/dev/null"], 78),
        ([*BASE, "/nonexistent/message.eml"], 65),
    ],
    ids=["usage", "config", "data"],
)
def test_subprocess_errors_have_no_traceback(argv: list[str], code: int) -> None:
    proc = subprocess.run([str(MAILCARRIER), *argv], capture_output=True, timeout=60, check=False)
    stderr = proc.stderr.decode()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("mailcarrier: fatal: ")
    assert proc.stdout == b""


@pytest.mark.parametrize(
    ("sender", "message", "smtputf8"),
    [
        ("a@example.org", b"Subject: plain\n\nb\xc3\xbcdy\n", False),
        ("j\u00f6rg@example.org", b"Subject: plain\n\nbody\n", True),
        ("a@example.org", "Subject: gr\u00fc\u00dfe\n\nbody\n".encode(), True),
    ],
)
def test_deliver_sets_smtputf8_from_envelope_and_header(
    smtp_server: AiosmtpdServer, sender: str, message: bytes, smtputf8: bool
) -> None:
    outcome = cli(*deliver_args(smtp_server, "b@example.net", sender=sender), stdin=message)
    assert outcome.code == 0, outcome.stderr
    (received,) = smtp_server.messages
    assert ("SMTPUTF8" in received.mail_options) is smtputf8
