"""The lean submission path against the general one: for any command line, main.cf and
message, ``mailcarrier sendmail`` gives the same exit code, the same lines on standard error
and the same queue file (but for the queue ID, the arrival time and the Date: header, which
are the moment's), whether the lean path (lean/submit.py) runs it or hands it back.

Each example runs the general path (cli.py `run`) and then what entry.py runs (the lean
path, and the general path with the bytes read put back when it falls back) on the same
configuration, queue and standard input; `event()` counts how often the lean path took it.
"""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mailcarrier.cli import run
from mailcarrier.lean.replay import replay
from mailcarrier.lean.submit import Fallback, sendmail
from mailcarrier.queue.qfile import parse_envelope

# --- the two paths ------------------------------------------------------------------------


def _general(argv: list[str], data: bytes) -> tuple[int, str]:
    err = io.StringIO()
    code = run(argv, stdin=io.BytesIO(data), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def _entry(argv: list[str], data: bytes) -> tuple[int, str, bool]:
    """What entry.py does: (exit code, standard error, whether the lean path ran it)."""
    stdin = io.BytesIO(data)
    err = io.StringIO()
    outcome = sendmail(argv, stdin, err)
    if not isinstance(outcome, Fallback):
        return outcome, err.getvalue(), True
    source = replay(outcome.read, stdin) if outcome.read else stdin
    code = run(argv, stdin=source, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue(), False


def _take_queue(queue: Path) -> list[bytes]:
    """The queued files (normalised), removed, and then the log file (normalised), removed;
    no dot-file may be left."""
    out = []
    incoming = queue / "incoming"
    ids = []
    for path in sorted(incoming.iterdir()) if incoming.is_dir() else []:
        assert not path.name.startswith("."), f"left behind: {path.name}"
        data = path.read_bytes()
        ids.append(path.name.encode())
        data = data.replace(path.name.encode(), b"QUEUEID")
        data = re.sub(rb"(?m)^time [0-9.e+]+$", b"time T", data, count=1)
        data = re.sub(rb"(?m)^Date: .*$", b"Date: D", data)
        out.append(data)
        path.unlink()
    for log in sorted(queue.parent.glob("mail.log*")):  # "mail.log continued" too
        lines = log.read_bytes()
        for queue_id in ids:
            lines = lines.replace(queue_id, b"QUEUEID")
        out.append(re.sub(rb"(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d ", b"STAMP ", lines))
        log.unlink()
    return out


def _compare(config: Path, queue: Path, argv: list[str], data: bytes) -> bool:
    """Both paths on one input; returns whether the lean path took it."""
    expected = _general(argv, data)
    expected_files = _take_queue(queue)
    code, err, lean = _entry(argv, data)
    assert (code, err) == expected
    assert _take_queue(queue) == expected_files
    return lean


# --- what the examples are made of --------------------------------------------------------

SENDERS = [
    "s@example.org",
    "",
    "user",
    "S.Name+tag@Example.ORG",
    "bad address",
    "<a@b.example>",
    "é@example.org",
    "x@[192.0.2.1]",
    "a@-bad.example",
    "a..b@example.org",
    "=x",
]
RECIPIENTS = [
    "r@example.net",
    "R@Example.NET",
    "root",
    "r2@example.net",
    "a b@example.net",
    "Name <n@example.net>",
    "p@example.net, q@example.net",
    "",
    "x@example.",
    "ü@x.de",
    "(c)u@example.net",
    "x@example.net\x1b",
]
FULL_NAMES = ["Joe Sender", "  Spaced   Name ", "Dr. Who", "Zoë", "=?utf-8?q?x?=", "Tab\tName"]
HEADER_LINES = [
    "From: f@example.org",
    "To: t@example.net",
    "To: Name Here <t2@example.net>, t3@example.net",
    "To: <t4@example.net>",
    "Cc: c@example.net",
    "cc : C@Example.net",
    "Bcc: hidden@example.net",
    "Resent-To: rt@example.net",
    "To: Undisclosed recipients:;",
    'To: "Quoted, Name" <q@example.net>',
    "To:",
    "To: root",
    "Subject: hello",
    "Subject: caf\u00e9",
    " continued line",
    "\tcontinued with a tab",
    "Date: Mon, 1 Jan 2024 00:00:00 +0000",
    "Message-ID: <given@example.org>",
    "TLS-Required: No",
    "not a header line",
    "X-Long: " + "x" * 120,
    ".",
]
BODY_LINES = [
    "plain text",
    ".",
    "..dotted",
    ". not alone",
    "caf\u00e9 8-bit",
    "",
    " indented",
    "x" * 200,
    "From: not a header",
]
MAIN_CF = [
    "maillog_file = LOG",
    "myhostname = mx.example.org",
    "myhostname =",
    "mydomain = example.com",
    "myorigin = example.net",
    "myorigin = $mydomain",
    "myorigin = ${myhostname}",
    "myorigin = $myhostname.extra",
    "message_size_limit = 400",
    "message_size_limit = 0",
    "message_size_limit = 10k",
    "header_size_limit = 60",
    "header_size_limit = 0",
    "smtputf8_enable = NO",
    "requiretls_enable = maybe",
    "relayhost = [192.0.2.1]",
    "header_size_limit = 2048",
    "smtp_helo_timeout = 30x",
    "smtp_tls_security_level = encrypt",
    "relay_destination_concurrency_limit = 2",
    "smtputf8_autodetect_classes = all",
    "syslog_name = mc",
    "syslog_name = $x",
    "# a comment",
    "  continued",
    "bad line",
]


OPTIONS = [
    "-t",
    "-t",
    "-i",
    "-oi",
    "-o i",
    "-oem",
    "-f",
    "-fa",
    "-r",
    "-F",
    "-bm",
    "-b m",
    "-v",
    "-N never",
    "-R hdrs",
    "-V id",
    "-B 8BITMIME",
    "-O smtputf8=yes",
    "--requiretls",
    "-ti",
    "-f=x",
    "-X log",
    "-bh",
]


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    ordinary = draw(st.sampled_from([True, True, False]))  # mostly what the lean path takes
    kinds = OPTIONS[:11] if ordinary else OPTIONS
    senders, names = (SENDERS[:4], FULL_NAMES[:3]) if ordinary else (SENDERS, FULL_NAMES)
    words: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind in ("-f", "-r"):
            words += [kind, draw(st.sampled_from(senders))]
        elif kind == "-fa":
            words.append("-f" + draw(st.sampled_from(SENDERS[:4])))
        elif kind == "-F":
            words += ["-F", draw(st.sampled_from(names))]
        else:
            words += kind.split(" ")
    words += draw(st.lists(st.sampled_from(RECIPIENTS[:4] if ordinary else RECIPIENTS), max_size=3))
    return words


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    ordinary = draw(st.sampled_from([True, True, False]))
    header = draw(
        st.lists(st.sampled_from(HEADER_LINES[:13] if ordinary else HEADER_LINES), max_size=6)
    )
    separator = draw(st.sampled_from([[""], [], [""]]))
    body = draw(st.lists(st.sampled_from(BODY_LINES), max_size=5))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join([*header, *separator, *body])
    if draw(st.booleans()):
        text += newline
    return text.encode("utf-8")


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield tmp_path / "config", tmp_path / "queue"


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    argv=_argv(),
    main_cf=st.one_of(
        st.lists(st.sampled_from(MAIN_CF[:10]), max_size=3),
        st.lists(st.sampled_from(MAIN_CF), max_size=3),
    ),
    data=_message(),
    config_flag=st.sampled_from(["-c", "-C"]),
)
def test_lean_path_is_the_general_path(
    place: tuple[Path, Path], argv: list[str], main_cf: list[str], data: bytes, config_flag: str
) -> None:
    config, queue = place
    config.mkdir(exist_ok=True)
    log = str(queue.with_name("mail.log"))
    # The queue directory last: no continuation line of the pool can change it.
    lines = [*(line.replace("LOG", log) for line in main_cf), f"queue_directory = {queue}"]
    (config / "main.cf").write_text("\n".join(lines) + "\n")
    if config_flag == "-c":
        command = ["-c", str(config), "sendmail", *argv]
    else:
        command = ["sendmail", "-C", str(config / "main.cf"), *argv]
    lean = _compare(config, queue, command, data)
    event(f"lean path: {lean}")


# --- examples the lean path must take --------------------------------------------------------

TAKEN = [
    (["-t"], b"From: a@example.org\nTo: b@example.net\nSubject: x\n\nbody\n"),
    (["-t", "-i"], b"To: Some One <b@example.net>, c@example.net\nBcc: d@example.net\n\n.\nx\n"),
    (["-f", "", "r@example.net"], b"Subject: null sender\n\n.\nnot this\n"),
    (["-F", "Joe  Sender", "-oi", "root"], b"no header at all\n.\nstill body\n"),
    (["-bm", "-r", "s@example.org", "r@example.net"], b"Subject: 8-bit\n\ncaf\xc3\xa9\n"),
    (["r@example.net", "R@EXAMPLE.net"], b"Subject: no body"),
    (["-v", "r@example.net"], b""),
]


@pytest.mark.parametrize(("argv", "data"), TAKEN)
def test_ordinary_submissions_take_the_lean_path(
    tmp_path: Path, argv: list[str], data: bytes
) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\nmyorigin = $mydomain\n")
    assert _compare(config, queue, ["-c", str(config), "sendmail", *argv], data)


def test_a_message_over_the_limit_is_refused_alike(tmp_path: Path) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\nmessage_size_limit = 100\n")
    argv = ["-c", str(config), "sendmail", "r@example.net"]
    data = b"Subject: big\n\n" + b"line of text\n" * 20
    expected = _general(argv, data)
    assert expected == (
        69,
        "mailcarrier: fatal: message file too big (message_size_limit is 100 bytes)\n",
    )
    assert _entry(argv, data) == (*expected, True)
    assert sorted(os.listdir(queue / "incoming")) == []


def test_a_queue_file_that_cannot_be_written_is_reported_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\n")
    argv = ["-c", str(config), "sendmail", "r@example.net"]

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, err = _general(argv, b"Subject: x\n\nbody\n")
    lean_code, lean_err, lean = _entry(argv, b"Subject: x\n\nbody\n")
    assert lean and code == lean_code == 75
    pattern = (
        r"mailcarrier: fatal: queue file write error: {}/incoming/\.\w+\.tmp: "
        r"No space left on device\n"
    )
    assert re.fullmatch(pattern.format(re.escape(str(queue))), err)
    assert re.fullmatch(pattern.format(re.escape(str(queue))), lean_err)
    assert sorted(os.listdir(queue / "incoming")) == []


def test_the_bytes_read_before_a_fallback_are_given_back(tmp_path: Path) -> None:
    # A UTF-8 Subject: the lean path reads the header, then leaves the message to the
    # general path, which must read it whole.
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\n")
    argv = ["-c", str(config), "sendmail", "-t"]
    data = b"To: r@example.net\nSubject: caf\xc3\xa9\n\n" + b"body line\n" * 20000
    outcome = sendmail(argv, io.BytesIO(data), io.StringIO())
    assert isinstance(outcome, Fallback) and outcome.read == data[: data.index(b"caf") + 6]
    assert not _compare(config, queue, argv, data)


# --- crash points, in the real command ----------------------------------------------------

RCPTS = ["a@example.net", "b@example.net"]
MESSAGE = b"Subject: crash\n\nbody\n"


@pytest.mark.parametrize(
    "point", ["enqueue-after-write", "enqueue-before-rename", "enqueue-after-rename"]
)
def test_a_crash_leaves_the_message_whole_or_not_queued(tmp_path: Path, point: str) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\n")
    argv = ["-c", str(config), "sendmail", "-f", "s@example.org", *RCPTS]
    outcome = sendmail(argv, io.BytesIO(MESSAGE), io.StringIO())
    assert outcome == 0  # the lean path takes it
    for path in (queue / "incoming").iterdir():
        path.unlink()
    env = {**os.environ, "MAILCARRIER_CRASH_AT": point}
    done = subprocess.run(
        [sys.executable, "-m", "mailcarrier", *argv],
        input=MESSAGE,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    queued = [p for p in (queue / "incoming").iterdir() if not p.name.startswith(".")]
    if point != "enqueue-after-rename":  # never acknowledged, never queued
        assert queued == []
        return
    [path] = queued
    data = path.read_bytes()
    envelope = parse_envelope(data)
    assert [r.address for r in envelope.recipients] == RCPTS
    assert data[envelope.content_offset :].endswith(MESSAGE)
    assert len(data) - envelope.content_offset == envelope.size


def test_the_log_lines_are_the_general_path_s(tmp_path: Path) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    log = tmp_path / "mail.log"
    (config / "main.cf").write_text(
        f"queue_directory = {queue}\nmaillog_file = {log}\nsyslog_name = mc\n"
    )
    argv = ["-c", str(config), "sendmail", "-t"]
    data = b"To: r@example.net\nMessage-ID: <m\x01id@example.org>\n\nbody\n"
    assert _compare(config, queue, argv, data)
    _entry(argv, data)
    [path] = (queue / "incoming").iterdir()
    pickup, cleanup = log.read_text().splitlines()
    stamp = r"\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ mc/"
    assert re.fullmatch(
        rf"{stamp}pickup\[{os.getpid()}\]: {path.name}: uid={os.getuid()} from=<\S+@\S+>",
        pickup,
    )
    assert re.fullmatch(rf"{stamp}cleanup\[{os.getpid()}\]: .*", cleanup)
    assert cleanup.endswith(f"{path.name}: message-id=<m?id@example.org>")


def test_a_log_that_cannot_be_written_is_a_warning_alike(tmp_path: Path) -> None:
    config, queue = tmp_path / "config", tmp_path / "queue"
    config.mkdir()
    (config / "main.cf").write_text(f"queue_directory = {queue}\nmaillog_file = /dev/full\n")
    argv = ["-c", str(config), "sendmail", "r@example.net"]
    expected = _general(argv, b"Subject: x\n\nbody\n")
    assert expected == (
        0,
        "mailcarrier: warning: cannot write /dev/full: No space left on device\n",
    )
    assert _entry(argv, b"Subject: x\n\nbody\n") == (*expected, True)
