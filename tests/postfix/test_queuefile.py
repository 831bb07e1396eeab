"""postfix/queuefile.py: queue file paths, opening and locking as Postfix's agents do, the
mode check, marking recipients done as deliver_completed() does, and a real Postfix queue
file read back (when Debian's postfix is installed and the tests run as root)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import smtplib
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from mailcarrier.errors import TemporaryError
from mailcarrier.postfix.queuefile import (
    QueueFile,
    QueueFileMissing,
    QueueFileOpenError,
    QueueFileUpdateError,
    mark_done,
    open_queue_file,
    queue_id_ok,
    queue_name_ok,
    queue_path,
)
from mailcarrier.postfix.records import iter_records
from tests.support.peers import postfix_smtpd
from tests.support.postfix_records import QueueFileBuilder, cleanup_file, write_queue_file

CAPTURED: Final = Path(__file__).parent / "data" / "queuefile-records-after.json"
ID: Final = "2B84B2204F3"
BASE52: Final = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"


def _base52(value: int, width: int) -> str:
    """safe_ultostr(): most significant digit first, padded with "0"."""
    digits = ""
    while value:
        value, digit = divmod(value, 52)
        digits = BASE52[digit] + digits
    return digits.rjust(width, "0")


def long_id(seconds: int, usec: int, inode: str = "2Kfn") -> str:
    """A long queue ID (enable_long_queue_ids): seconds, microseconds, "z", inode."""
    return f"{_base52(seconds, 6)}{_base52(usec, 4)}z{inode}"


# --- paths ----------------------------------------------------------------------------------


def test_active_is_not_hashed() -> None:
    assert queue_path("active", ID) == f"active/{ID}"
    assert queue_path("incoming", ID) == f"incoming/{ID}"


def test_deferred_is_hashed() -> None:
    assert queue_path("deferred", "78D81220331") == "deferred/7/78D81220331"  # as observed
    assert queue_path("defer", ID) == f"defer/2/{ID}"
    assert queue_path("deferred", ID, hash_queue_depth=3) == f"deferred/2/B/8/{ID}"
    assert queue_path("deferred", "AB", hash_queue_depth=4) == "deferred/A/B/_/_/AB"


@pytest.mark.parametrize(
    "names", ["active, incoming", "active incoming", "ACTIVE,\tincoming", ["Active", "incoming"]]
)
def test_hash_queue_names(names: str | list[str]) -> None:
    assert queue_path("active", ID, hash_queue_names=names) == f"active/2/{ID}"
    assert queue_path("deferred", ID, hash_queue_names=names) == f"deferred/{ID}"


def test_long_queue_ids_hash_on_the_microseconds() -> None:
    queue_id = long_id(1796224210, 0x1E240)
    assert queue_path("active", queue_id) == f"active/{queue_id}"
    assert queue_path("deferred", queue_id) == f"deferred/1/{queue_id}"
    assert queue_path("deferred", queue_id, hash_queue_depth=5) == f"deferred/1/E/2/4/0/{queue_id}"
    # Microseconds of 3 hex digits are zero-padded to five: "%05X".
    assert queue_path("deferred", long_id(1, 0xABC), hash_queue_depth=2).startswith("deferred/0/0/")


def test_long_queue_id_forms() -> None:
    # A "z" too early is no separator: the ID hashes as it is.
    assert queue_path("deferred", "3Kfz2Kfn") == "deferred/3/3Kfz2Kfn"
    # The last "z" is the separator (the inode part has none: base 51 has no "z").
    queue_id = long_id(1796224210, 999999)
    assert queue_id.count("z") == 1
    assert queue_path("deferred", queue_id, hash_queue_depth=2) == f"deferred/F/4/{queue_id}"
    # Microseconds that are not base 52 ("a" is not in the alphabet) count as 0.
    assert queue_path("deferred", "3Kf2Kf3aaaz2Kfn") == "deferred/0/3Kf2Kf3aaaz2Kfn"


def test_names() -> None:
    assert queue_name_ok("active") and queue_name_ok("a" * 100)
    assert not any(queue_name_ok(n) for n in ("", "a" * 101, "act/ive", "..", "activé", "a_b"))
    assert queue_id_ok(ID) and queue_id_ok("host_example_com") and queue_id_ok("x" * 255)
    assert not any(queue_id_ok(i) for i in ("", "x" * 256, "../x", "a.b", "2B8\n", "ÄB"))


@pytest.mark.parametrize(
    ("queue_name", "queue_id", "message"),
    [
        ("act/ive", ID, "bad mail queue name: 'act/ive'"),
        ("", ID, "bad mail queue name: ''"),
        ("active", "../../etc/passwd", "bad mail queue ID: '../../etc/passwd'"),
        ("active", "", "bad mail queue ID: ''"),
    ],
)
def test_bad_names(queue_name: str, queue_id: str, message: str) -> None:
    with pytest.raises(QueueFileMissing) as info:
        queue_path(queue_name, queue_id)
    assert str(info.value) == message


# --- opening --------------------------------------------------------------------------------


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    write_queue_file(tmp_path / "active" / ID, cleanup_file(b"Subject: x\n\nhi\n").data)
    return tmp_path


@pytest.fixture
def opened(queue: Path) -> Iterator[QueueFile]:
    with open_queue_file("active", ID, queue_directory=queue) as qf:
        yield qf


def _exclusive(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def test_open_read_write_and_share_locked(queue: Path, opened: QueueFile) -> None:
    assert opened.path == str(queue / "active" / ID)
    assert (opened.queue_name, opened.queue_id) == ("active", ID)
    assert fcntl.fcntl(opened.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
    assert fcntl.fcntl(opened.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    # A queue manager cannot lock it exclusively while the agent holds it...
    with pytest.raises(BlockingIOError):
        _exclusive(queue / "active" / ID)
    # ...but another agent can share it.
    with open_queue_file("active", ID, queue_directory=queue):
        pass
    opened.close()
    assert opened.closed
    os.close(_exclusive(queue / "active" / ID))
    opened.close()  # twice is fine


def test_an_exclusive_lock_makes_the_open_fail(queue: Path) -> None:
    holder = _exclusive(queue / "active" / ID)
    try:
        with pytest.raises(QueueFileOpenError) as info:
            open_queue_file("active", ID, queue_directory=queue)
    finally:
        os.close(holder)
    path = queue / "active" / ID
    assert str(info.value) == f"shared lock {path}: Resource temporarily unavailable"
    assert info.value.errno == errno.EWOULDBLOCK
    assert isinstance(info.value, TemporaryError)


def test_relative_to_the_current_directory(queue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(queue)
    with open_queue_file("active", ID) as qf:
        assert qf.path == f"active/{ID}"


def test_hashed_queue(tmp_path: Path) -> None:
    write_queue_file(tmp_path / "deferred" / "2" / "B" / ID, b"E\0")
    with open_queue_file("deferred", ID, queue_directory=tmp_path, hash_queue_depth=2) as qf:
        assert qf.path.endswith(f"deferred/2/B/{ID}")


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(QueueFileMissing) as info:
        open_queue_file("active", ID, queue_directory=tmp_path)
    assert str(info.value) == f"open active {ID}: No such file or directory"
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o500, 0o000])
def test_not_a_ready_queue_file(queue: Path, mode: int) -> None:
    os.chmod(queue / "active" / ID, mode)
    with pytest.raises(QueueFileMissing) as info:
        open_queue_file("active", ID, queue_directory=queue)
    assert str(info.value) == (
        f"{queue}/active/{ID}: owner permissions {mode:04o} are not those of a ready "
        "queue file (0700)"
    )


def test_group_and_other_bits_do_not_matter(queue: Path) -> None:
    os.chmod(queue / "active" / ID, 0o755)
    open_queue_file("active", ID, queue_directory=queue).close()


def test_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "active" / ID).mkdir(parents=True)
    with pytest.raises(
        QueueFileMissing, match=r"/active/2B84B2204F3: uid \d+: not a regular file$"
    ):
        open_queue_file("active", ID, queue_directory=tmp_path)
    target = write_queue_file(tmp_path / "elsewhere", b"E\0")
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / ID).symlink_to(target)
    with pytest.raises(QueueFileMissing, match="not a regular file"):
        open_queue_file("incoming", ID, queue_directory=tmp_path)


def test_other_open_errors(queue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(QueueFileOpenError) as info:
        open_queue_file("active", ID, queue_directory=queue)
    assert str(info.value) == f"open active {ID}: Permission denied"


def test_a_file_removed_after_the_check(queue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def vanish(path: str, flags: int, mode: int = 0o777) -> int:
        os.unlink(path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", vanish)
    with pytest.raises(QueueFileMissing, match=f"^open active {ID}: No such file or directory$"):
        open_queue_file("active", ID, queue_directory=queue)


# --- content and marking --------------------------------------------------------------------


def captured_before() -> bytes:
    """The captured file as it was before delivery: R at 711 (alice2) and 897 (bounceme)."""
    builder = QueueFileBuilder()
    for offset, rtype, data in json.loads(CAPTURED.read_text()):
        assert builder.add("R" if offset in (711, 897) else rtype, data) == offset
    return builder.bytes()


def _listing(fd: int) -> list[list[object]]:
    return [[r.offset, r.type, r.data.decode()] for r in iter_records(fd)]


def test_marking_as_postfix_did(tmp_path: Path) -> None:
    # Postfix's smtp(8) marked alice2 (sent) and bounceme (bounced) and left deferme (R).
    path = write_queue_file(tmp_path / "active" / "78D81220331", captured_before())
    before = path.read_bytes()
    with open_queue_file("active", "78D81220331", queue_directory=tmp_path) as qf:
        assert [r.type for r in iter_records(qf.fd) if r.offset in (711, 803, 897)] == ["R"] * 3
        for offset in (711, 897):
            qf.mark_done(offset)
        qf.mark_done(-1)  # a recipient that is not to be marked
        qf.mark_done(711)  # already done: nothing is written
        assert _listing(qf.fd) == json.loads(CAPTURED.read_text())
    after = path.read_bytes()
    assert [i for i in range(len(before)) if before[i] != after[i]] == [711, 897]
    assert after[711:712] == after[897:898] == b"D"


def test_content_of_the_captured_file(tmp_path: Path) -> None:
    write_queue_file(tmp_path / "active" / "78D81220331", captured_before())
    with open_queue_file("active", "78D81220331", queue_directory=tmp_path) as qf:
        content = qf.content(921).read()
        again = qf.content(921, block_size=64).read()
    assert content == again
    assert content.startswith(b"Received: from client.test.local")
    assert content.endswith(b"\n.leading dot line\nlast line\n")


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (691, "offset 691 holds record type 'O', not a recipient (R)"),
        (712, "offset 712 holds record type '\\x12', not a recipient (R)"),
        (99999, "offset 99999 holds end of file, not a recipient (R)"),
        (0, "bad offset 0"),
        (-2, "bad offset -2"),
    ],
)
def test_marking_refuses_what_is_not_a_recipient(tmp_path: Path, offset: int, message: str) -> None:
    path = write_queue_file(tmp_path / "active" / "78D81220331", captured_before())
    before = path.read_bytes()
    with open_queue_file("active", "78D81220331", queue_directory=tmp_path) as qf:
        with pytest.raises(QueueFileUpdateError) as info:
            qf.mark_done(offset)
        assert str(info.value) == f"update queue file {qf.path}: {message}"
    assert path.read_bytes() == before


def test_marking_a_file_open_read_only(tmp_path: Path) -> None:
    path = write_queue_file(tmp_path / "q", captured_before())
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(QueueFileUpdateError) as info:
            mark_done(fd, 711, path="active/78D81220331")
    finally:
        os.close(fd)
    assert str(info.value) == "update queue file active/78D81220331: Bad file descriptor"
    assert info.value.errno == errno.EBADF


def test_mark_corrupt(queue: Path) -> None:
    with open_queue_file("active", ID, queue_directory=queue) as qf:
        qf.mark_corrupt()
    assert stat.S_IMODE(os.stat(queue / "active" / ID).st_mode) == 0o400
    with pytest.raises(QueueFileMissing, match="owner permissions 0400"):
        open_queue_file("active", ID, queue_directory=queue)


# --- a real Postfix queue file ------------------------------------------------------------

LONG_LINE: Final = "x" * 5000


@pytest.fixture
def deferring_postfix() -> Iterator[postfix_smtpd.PostfixSmtpd]:
    reason = postfix_smtpd.unavailable()
    if reason:
        pytest.skip(reason)
    root = postfix_smtpd.private_dir("mc-pfq-")
    # Mail for the discard transport stays in the deferred queue ("deferred transport"),
    # with long queue IDs and two levels of hash directories.
    instance = postfix_smtpd.PostfixSmtpd(
        root,
        extra=("defer_transports = discard", "enable_long_queue_ids = yes", "hash_queue_depth = 2"),
    )
    try:
        with instance:
            yield instance
    finally:
        postfix_smtpd.remove(root)


@pytest.mark.postfix
def test_a_real_postfix_queue_file(deferring_postfix: postfix_smtpd.PostfixSmtpd) -> None:
    postfix = deferring_postfix
    since = postfix.log_mark()
    body = f"Subject: native\r\n\r\nfirst\r\n.dot\r\n{LONG_LINE}\r\nlast\r\n"
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
        client.sendmail("sender@postfix.test", ["a@example.net", "b@example.net"], body)
    found = postfix.wait_log(r"\]: (\w+): to=<b@example\.net>.*status=deferred", since)
    queue_id = found.group(1)
    assert "z" in queue_id  # a long queue ID
    postfix.wait_log(rf"{queue_id}: to=<a@example\.net>.*status=deferred", since)

    with open_queue_file(
        "deferred", queue_id, queue_directory=postfix.spool, hash_queue_depth=2
    ) as qf:
        assert re.search(rf"/deferred/\w/\w/{queue_id}$", qf.path)
        listing = list(iter_records(qf.fd, path=qf.path))
        fields = listing[0].data.split()
        assert listing[0].type == "C"
        data_offset = int(fields[1])
        content = qf.content(data_offset).read()
        # What postcat(1) says the content is, header and body.
        postcat = subprocess.run(
            ["/usr/sbin/postcat", "-c", str(postfix.config), "-bh", "-q", queue_id],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        assert content == postcat
        assert content.endswith(f"\n\nfirst\n.dot\n{LONG_LINE}\nlast\n".encode())
        assert content.startswith(b"Received: from ")
        assert any(r.type == "L" for r in listing)  # the long line was split

        rcpt = {r.data: r.offset for r in listing if r.type == "R"}
        assert set(rcpt) == {b"a@example.net", b"b@example.net"}
        qf.mark_done(rcpt[b"a@example.net"])
        types = {r.data: r.type for r in iter_records(qf.fd) if r.type in "RD"}
        assert types == {b"a@example.net": "D", b"b@example.net": "R"}
