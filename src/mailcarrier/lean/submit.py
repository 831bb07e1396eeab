"""The lean path's submission: `sendmail()` queues one message, or hands the command back.

`sendmail(argv, stdin, stderr)` does what cli_sendmail.py `cmd_sendmail` and queue/submit.py
`submit_stream` do for an ordinary message (see lean/__init__.py): it returns the exit code
when it ran the command, or a `Fallback` holding the bytes it read from `stdin`, when the
general path must run it instead (entry.py puts them back in front of standard input with
lean/replay.py). It falls back only before anything is queued or said. The queue file is
written as queue/writers.py `MessageWriter` writes it: a dot-file in incoming/ (mode 0600),
the content streamed with the lone-dot rule and message_size_limit, the size and body type
patched in place, flushed, fsynced, renamed to the queue ID, the directory fsynced, with
queue/crash.py's crash points between the steps (``MAILCARRIER_CRASH_AT``); then, with
maillog_file set, the pickup and cleanup lines (lean/maillog.py). Its own two errors are
cli.py's lines for MessageTooBigError (exit 69) and TemporaryError (exit 75).
It imports nothing of mailcarrier outside lean/.
"""

from __future__ import annotations

import io
import os
import time

from mailcarrier.lean import mainconf, message, options

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, TextIO

    from mailcarrier.lean.maillog import Maillog

__all__ = ["Fallback", "new_queue_id", "sendmail"]

QUEUES = ("incoming", "active", "deferred", "hold", "corrupt")  # queue/spool.py
_CHUNK = 65536
_DIGITS = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"  # queue/ids.py
_QUOTE = frozenset('%!()<>@,;:\\".[]')  # queue/headers.py: a full name to be quoted
_CRASH_AT = os.environ.get("MAILCARRIER_CRASH_AT", "")  # queue/crash.py CRASH_ENV
_SIGKILL = 9  # POSIX; signal.SIGKILL without importing signal (it makes enums)
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


class Fallback:
    """The general path runs the command; `read` is what was taken from standard input."""

    __slots__ = ("read",)

    def __init__(self, read: bytes = b"") -> None:
        self.read = read


class _Failed(Exception):
    """One of the two errors the lean path reports itself: (exit code, line)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def sendmail(
    argv: list[str], stdin: BinaryIO, stderr: TextIO, *, command_word: bool = True
) -> int | Fallback:
    """Run ``mailcarrier [-c DIR] sendmail ...`` (with `command_word`; else the arguments of
    ``mailcarrier-sendmail``), or say that the general path must (see the module text)."""
    try:
        return _sendmail(argv, stdin, stderr, command_word)
    except _Failed as exc:
        stderr.write(f"mailcarrier: fatal: {_printable(exc.text)}\n")
        return exc.code
    except KeyboardInterrupt:  # as cli.py says it
        stderr.write("mailcarrier: interrupted\n")
        return 130


def _sendmail(
    argv: list[str], stdin: BinaryIO, stderr: TextIO, command_word: bool
) -> int | Fallback:
    request = options.parse(argv, command_word=command_word)
    if request is None or not (request.recipients or request.extract):
        return Fallback()
    conf = mainconf.load(request.config)
    if conf is None:
        return Fallback()
    prepared = _prepare(request, conf)
    if prepared is None:
        return Fallback()
    log: Maillog | None = None
    if conf.maillog:  # opened before the queue, as cli_sendmail.py `_quiet_log` opens it
        from mailcarrier.lean.maillog import Maillog

        log = Maillog.open(conf.maillog)
        if log is None:
            return Fallback()
    try:
        if not _ensure(conf.queue):
            return Fallback()
        sender, given = prepared
        done = _submit(request, conf, sender, given, stdin)
        if log is not None and not isinstance(done, Fallback):
            _log_lines(log, conf, sender, done, stderr)
        return 0 if not isinstance(done, Fallback) else done
    finally:
        if log is not None:
            log.close()


def _log_lines(
    log: Maillog, conf: mainconf.Conf, sender: str, done: Queued, stderr: TextIO
) -> None:
    """queue/submit.py's two lines, once the message is durable (lean/maillog.py)."""
    from mailcarrier.lean.maillog import line_prefix

    pid = os.getpid()
    queue_id = done.queue_id
    when = time.time()
    prefix = line_prefix(when, conf.myhostname, conf.syslog_name, "pickup", pid)
    log.line(f"{prefix}{queue_id}: uid={os.getuid()} from=<{sender}>", stderr)
    when = time.time()
    prefix = line_prefix(when, conf.myhostname, conf.syslog_name, "cleanup", pid)
    log.line(f"{prefix}{queue_id}: message-id=<{_printable(done.message_id)}>", stderr)


class Queued:
    """A message queued: its ID and its Message-ID (for the log line)."""

    __slots__ = ("message_id", "queue_id")

    def __init__(self, queue_id: str, message_id: str) -> None:
        self.queue_id = queue_id
        self.message_id = message_id


def _prepare(
    request: options.Request, conf: mainconf.Conf
) -> tuple[str, list[tuple[str, str]]] | None:
    """(the sender, the argument recipients as (given, queued)), or None."""
    if request.full_name and _phrase(request.full_name) is None:
        return None
    raw = _default_sender(conf.myorigin) if request.sender is None else request.sender
    sender = message.address(raw, conf.myorigin, allow_null=True)
    if sender is None:
        return None
    given = []
    for argument in request.recipients:
        if any(c in argument for c in ",<>()"):
            return None  # an address list: queue/submit.py argument_recipients
        recipient = message.address(argument, conf.myorigin)
        if recipient is None:
            return None
        given.append(recipient)
    return sender[1], given


def _submit(
    request: options.Request,
    conf: mainconf.Conf,
    sender: str,
    given: list[tuple[str, str]],
    stdin: BinaryIO,
) -> Queued | Fallback:
    header, ok = message.read_header(stdin, conf.header_size_limit)
    if not ok or _unusual(header):
        return Fallback(header.read)
    found = message.fields(header.lines)
    wanted = list(given)
    if request.extract:
        listed = message.header_recipients(found)
        if listed is None:
            return Fallback(header.read)
        for text in listed:
            recipient = message.address(text, conf.myorigin)
            if recipient is None:
                return Fallback(header.read)
            wanted.append(recipient)
    recipients = _unique(wanted)
    if not recipients:
        return Fallback(header.read)
    queue_id = _new_id(conf.queue)
    head = _added_headers(found, sender, request.full_name, queue_id, conf.myhostname)
    for name, _value, first, count in found:
        if name not in ("bcc", "resent-bcc"):
            head.extend(header.lines[first : first + count])
    envelope = message.envelope(queue_id, time.time(), sender, recipients)
    out = _QueueFile.create(conf.queue, queue_id, envelope)
    if out is None:
        return Fallback(header.read)
    with out:
        copier = _Copier(out, conf.message_size_limit)
        for line in head:
            copier.put(line)
        opening = header.first_body_line
        if head and opening and opening not in (b"\n", b"\r\n"):
            copier.put(b"\n")
        copier.copy(stdin, opening, request.ignore_dots)
        out.commit(eight_bit=copier.eight_bit)
    return Queued(queue_id, _message_id(found, queue_id, conf.myhostname))


def _message_id(found: list[tuple[str, str, int, int]], queue_id: str, host: str) -> str:
    """queue/submit.py `_message_id`: the header's Message-ID, else the one added."""
    for name, value, *_ in found:
        if name == "message-id":
            return value.strip().strip("<>")
    return f"{queue_id}@{host}"


def _unusual(header: message.Header) -> bool:
    """What the lean path leaves to the general one after reading the header: a body that
    starts with a blank-led line and no header (delivery/autodetect.py would read it as a
    continuation of the added headers), and a TLS-Required: field (RFC 8689)."""
    if not header.lines and header.first_body_line[:1] in (b" ", b"\t"):
        return True
    return any(line[:12].lower() == b"tls-required" for line in header.lines)


def _unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """queue/submit.py `_unique`: duplicates (case-insensitively, as queued) dropped."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item[1].lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _default_sender(myorigin: str) -> str:
    """queue/submit.py `default_sender`, with getpass.getuser() written out."""
    try:
        for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
            user = os.environ.get(name)
            if user:
                return f"{user}@{myorigin}"
        import pwd

        user = pwd.getpwuid(os.getuid())[0]
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{myorigin}"


def _phrase(name: str) -> str | None:
    """queue/headers.py `full_name` of a plain ASCII name (no quoting, no encoding), or
    None for the others."""
    if not (name.isascii() and name.isprintable()) or "=?" in name:
        return None
    if not _QUOTE.isdisjoint(name):
        return None
    return " ".join(word for word in name.split(" ") if word)


def _added_headers(
    found: list[tuple[str, str, int, int]], sender: str, full_name: str, queue_id: str, host: str
) -> list[bytes]:
    """queue/submit.py `_added_headers`: From:, Date: and Message-Id: when missing."""
    names = {name for name, *_ in found}
    added = []
    if "from" not in names:
        phrase = _phrase(full_name) or ""
        address = f"<{sender or 'MAILER-DAEMON'}>"
        added.append(f"From: {phrase + ' ' if phrase else ''}{address}\n".encode())
    if "date" not in names:
        added.append(f"Date: {message.format_date(time.time())}\n".encode())
    if "message-id" not in names:
        added.append(f"Message-Id: <{queue_id}@{host}>\n".encode())
    return added


def new_queue_id(now: float, random: bytes) -> str:
    """queue/ids.py `new_queue_id(now)` with `random` as its five bytes of os.urandom()."""
    return _encode(int(now * 1_000_000), 10) + "z" + _encode(int.from_bytes(random, "big"), 5)


def _encode(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, len(_DIGITS))
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def _new_id(root: str) -> str:
    """queue/spool.py `Spool.new_id`: an ID that no queue holds."""
    while True:
        queue_id = new_queue_id(time.time(), os.urandom(5))
        if not any(os.path.exists(f"{root}/{queue}/{queue_id}") for queue in QUEUES):
            return queue_id


def _ensure(root: str) -> bool:
    """queue/spool.py `Spool.ensure`; False when a directory cannot be made."""
    try:
        for name in QUEUES:
            os.makedirs(f"{root}/{name}", mode=0o700, exist_ok=True)
    except OSError:
        return False
    return True


def _crash_point(name: str) -> None:
    """queue/crash.py `crash_point`."""
    if _CRASH_AT and name == _CRASH_AT:
        os.kill(os.getpid(), _SIGKILL)


def _printable(text: str) -> str:
    """printable.py `printable` (utf8): the controls, U+2028/9 and lone surrogates as ``?``."""
    if text.isascii() and text.isprintable():
        return text
    return "".join("?" if _unprintable(c) else c for c in text)


def _unprintable(char: str) -> bool:
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or code in (0x2028, 0x2029)
        or (0xD800 <= code <= 0xDFFF)
    )


def _quietly(call: Callable[..., object], *args: str) -> None:
    """`call(*args)`, an OSError ignored: contextlib.suppress without loading contextlib
    (with collections and functools) for it."""
    try:  # noqa: SIM105 - see above
        call(*args)
    except OSError:
        pass


class _Copier:
    """queue/submit.py `_BodyCopier`: size limit, lone dot, 8-bit data."""

    def __init__(self, out: _QueueFile, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.size = 0
        self.eight_bit = False

    def put(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            text = f"message file too big (message_size_limit is {self.limit} bytes)"
            raise _Failed(EX_UNAVAILABLE, text)
        if not self.eight_bit and not data.isascii():
            self.eight_bit = True
        self.out.write(data)

    def copy(self, src: BinaryIO, first: bytes, ignore_dots: bool) -> None:
        if first:
            if not ignore_dots and first in (b".\n", b".\r\n"):
                return
            self.put(first)
        if ignore_dots:
            while block := src.read(_CHUNK):
                self.put(block)
            return
        at_start = not first or first.endswith(b"\n")
        while line := src.readline(_CHUNK):
            if at_start and line in (b".\n", b".\r\n", b"."):
                return
            self.put(line)
            at_start = line.endswith(b"\n")


class _QueueFile:
    """queue/writers.py `MessageWriter` over durable.py `AtomicFile`: a new queue file."""

    def __init__(self, root: str, queue_id: str, envelope: bytes, file: io.BufferedWriter) -> None:
        self.tmp = f"{root}/incoming/.{queue_id}.tmp"
        self.final = f"{root}/incoming/{queue_id}"
        self.directory = f"{root}/incoming"
        self.envelope = envelope
        self.file = file
        self.size = 0
        self.published = False

    @classmethod
    def create(cls, root: str, queue_id: str, envelope: bytes) -> _QueueFile | None:
        """The file, its envelope written; None when it cannot be made (the general path
        then tries, and says why)."""
        tmp = f"{root}/incoming/.{queue_id}.tmp"
        try:
            file = open(tmp, "xb")  # noqa: SIM115 - closed by commit() or __exit__
        except OSError:
            return None
        out = cls(root, queue_id, envelope, file)
        try:
            os.chmod(tmp, 0o600)
            file.write(envelope)
        except OSError:
            out.abort()
            return None
        return out

    def _error(self, exc: OSError) -> _Failed:
        reason = exc.strerror or str(exc)
        return _Failed(EX_TEMPFAIL, f"queue file write error: {self.tmp}: {reason}")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise self._error(exc) from exc
        self.size += len(data)

    def commit(self, *, eight_bit: bool) -> None:
        try:
            self._commit(eight_bit)
        except OSError as exc:
            raise self._error(exc) from exc

    def _commit(self, eight_bit: bool) -> None:
        if eight_bit:
            self.file.seek(self.envelope.index(b"\nbody ") + len(b"\nbody "))
            self.file.write(b"8bit")
        self.file.seek(self.envelope.rindex(b"size ") + len(b"size "))
        self.file.write(f"{self.size:0{message.SIZE_WIDTH}d}".encode())
        self.file.flush()
        _crash_point("enqueue-after-write")
        os.fsync(self.file.fileno())
        self.file.close()
        _crash_point("enqueue-before-rename")
        os.rename(self.tmp, self.final)
        self.published = True
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            # Not known to be durable: not there either (durable.py, `new`).
            _quietly(os.unlink, self.final)
            self.published = False
            raise
        _crash_point("enqueue-after-rename")

    def abort(self) -> None:
        """durable.py `AtomicFile.abort`: close, remove the dot-file; never raises."""
        if not self.file.closed:
            _quietly(self.file.close)
        if not self.published:
            _quietly(os.unlink, self.tmp)

    def __enter__(self) -> _QueueFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            self.abort()
