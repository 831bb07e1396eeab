"""Where log lines go, as stdlib `logging` handlers behind log.py's `HandlerLog`.

- `PostfixFormatter` renders a record as a line of a syslog file: ``Mon DD HH:MM:SS host
  syslog_name/process[pid]: text`` (log.py's `syslog_stamp`, made once a second).
- `LineHandler` (a `logging.StreamHandler`) writes lines to a text stream: standard error,
  ``maillog_file = /dev/stdout``.
- `MaillogHandler` (a `logging.handlers.WatchedFileHandler`) writes maillog_file: when the
  file was renamed or removed under it (logrotate), the next line goes to a new file at the
  same path, checked once per write, not once per line.
- `SyslogHandler` writes to the system logger through the stdlib `syslog` module, as
  Postfix's daemons do (see the class for why not `logging.handlers.SysLogHandler`).
- `EventFormatter` renders an event record (events.py) as one line of JSON: a
  `MaillogHandler` with it writes event_log_file (eventlog.py opens it), the same way.
- `AppendHandler` appends each line with one write() on an O_APPEND descriptor: many
  processes may share the file (Postfix-native agents' event_log_file) and their lines
  never interleave; after logrotate the file is opened again.
- `PostlogHandler` sends each line as one datagram to Postfix's postlogd(8), as Postfix's
  daemons do when maillog_file is set (Postfix-native mode: postfix/maillog.py).

Lines are written and flushed one by one, or (`batched`: the queue daemon) once per turn of
the event loop in one block (aio.py's `EndOfTurn`): a draining queue writes one block per
turn instead of a system call per line. A line that cannot be written (a full disk) never
stops the program: with an `errors` stream (maillog_file), the lines are lost with one
``mailcarrier: warning: cannot write PATH: reason`` there until writing works again; without
one (standard error, standard output) the error is raised as before. The text of the records
is printable already (`HandlerLog` cleans it); the names in the prefix are cleaned here once.
cli.py builds these, and postfix/maillog.py for Postfix-native mode.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Callable
from typing import Final, Protocol, TextIO

from mailcarrier.aio import EndOfTurn
from mailcarrier.events import Event, render_event
from mailcarrier.log import (
    HandlerLog,
    LogLine,
    current_pid,
    postfix_text,
    postlog_prefix,
    postlog_text,
    severity_prefix,
    syslog_stamp,
)
from mailcarrier.printable import printable

__all__ = [
    "AppendHandler",
    "EventFormatter",
    "LineHandler",
    "MaillogHandler",
    "PostfixFormatter",
    "PostlogHandler",
    "SyslogHandler",
    "stream_log",
    "syslog_log",
]

PROG = "mailcarrier"


class SyslogModule(Protocol):
    """What `SyslogHandler` uses of the stdlib `syslog` module (a test passes a fake)."""

    LOG_PID: int
    LOG_INFO: int
    LOG_WARNING: int

    def openlog(self, ident: str, logoption: int, facility: int, /) -> None: ...

    def syslog(self, priority: int, message: str, /) -> None: ...


class PostfixFormatter(logging.Formatter):
    """``Nov 24 18:44:01 host postfix/smtp[1234]: text``: local time, the short host name,
    ``syslog_name/process`` and `pid` (this process's by default: lines that agent
    processes send to the scheduler carry its pid, as they did when they were one process)."""

    def __init__(
        self,
        hostname: str = "localhost",
        syslog_name: str = "postfix",
        *,
        pid: int | None = None,
        utf8: bool = True,
    ) -> None:
        super().__init__()
        self.hostname = printable(hostname, utf8=utf8)
        self.syslog_name = printable(syslog_name, utf8=utf8)
        self.pid = os.getpid() if pid is None else pid
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        # postfix_text(record), inline: this runs for every line of a draining queue.
        text = record.getMessage() if record.args else str(record.msg)
        try:
            procname = record.procname  # type: ignore[attr-defined]  # a LogLine's
        except AttributeError:  # a record of a Logger's
            procname = record.name
        return self.line(record.levelno, procname, text, record.created)

    def line(self, levelno: int, procname: str, text: str, created: float) -> str:
        """The line of a record with these values (`format` renders every record with it;
        `write_line` of the handlers below calls it without a record)."""
        second = int(created)
        if second != self._second:
            # The time stamp changes once a second: render it once, not once per line.
            self._second = second
            self._stamp = syslog_stamp(created, self.hostname, self.syslog_name)
        if levelno >= logging.WARNING:
            text = severity_prefix(levelno) + text
        return f"{self._stamp}{procname}[{self.pid}]: {text}"


class EventFormatter(logging.Formatter):
    """One event record (log.py's `EventLine`) as one line of JSON (events.py's
    `render_event`): its time, this node's id, the host name, the process name and `pid`
    (this process's by default, as `PostfixFormatter`) with the event's own fields."""

    def __init__(self, node_id: str, hostname: str, *, pid: int | None = None) -> None:
        super().__init__()
        self.node_id = node_id
        self.hostname = hostname
        self.pid = pid

    def format(self, record: logging.LogRecord) -> str:
        event: Event = record.event  # type: ignore[attr-defined]  # an EventLine's
        procname: str = getattr(record, "procname", record.name)
        pid = current_pid() if self.pid is None else self.pid
        return render_event(
            event,
            when=record.created,
            node_id=self.node_id,
            host=self.hostname,
            process=procname,
            pid=pid,
        )


class _Output:
    """How one handler's lines reach its stream: written and flushed at once, or (`batched`)
    once per event-loop turn in one block; failures as the module text says."""

    __slots__ = ("_errors", "_failing", "_lines", "_path", "_write", "add")

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        batched: bool,
        errors: TextIO | None,
        path: str,
    ) -> None:
        self._write = write
        self._lines: EndOfTurn[str] | None = EndOfTurn(self._write_all) if batched else None
        self._errors = errors
        self._path = path
        self._failing = False
        # add(line): written now, or at the end of the turn (bound once: one call a line).
        self.add: Callable[[str], None] = self.write if self._lines is None else self._lines.add

    def flush(self) -> None:
        if self._lines is not None:
            self._lines.flush()

    def _write_all(self, lines: list[str]) -> None:
        self.write("".join(lines))

    def write(self, text: str) -> None:
        try:
            self._write(text)
        except OSError as exc:
            self.failed(exc)
        else:
            self._failing = False

    def failed(self, exc: OSError) -> None:
        """A write failed: raised without an errors stream, else one warning there."""
        if self._errors is None:
            raise exc
        if not self._failing:
            self._failing = True
            reason = exc.strerror or exc
            with contextlib.suppress(OSError):
                self._errors.write(f"{PROG}: warning: cannot write {self._path}: {reason}\n")
                self._errors.flush()


class _Lines(logging.Handler):
    """What `LineHandler` and `MaillogHandler` share: a record is one line for `_output`
    (written now, or at the end of the turn); `flush()` writes what waits, `close()` too.
    `write_line()` is `HandlerLog`'s way in without a record (log.py's `LineWriter`): with a
    `PostfixFormatter` the line is made from the values (`PostfixFormatter.line`, which
    `format` uses too), with another formatter from a `LogLine` of them."""

    _output: _Output

    def write_line(self, levelno: int, procname: str, text: str, created: float) -> None:
        """One line, `text` printable already (`HandlerLog` checked level and filters)."""
        formatter = self.formatter
        if type(formatter) is not PostfixFormatter:  # another formatter reads a record
            name = logging.getLevelName(levelno)
            self.handle(LogLine(levelno, name, procname, text, created))
            return
        line = formatter.line(levelno, procname, text, created) + "\n"
        lock = self.lock
        if lock is None:
            self._output.add(line)
        else:
            with lock:
                self._output.add(line)

    def handle(self, record: logging.LogRecord) -> bool:
        """`Handler.handle` (filters, then emit under the handler's lock) with less work:
        it runs for every line of a draining queue."""
        if self.filters and not self.filter(record):
            return False
        formatter = self.formatter
        line = formatter.format(record) if formatter is not None else self.format(record)
        lock = self.lock
        if lock is None:
            self._output.add(line + "\n")
        else:
            with lock:
                self._output.add(line + "\n")
        return True

    def emit(self, record: logging.LogRecord) -> None:
        formatter = self.formatter
        line = formatter.format(record) if formatter is not None else self.format(record)
        self._output.add(line + "\n")

    def flush(self) -> None:
        """Write what waits for the end of the turn now."""
        self._output.flush()

    def close(self) -> None:
        """Write what waits and close (a file's last lines may be lost to a full disk,
        with the warning)."""
        self.flush()
        try:
            super().close()
        except OSError as exc:
            self._output.failed(exc)


class LineHandler(_Lines, logging.StreamHandler[TextIO]):
    """Lines to a text stream (standard error, standard output), at once or `batched`."""

    def __init__(
        self,
        stream: TextIO,
        formatter: logging.Formatter,
        *,
        batched: bool = False,
        errors: TextIO | None = None,
    ) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        path = str(getattr(stream, "name", "<stream>"))
        self._output = _Output(self._write, batched=batched, errors=errors, path=path)

    def _write(self, text: str) -> None:
        self.acquire()
        try:
            self.stream.write(text)
            self.stream.flush()
        finally:
            self.release()


class MaillogHandler(_Lines, logging.handlers.WatchedFileHandler):
    """maillog_file: lines appended (UTF-8), at once or `batched`; the file is opened again
    when it was moved or removed since the last write (logrotate), as
    `WatchedFileHandler` does. Opening raises `OSError` at once (a path that cannot be
    opened is a configuration error); later failures follow `errors`."""

    def __init__(
        self,
        path: str,
        formatter: logging.Formatter,
        *,
        batched: bool = False,
        errors: TextIO | None = None,
    ) -> None:
        super().__init__(path, "a", encoding="utf-8")
        self.setFormatter(formatter)
        self._output = _Output(self._write, batched=batched, errors=errors, path=path)

    def _write(self, text: str) -> None:
        self.acquire()
        try:
            if self.stream is None:  # closed: open again, as FileHandler.emit does
                self.stream = self._open()
            self.reopenIfNeeded()  # one stat per block, not per line
            self.stream.write(text)
            self.stream.flush()
        finally:
            self.release()


class AppendHandler(logging.Handler):
    """One file many processes append to (each Postfix-native agent process has one of
    these on the same event_log_file): each record is one line, written with one write()
    on a descriptor opened with O_APPEND, so that every line lands whole at the end of the
    file, never inside another process's. A file renamed or removed since the last record
    (logrotate) is opened again (one stat per record). Opening raises `OSError` at once; a
    later failure calls `warn` once with the reason until a record is written again, and
    the records meanwhile are lost (a full disk must not stop deliveries)."""

    FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC

    def __init__(
        self,
        path: str,
        formatter: logging.Formatter,
        *,
        warn: Callable[[str], None] | None = None,
        mode: int = 0o640,
    ) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.path = path
        self.mode = mode
        self.warn = warn
        self._failing = False
        self._fd = -1
        self._identity = (0, 0)
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, self.FLAGS, self.mode)
        stat = os.fstat(fd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)

    def _reopen_if_moved(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._open()
            return
        if (stat.st_dev, stat.st_ino) != self._identity:
            self._open()

    def emit(self, record: logging.LogRecord) -> None:
        data = (self.format(record) + "\n").encode("utf-8", "surrogateescape")
        try:
            self._reopen_if_moved()
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: a regular file takes all or an error
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
        except OSError as exc:
            if not self._failing and self.warn is not None:
                self.warn(f"cannot write {self.path}: {exc.strerror or exc}")
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        super().close()


class SyslogHandler(logging.Handler):
    """To the system logger (syslog(3), ``/dev/log``) as Postfix's daemons log: identity
    ``syslog_name/process`` with the pid, facility ``syslog_facility``.

    Through the stdlib `syslog` module rather than `logging.handlers.SysLogHandler`: syslog(3)
    writes Postfix's ``postfix/smtp[1234]:`` tag itself from the identity and LOG_PID (a
    SysLogHandler would need it made by hand, pid included, for each process name), stamps
    the time and host as the local syslog daemon expects, and finds the socket type of
    ``/dev/log`` (datagram or stream) and reconnects after a restart of the daemon without
    code of ours. Only used when the socket exists (`available()`); a container without a
    syslog daemon keeps the other handlers. `module` replaces the `syslog` module (tests).
    """

    PATH = "/dev/log"

    def __init__(
        self,
        syslog_name: str = "postfix",
        facility: str = "mail",
        *,
        utf8: bool = True,
        module: SyslogModule | None = None,
    ) -> None:
        super().__init__()
        import syslog

        self._syslog: SyslogModule = syslog if module is None else module
        self.syslog_name = printable(syslog_name, utf8=utf8)
        code = getattr(syslog, f"LOG_{facility.upper()}", None)
        if not isinstance(code, int):
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.facility = code
        self._ident = ""

    @classmethod
    def available(cls) -> bool:
        return os.path.exists(cls.PATH)

    def emit(self, record: logging.LogRecord) -> None:
        log = self._syslog
        ident = f"{self.syslog_name}/{getattr(record, 'procname', record.name)}"
        if ident != self._ident:  # openlog only sets the identity: cheap
            log.openlog(ident, log.LOG_PID, self.facility)
            self._ident = ident
        # msg_syslog.c: fatal (and panic) at LOG_CRIT, error at LOG_ERR.
        priority: int
        if record.levelno >= logging.CRITICAL:
            priority = getattr(log, "LOG_CRIT", log.LOG_WARNING)
        elif record.levelno >= logging.ERROR:
            priority = getattr(log, "LOG_ERR", log.LOG_WARNING)
        elif record.levelno >= logging.WARNING:
            priority = log.LOG_WARNING
        else:
            priority = log.LOG_INFO
        # The text is printable, so it holds no NUL: syslog(3) would cut the line there
        # (and Python's syslog module refuses it with ValueError).
        log.syslog(priority, postfix_text(record))


class PostlogHandler(logging.Handler):
    """To Postfix's postlogd(8), as Postfix's daemons log when maillog_file is set
    (util/msg_logger.c): one datagram per line on an AF_UNIX datagram socket connected to
    `path` (``$queue_directory/public/$postlog_service_name``), ``Mon DD HH:MM:SS host
    syslog_name/process[pid]: text`` with no newline (log.py's `postlog_payload`).

    It connects at once (before privileges are dropped: ``public/`` is not for everyone)
    and again for a line when there is no connection or a send failed (postlogd restarted);
    a line that still cannot be sent is lost, as in Postfix, whose daemons have nowhere
    else to write. A send waits at most `timeout` seconds for room in postlogd's queue: the
    socket is non-blocking, and only a send that finds no room waits (one system call per
    line otherwise). `write_line()` is the way in for `HandlerLog` (no `LogRecord`); the
    prefix up to the pid is made once per second and process name."""

    def __init__(
        self,
        path: str,
        hostname: str,
        syslog_name: str = "postfix",
        *,
        pid: int | None = None,
        utf8: bool = True,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.path = path
        self.hostname = printable(hostname, utf8=utf8)
        self.syslog_name = printable(syslog_name, utf8=utf8)
        self.pid = pid
        self.timeout = timeout
        self._sock: socket.socket | None = None
        # (second, process name, pid) and the prefix made for them; one attribute, so that
        # a thread never pairs one with the other's.
        self._prefix: tuple[tuple[int, str, int], bytes] = ((-1, "", 0), b"")
        self._connect()

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return None
        self._sock = sock
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def emit(self, record: logging.LogRecord) -> None:
        procname = getattr(record, "procname", record.name)
        self.write_line(record.levelno, procname, record.getMessage(), record.created)

    def write_line(self, levelno: int, procname: str, text: str, created: float) -> None:
        """One line, `text` printable already (`HandlerLog`'s fast path)."""
        pid = current_pid() if self.pid is None else self.pid
        key = (int(created), procname, pid)
        made, prefix = self._prefix
        if key != made:
            tag = f"{self.syslog_name}/{procname}"
            prefix = postlog_prefix(created, self.hostname, tag, pid)
            self._prefix = (key, prefix)
        if levelno >= logging.WARNING:
            text = severity_prefix(levelno) + text
        self._send(prefix + postlog_text(text))

    def _send(self, payload: bytes) -> None:
        for _ in range(2):  # the connection as it is, then a new one
            sock = self._sock or self._connect()
            if sock is None:
                return
            try:
                try:
                    sock.send(payload)
                except BlockingIOError:  # postlogd's queue is full: wait for room
                    sock.settimeout(self.timeout)
                    try:
                        sock.send(payload)
                    finally:
                        sock.setblocking(False)
            except OSError:
                self._disconnect()
            else:
                return

    def close(self) -> None:
        self._disconnect()
        super().close()


def stream_log(
    stream: TextIO,
    *,
    hostname: str = "localhost",
    syslog_name: str = "postfix",
    clock: Callable[[], float] = time.time,
    pid: int | None = None,
    batched: bool = False,
    utf8: bool = True,
) -> HandlerLog:
    """A sink writing syslog-format lines to `stream` (standard error, an opened file)."""
    formatter = PostfixFormatter(hostname, syslog_name, pid=pid, utf8=utf8)
    return HandlerLog([LineHandler(stream, formatter, batched=batched)], utf8=utf8, clock=clock)


def syslog_log(
    syslog_name: str = "postfix",
    facility: str = "mail",
    *,
    utf8: bool = True,
    module: SyslogModule | None = None,
) -> HandlerLog:
    """A sink writing to the system logger (`SyslogHandler`)."""
    return HandlerLog([SyslogHandler(syslog_name, facility, utf8=utf8, module=module)], utf8=utf8)
