"""Resources and the local system: a full disk, a read-only queue, an endless standard
input and a closed standard output. Each gets one line and the right exit code, leaves no
temporary file, loses nothing already queued, and `run` delivers what it can.

The full-disk tests mount a small tmpfs (root only; skipped otherwise). On tmpfs a file
takes whole pages: a write inside the last page of a file needs no free space, one that
crosses into a new page does. The tests size messages so that the queue file of one leaves
room for its delivery records in its last page and the other does not.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

import mailcarrier
from mailcarrier.cli import run
from mailcarrier.queue.spool import record_reserve
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

PAGE = os.sysconf("SC_PAGE_SIZE")
HEADER = b"From: s@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <x@y>\n"
MAILCARRIER = [sys.executable, "-c", "from mailcarrier.cli import main; main()"]


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    handler = RecordingHandler(
        extra_keywords=("PIPELINING",), reject={"reject@": "550 5.1.1 No such user"}
    )
    srv = AiosmtpdServer(handler).start()
    try:
        yield srv
    finally:
        srv.stop()


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"mount {' '.join(args)}: {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    _mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int = 0) -> Path:
    """Take every free page of the file system but `leave`; remove the returned file to
    free them."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * PAGE)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        os.ftruncate(fd, os.fstat(fd).st_size // PAGE * PAGE - leave * PAGE)
    finally:
        os.close(fd)
    return filler


def _opts(queue: Path, nexthop: str = "[127.0.0.1]:9") -> list[str]:
    opts = [f"queue_directory={queue}", f"relayhost={nexthop}", "myorigin=example.org"]
    return [word for opt in opts for word in ("-o", opt)]


def _run(args: list[str], stdin: bytes | BinaryIO = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    src = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
    code = run(args, stdin=src, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _warnings(log: str) -> list[str]:
    """The text of each warning line (after ``postfix/qmgr[pid]: ``)."""
    return [line.split("]: ", 1)[1] for line in log.splitlines() if "]: warning: " in line]


def _files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def _sendmail(o: list[str], rcpt: str, body: bytes) -> str:
    """Queue one message; returns its queue ID."""
    queue = Path(o[1].split("=", 1)[1])
    before = set(os.listdir(queue / "incoming")) if (queue / "incoming").exists() else set()
    code, _, err = _run([*o, "sendmail", "-i", "-f", "s@example.org", rcpt], HEADER + b"\n" + body)
    assert (code, err) == (0, "")
    (queue_id,) = set(os.listdir(queue / "incoming")) - before
    return queue_id


def _sendmail_slack(o: list[str], rcpt: str, slack: int, pages: int = 1) -> str:
    """Queue a message whose file leaves about `slack` bytes free in its last page."""
    queue = Path(o[1].split("=", 1)[1])
    probe = _sendmail(o, rcpt, b"x\n")
    overhead = (queue / "incoming" / probe).stat().st_size - 2
    os.unlink(queue / "incoming" / probe)
    body_length = pages * PAGE - slack - overhead
    queue_id = _sendmail(o, rcpt, b"x" * (body_length - 1) + b"\n")
    got = -(queue / "incoming" / queue_id).stat().st_size % PAGE
    assert abs(got - slack) < 32, (got, slack)
    return queue_id


# --- a full disk ------------------------------------------------------------------------


def test_sendmail_and_submit_on_a_full_disk(tmpfs: Path, server: AiosmtpdServer) -> None:
    q = tmpfs / "q"
    o = _opts(q, server.nexthop)
    first = _sendmail(o, "one@example.net", b"first\n")
    second = _sendmail(o, "two@example.net", b"second\n")
    queued = {i: (q / "incoming" / i).read_bytes() for i in (first, second)}
    filler = _fill(tmpfs)

    code, out, err = _run(
        [*o, "sendmail", "-f", "s@example.org", "three@example.net"], b"\n" + b"y" * 50_000
    )
    assert (code, out) == (75, "")
    assert re.fullmatch(
        rf"mailcarrier: fatal: queue file write error: {q}/incoming/\.\w+\.tmp: "
        r"No space left on device\n",
        err,
    )
    assert _files(q / "incoming") == sorted(queued)  # no temporary file left
    # The Python API: one exception of the project's tree, nothing left behind either.
    config = mailcarrier.Config.defaults().with_overrides({"queue_directory": str(q)})
    with pytest.raises(mailcarrier.TemporaryError) as info:
        mailcarrier.submit_sync(
            b"\n" + b"z" * 50_000, sender="s@example.org", recipients=["r@x.org"], config=config
        )
    assert info.value.errno == errno.ENOSPC and info.value.path.startswith(f"{q}/incoming/.")
    assert _files(q / "incoming") == sorted(queued)

    filler.unlink()
    code, _, err = _run([*o, "run", "--once"])
    assert code == 0 and "warning" not in err
    got = {m.rcpt_tos[0]: m.content for m in server.messages}
    assert sorted(got) == ["one@example.net", "two@example.net"]
    for queue_id, rcpt in ((first, "one@example.net"), (second, "two@example.net")):
        body = queued[queue_id].split(b"\ncontent\n", 1)[1]
        assert got[rcpt].replace(b"\r\n", b"\n") == body


def test_run_once_on_a_full_disk_delivers_what_it_can(tmpfs: Path, server: AiosmtpdServer) -> None:
    """Three messages on a full disk: one is delivered and recorded; one has no room for its
    records and is not delivered (left as it was); one is bounced by the server and its
    bounce notice has no room (back in incoming/ with its verdict). With room again, a second
    run delivers the rest: every message and notice exactly once."""
    q = tmpfs / "q"
    o = _opts(q, server.nexthop)
    reserve = record_reserve(1, 1)
    _sendmail_slack(o, "fits@example.net", slack=2 * reserve)
    tight = _sendmail_slack(o, "tight@example.net", slack=reserve // 4)
    # Bounced: a 5-page message, returned whole in a notice that needs more than the page
    # that removing the first message frees.
    bounced = _sendmail_slack(o, "reject@example.net", slack=2 * reserve, pages=5)
    tight_before = (q / "incoming" / tight).read_bytes()
    tight_mtime = (q / "incoming" / tight).stat().st_mtime_ns
    bounced_before = (q / "incoming" / bounced).read_bytes()
    filler = _fill(tmpfs)

    code, _, err = _run([*o, "run", "--once"])
    assert code == 0 and "Traceback" not in err
    assert _warnings(err)[0] == (
        f"warning: {tight}: update queue file {q}/incoming/{tight}: No space left on device"
    )
    assert re.fullmatch(
        rf"warning: {bounced}: sender non-delivery notification: queue file write error: "
        rf"{q}/incoming/\.\w+\.tmp: No space left on device",
        _warnings(err)[1],
    )
    assert len(_warnings(err)) == 2
    assert [m.rcpt_tos for m in server.messages] == [["fits@example.net"]]
    # Not delivered and untouched; bounced and kept with its verdict, its notice to come.
    assert _files(q / "incoming") == sorted([tight, bounced])
    assert (q / "incoming" / tight).read_bytes() == tight_before
    assert (q / "incoming" / tight).stat().st_mtime_ns == tight_mtime
    after = (q / "incoming" / bounced).read_bytes()
    assert after.startswith(bounced_before) and b"status 0 bounced 5.1.1" in after
    assert not os.listdir(q / "active") and not os.listdir(q / "deferred")
    assert [n for n in os.listdir(q / "incoming") if n.startswith(".")] == []

    filler.unlink()
    code, _, err = _run([*o, "run", "--once"])
    assert code == 0 and "warning" not in err
    got = [(m.mail_from, m.rcpt_tos) for m in server.messages]
    assert got == [
        ("s@example.org", ["fits@example.net"]),
        ("s@example.org", ["tight@example.net"]),
        ("<>", ["s@example.org"]),  # the bounce notice for reject@example.net
    ]
    assert b"reject@example.net" in server.messages[2].content
    assert _run([*o, "queue", "list"])[1] == "Mail queue is empty\n"


def test_deliver_temporary_file_on_a_full_disk(tmpfs: Path) -> None:
    # Room for Python's check that TMPDIR is writable (4 bytes), not for the message.
    _fill(tmpfs, leave=2)
    env = {**os.environ, "TMPDIR": str(tmpfs)}
    args = ["deliver", "--nexthop", "[127.0.0.1]:9", "-f", "s@example.org", "-r", "r@x.org", "-"]
    done = subprocess.run(
        [*MAILCARRIER, *args],
        input=b"\n" + b"x" * 100_000,
        capture_output=True,
        env=env,
        check=False,
    )
    assert done.returncode == 75
    assert (
        done.stderr
        == (
            f"mailcarrier: fatal: cannot write temporary file in {tmpfs}: No space left on device\n"
        ).encode()
    )


# --- a read-only queue ------------------------------------------------------------------


def test_read_only_queue_file_system(tmpfs: Path, server: AiosmtpdServer) -> None:
    q = tmpfs / "q"
    o = _opts(q, server.nexthop)
    queued = _sendmail(o, "one@example.net", b"one\n")
    _mount("-o", "remount,ro", str(tmpfs))

    code, out, err = _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], b"\nhi\n")
    assert (code, out) == (75, "")
    assert re.fullmatch(
        rf"mailcarrier: fatal: queue file write error: {q}/incoming/\.\w+\.tmp: "
        r"Read-only file system\n",
        err,
    )
    code, out, err = _run([*o, "run", "--once"])
    assert (code, out) == (75, "")
    assert err == f"mailcarrier: fatal: open lock file {q}/master.lock: Read-only file system\n"
    code, out, err = _run([*o, "queue", "list", "--json"])
    assert code == 0 and queued in out
    code, _, err = _run([*o, "queue", "hold", queued])
    rename = f"rename {q}/incoming/{queued} to {q}/hold/{queued}"
    assert (code, err) == (75, f"mailcarrier: fatal: {rename}: Read-only file system\n")
    code, _, err = _run([*o, "queue", "flush"])
    flush = f"create {q}/flush.request"
    assert (code, err) == (75, f"mailcarrier: fatal: {flush}: Read-only file system\n")
    config = mailcarrier.Config.defaults().with_overrides({"queue_directory": str(q)})
    with pytest.raises(mailcarrier.TemporaryError) as info:
        mailcarrier.submit_sync(
            b"\nhi\n", sender="s@example.org", recipients=["r@x.org"], config=config
        )
    assert info.value.errno == errno.EROFS

    _mount("-o", "remount,rw", str(tmpfs))
    assert _run([*o, "run", "--once"])[0] == 0
    assert [m.rcpt_tos for m in server.messages] == [["one@example.net"]]


def _make_read_only(incoming: Path) -> str:
    """incoming/ cannot be written: a read-only bind mount as root, else mode 0500.
    Returns the error text to expect."""
    if os.geteuid() == 0:
        _mount("--bind", str(incoming), str(incoming))
        _mount("-o", "remount,bind,ro", str(incoming))
        return "Read-only file system"
    incoming.chmod(0o500)
    return "Permission denied"


def _make_writable(incoming: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["umount", str(incoming)], check=True)
    else:
        incoming.chmod(0o700)


def test_read_only_incoming_directory(tmp_path: Path, server: AiosmtpdServer) -> None:
    q = tmp_path / "q"
    o = _opts(q, server.nexthop)
    ids = [_sendmail(o, f"{n}@example.net", b"body\n") for n in ("one", "two")]
    before = {i: (q / "incoming" / i).read_bytes() for i in ids}
    reason = _make_read_only(q / "incoming")
    try:
        code, out, err = _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], b"\nx\n")
        assert (code, out) == (75, "")
        assert re.fullmatch(
            rf"mailcarrier: fatal: queue file write error: {q}/incoming/\.\w+\.tmp: {reason}\n",
            err,
        )
        code, _, err = _run([*o, "run", "--once"])
        assert code == 0 and "Traceback" not in err
        if reason == "Read-only file system":
            expected = [f"warning: {i}: open queue file {q}/incoming/{i}: {reason}" for i in ids]
        else:
            expected = [
                f"warning: {i}: rename {q}/incoming/{i} to {q}/active/{i}: {reason}" for i in ids
            ]
        assert _warnings(err) == expected
        assert {i: (q / "incoming" / i).read_bytes() for i in ids} == before
        assert server.messages == []
    finally:
        _make_writable(q / "incoming")
    assert _run([*o, "run", "--once"])[0] == 0
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "one@example.net",
        "two@example.net",
    ]


# --- endless standard input -------------------------------------------------------------


class _Endless(io.RawIOBase):
    """An endless message on standard input; counts the bytes read from it."""

    def __init__(self) -> None:
        self.consumed = 0
        self.head = b"Subject: big\n\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = (self.head + b"x" * len(buffer))[: len(buffer)]
        self.head = self.head[len(data) :]
        buffer[: len(data)] = data
        self.consumed += len(data)
        return len(data)


def test_deliver_stdin_stops_at_message_size_limit() -> None:
    src = _Endless()
    code, out, err = _run(
        [
            "-o",
            "message_size_limit=100000",
            "deliver",
            "--nexthop",
            "[127.0.0.1]:9",
            "-f",
            "s@example.org",
            "-r",
            "r@example.net",
            "-",
        ],
        cast(BinaryIO, io.BufferedReader(src)),
    )
    assert (code, out) == (69, "")  # EX_UNAVAILABLE, as Postfix's sendmail
    assert err == "mailcarrier: fatal: message file too big (message_size_limit is 100000 bytes)\n"
    assert 100_000 < src.consumed <= 100_000 + 65536


def test_sendmail_stops_at_message_size_limit(tmp_path: Path) -> None:
    """Header and body count together; reading stops at the limit; nothing is queued."""
    src = _Endless()
    o = [*_opts(tmp_path), "-o", "message_size_limit=100000"]
    code, out, err = _run(
        [*o, "sendmail", "-i", "r@example.net"], cast(BinaryIO, io.BufferedReader(src))
    )
    assert (code, out) == (69, "")
    assert err == "mailcarrier: fatal: message file too big (message_size_limit is 100000 bytes)\n"
    assert src.consumed <= 100_000 + 2 * 65536
    assert os.listdir(tmp_path / "incoming") == []
    # Header (with the fields sendmail adds) and body each within the limit, not together.
    header = b"X-Big: " + b"h" * 592 + b"\n"
    body = b"b" * 599 + b"\n"
    o = [*_opts(tmp_path), "-o", "message_size_limit=1000"]
    assert _run([*o, "sendmail", "-i", "r@example.net"], header + b"\n")[0] == 0
    assert _run([*o, "sendmail", "-i", "r@example.net"], b"\n" + body)[0] == 0
    for queued in os.listdir(tmp_path / "incoming"):
        os.unlink(tmp_path / "incoming" / queued)
    code, _, err = _run([*o, "sendmail", "-i", "r@example.net"], header + b"\n" + body)
    assert code == 69 and "message file too big" in err
    assert os.listdir(tmp_path / "incoming") == []


# --- a closed standard output -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["conf", "-d"],
        ["conf"],
        ["map", "-q", "key", "inline:{key=value}"],
        ["queue", "list"],
        ["queue", "list", "--json"],
    ],
)
def test_closed_standard_output_is_quiet(tmp_path: Path, args: list[str]) -> None:
    """``mailcarrier conf -d | head -1``: the reader goes away; no traceback, no error."""
    o = _opts(tmp_path / "q")
    if args[0] == "queue":
        _sendmail(o, "r@example.net", b"body\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    done = subprocess.run(
        [*MAILCARRIER, *o, *args], stdout=write_end, stderr=subprocess.PIPE, check=False
    )
    os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")


def test_conf_into_head(tmp_path: Path) -> None:
    """Through a shell pipe, as a user types it."""
    command = " ".join(shlex.quote(word) for word in MAILCARRIER)
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} conf -d | head -1"],
        capture_output=True,
        check=False,
    )
    assert done.stderr == b""
    assert done.stdout.count(b"\n") == 1
    assert done.returncode in (0, 141)


def test_deliver_json_into_a_closed_pipe(tmp_path: Path, server: AiosmtpdServer) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    args = ["deliver", "--json", "--nexthop", server.nexthop, "-f", "s@example.org"]
    done = subprocess.run(
        [*MAILCARRIER, *args, "-r", "r@example.net", "-"],
        input=b"Subject: x\n\nbody\n",
        stdout=write_end,
        stderr=subprocess.PIPE,
        check=False,
    )
    os.close(write_end)
    assert done.returncode == 141
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "status=sent" in lines[0]  # the delivery line, nothing more
    assert [m.rcpt_tos for m in server.messages] == [["r@example.net"]]


def test_maillog_file_on_a_full_disk(tmp_path: Path, tmpfs: Path, server: AiosmtpdServer) -> None:
    """The log cannot be written: mail still goes, one warning says why, no traceback."""
    maillog = tmpfs / "maillog"
    o = [*_opts(tmp_path / "q", server.nexthop), "-o", f"maillog_file={maillog}"]
    _fill(tmpfs)
    code, _, err = _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], b"\nhi\n")
    warning = f"mailcarrier: warning: cannot write {maillog}: No space left on device\n"
    assert (code, err) == (0, warning)
    code, _, err = _run([*o, "run", "--once"])
    assert (code, err) == (0, warning)
    assert [m.rcpt_tos for m in server.messages] == [["r@example.net"]]
    assert _run([*o, "queue", "list"])[1] == "Mail queue is empty\n"
