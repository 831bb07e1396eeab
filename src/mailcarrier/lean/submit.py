"""The lean path's submission: `sendmail()` queues one message, or hands the command back.

`sendmail(argv, stdin, stderr)` does what cli_sendmail.py `cmd_sendmail` and queue/submit.py
`submit_stream` do for an ordinary message (see lean/__init__.py): it returns the exit code
when it ran the command, or a `Fallback` holding the bytes it read from `stdin`, when the
general path must run it instead (entry.py puts them back in front of standard input with
lean/replay.py). It falls back only before anything is queued or said. It reads the header
section (lean/message.py), adds the From:, Date: and Message-Id: that are missing, streams
the content into the queue file (lean/spool.py `QueueFile`) with the lone-dot rule and
message_size_limit, and then, with maillog_file set, logs the pickup and cleanup lines
(lean/maillog.py). Its own two errors are cli.py's lines for MessageTooBigError (exit 69)
and TemporaryError (exit 75).
It imports nothing of mailcarrier outside lean/.
"""

from __future__ import annotations

import os
import time

from mailcarrier.lean import mainconf, message, options
from mailcarrier.lean.body import copy_body
from mailcarrier.lean.spool import Failed, QueueFile, ensure, new_id
from mailcarrier.lean.unique import unique

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

    from mailcarrier.lean.maillog import Maillog

__all__ = ["Fallback", "Queued", "sendmail"]

_QUOTE = frozenset('%!()<>@,;:\\".[]')  # queue/headers.py: a full name to be quoted
EX_UNAVAILABLE = 69


class Fallback:
    """The general path runs the command; `read` is what was taken from standard input."""

    __slots__ = ("read",)

    def __init__(self, read: bytes = b"") -> None:
        self.read = read


def sendmail(
    argv: list[str], stdin: BinaryIO, stderr: TextIO, *, command_word: bool = True
) -> int | Fallback:
    """Run ``mailcarrier [-c DIR] sendmail ...`` (with `command_word`; else the arguments of
    ``mailcarrier-sendmail``), or say that the general path must (see the module text)."""
    try:
        return _sendmail(argv, stdin, stderr, command_word)
    except Failed as exc:
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
        if not ensure(conf.queue):
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
    recipients = unique(wanted)
    if not recipients:
        return Fallback(header.read)
    queue_id = new_id(conf.queue)
    head = _added_headers(found, sender, request.full_name, queue_id, conf.myhostname)
    for name, _value, first, count in found:
        if name not in ("bcc", "resent-bcc"):
            head.extend(header.lines[first : first + count])
    envelope = message.envelope(queue_id, time.time(), sender, recipients)
    out = QueueFile.create(conf.queue, queue_id, envelope)
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


class _Copier:
    """queue/submit.py `_BodyCopier`: size limit, lone dot, 8-bit data."""

    def __init__(self, out: QueueFile, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.size = 0
        self.eight_bit = False

    def put(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            text = f"message file too big (message_size_limit is {self.limit} bytes)"
            raise Failed(EX_UNAVAILABLE, text)
        if not self.eight_bit and not data.isascii():
            self.eight_bit = True
        self.out.write(data)

    def copy(self, src: BinaryIO, first: bytes, ignore_dots: bool) -> None:
        copy_body(self.put, src, first, ignore_dots)
