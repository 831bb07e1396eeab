"""Postfix-format log lines, as pure functions of values, and the sinks the program calls.

`delivery_line()` renders the one line per recipient per attempt that log tools (pflogsumm,
fail2ban filters, shippers) parse:
``QUEUEID: to=<rcpt>, relay=host[addr]:port, conn_use=2, delay=1.2, delays=0.1/0/0.5/0.6,
dsn=2.0.0, status=sent (250 2.0.0 Ok)``, with Postfix 3.11's ``tls=`` field (the TLS
feature status, tls/features.py) before ``dsn=`` when a TLS policy was applied.
`syslog_prefix()` renders the ``Mon DD HH:MM:SS host name/smtp[pid]: `` prefix of
maillog_file lines; `postlog_payload()` one datagram for Postfix's postlogd(8), as
util/msg_logger.c makes it. `severity_prefix()` is Postfix's ``warning: ``, ``error: ``,
``fatal: `` before the text of a line that is not informational. Sinks are objects with
`info(process, text)`, `warning(process, text)` and `event(process, text, event)`
(`LogSink`); which sink is used is decided by cli.py (and postfix/maillog.py for
Postfix-native mode), nobody else.
`HandlerLog` is the sink in front of stdlib `logging` handlers: those that write lines
somewhere (stderr, maillog_file, syslog, postlogd) are in loghandlers.py. `LoggerLog` makes
each line a record on the application's ``mailcarrier`` logger (the API's default).
`MemoryLog` keeps lines for tests and the API's callers; `NullLog` drops them.

An event record (events.py) goes with the Postfix line it stands beside: `log_event(sink,
process, text, event)` gives both to the sink's `event()`, a member of `LogSink`, so that
mypy finds a wrapper that would drop records (`HandlerLog` writes the line to its handlers
and the record, with the same time, to its `event_handlers`: the event_log_file; a sink
without records writes the line only). `text` may be empty for an event Postfix logs no
line for (``queue flush``). A caller's own sink (the API's ``log=``) need only be a
`LineSink` (`info` and `warning`): `printable_sink()` wraps it into a `LogSink`.

Text given to a sink may hold anything a peer or a user sent (reply text, addresses, host
names, file names): the sinks here pass every line through `printable()` (printable.py)
once, before it goes anywhere, as Postfix's msg_output.c does, so no byte can end a line
early, forge another or reach a terminal as a control sequence. `printable_sink()` gives a
sink of someone else's the same guarantee (the API wraps what its callers pass).
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from mailcarrier.events import Event
from mailcarrier.printable import printable
from mailcarrier.status import RecipientStatus

# The API logs its Postfix lines on this logger (`LoggerLog`): a library adds no handler of
# its own, so an application without logging configured prints nothing. Set here, where the
# lines are made, rather than in the package's __init__, which would load logging for every
# program that imports mailcarrier (the lean ``sendmail`` path: entry.py).
logging.getLogger("mailcarrier").addHandler(logging.NullHandler())

__all__ = [
    "EventLine",
    "EventSink",
    "HandlerLog",
    "LineSink",
    "LineWriter",
    "LogLine",
    "LogSink",
    "LoggerLog",
    "MemoryLog",
    "NullLog",
    "PrintableLog",
    "current_pid",
    "delivery_line",
    "format_delay",
    "log_event",
    "postfix_text",
    "postlog_payload",
    "postlog_prefix",
    "postlog_text",
    "printable_sink",
    "severity_prefix",
    "syslog_prefix",
    "syslog_stamp",
]

# msg_logger.c's MSG_LOGGER_RECLEN: the most text (bytes) one postlog datagram carries.
POSTLOG_TEXT_LIMIT = 2000


def format_delay(seconds: float, resolution: int = 2) -> str:
    """Postfix's delay format: two significant digits, at most `resolution` decimals.

    10 and above print as whole seconds; below that two significant digits; anything below
    the resolution limit prints as 0 (delay_logging_resolution_limit).
    """
    if seconds >= 10:
        return str(int(seconds + 0.5))  # rounded half up, as Postfix's format_tv()
    floors, formats = _DELAY_PLANS.get(resolution) or _delay_plan(resolution)
    at = bisect_right(floors, seconds)  # the highest floor `seconds` reaches
    if not at:  # below the resolution limit; also what is not above 0
        return "0"
    text = formats[at] % seconds
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _delay_plan(resolution: int) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """What `format_delay` needs below 10 seconds at a resolution: floors, ascending, and
    the format of each (`formats[i]` from `floors[i - 1]` up; `formats[0]` is never used).
    The first floor is what prints as 0 below it (half the last digit: 0.005 at 2 decimals;
    the float nearest that half is above the true half, so anything below it rounds down);
    from there `resolution` decimals, then one decimal fewer from each power of ten up to
    10**-1, and 1 decimal from 10**0 (0 decimals, from 10**1, never applies below 10,
    except at resolution 0, where it is the only format)."""
    zero_below = float(f"5e-{resolution + 1}") if 0 <= resolution < 7 else 0.0
    coarser = range(resolution - 1, 0, -1)  # decimals of the coarser formats, finest first
    floors = (zero_below, *(10.0 ** (1 - d) for d in coarser))
    formats = ("0", f"%.{resolution}f", *(f"%.{d}f" for d in coarser))
    return floors, formats


_DELAY_PLANS: dict[int, tuple[tuple[float, ...], tuple[str, ...]]] = {
    r: _delay_plan(r) for r in range(7)
}


def delivery_line(
    queue_id: str, status: RecipientStatus, resolution: int = 2, *, word: str = ""
) -> str:
    """The per-recipient delivery line (without the syslog prefix). `word` replaces the
    status word where Postfix logs another (``deliverable``, ``undeliverable`` for address
    probes); a deferral that soft_bounce made of a bounce is ``SOFTBOUNCE``."""
    d = status.delays
    line = f"{queue_id}: to=<{status.address}>, "
    if status.orig_address and status.orig_address != status.address:
        line += f"orig_to=<{status.orig_address}>, "
    line += f"relay={status.relay}, "
    if status.conn_use > 1:
        line += f"conn_use={status.conn_use}, "
    line += (
        f"delay={format_delay(d.total, resolution)}, "
        f"delays={format_delay(d.before_qmgr, resolution)}/{format_delay(d.in_qmgr, resolution)}"
        f"/{format_delay(d.conn_setup, resolution)}/{format_delay(d.transmission, resolution)}, "
    )
    if status.tls:
        # Postfix 3.11 smtp_log_tls_feature_status: "tls=may", "tls=!encrypt", "tls=may:none".
        line += f"tls={status.tls}, "
    if not word:
        # A StrEnum member formats as its value, in C (`.value` is Python code of enum.py).
        word = "SOFTBOUNCE" if status.soft_bounced else status.status
    return f"{line}dsn={status.dsn}, status={word} ({status.diagnostic})"


def syslog_prefix(when: float, hostname: str, syslog_name: str, process: str, pid: int) -> str:
    """``Nov 24 18:44:01 host postfix/smtp[1234]: `` (local time, as syslog writes it)."""
    return f"{syslog_stamp(when, hostname, syslog_name)}{process}[{pid}]: "


def syslog_stamp(when: float, hostname: str, syslog_name: str) -> str:
    """The part of the prefix before the process name: ``Nov 24 18:44:01 host postfix/``."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    # syslog pads single-digit days with a space: "Nov  4".
    if stamp[4] == "0":
        stamp = stamp[:4] + " " + stamp[5:]
    short = hostname.split(".", 1)[0] or "localhost"
    return f"{stamp} {short} {syslog_name}/"


def postlog_payload(when: float, hostname: str, tag: str, pid: int, text: str) -> bytes:
    """One datagram for postlogd(8): ``Dec 02 15:10:10 mta postfix/smtp[20319]: text``
    (local time with a zero-padded day, the first label of `hostname`, the text cut at
    2000 bytes, no newline). `text` carries its severity prefix already."""
    return postlog_prefix(when, hostname, tag, pid) + postlog_text(text)


def postlog_prefix(when: float, hostname: str, tag: str, pid: int) -> bytes:
    """What comes before the text in a postlogd datagram (`postlog_payload`)."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    short = hostname.split(".", 1)[0]
    return f"{stamp} {short} {tag}[{pid}]: ".encode("utf-8", "surrogateescape")


def postlog_text(text: str) -> bytes:
    """The text of a postlogd datagram (`postlog_payload`): UTF-8, cut at 2000 bytes."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) > POSTLOG_TEXT_LIMIT:
        # Cut as msg_logger does, without leaving half a UTF-8 character at the end.
        data = data[:POSTLOG_TEXT_LIMIT].decode("utf-8", "ignore").encode("utf-8")
    return data


# This process's id, kept (os.getpid() is a system call) and renewed in a forked child.
_PID: list[int] = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def current_pid() -> int:
    """os.getpid(), without the system call."""
    return _PID[0]


def severity_prefix(levelno: int) -> str:
    """``fatal: ``, ``error: ``, ``warning: `` or nothing, as Postfix's msg(3) writes."""
    if levelno >= logging.CRITICAL:
        return "fatal: "
    if levelno >= logging.ERROR:
        return "error: "
    if levelno >= logging.WARNING:
        return "warning: "
    return ""


class LineSink(Protocol):
    """What a caller's own sink needs (the API's ``log=``): lines only. `process` is
    Postfix's process name (smtp, lmtp, qmgr, ...). `text` is raw: a sink that writes it
    anywhere makes it printable first (see above)."""

    def info(self, process: str, text: str) -> None: ...

    def warning(self, process: str, text: str) -> None: ...


class LogSink(LineSink, Protocol):
    """Where log lines and event records go: every sink of the program. `event()` takes
    the Postfix line `text` ("" for none) and the `event` made from the same values; a
    sink that keeps no records writes the line only."""

    def event(self, process: str, text: str, event: Event) -> None: ...


# The name of earlier releases: every sink takes records now.
EventSink = LogSink


def log_event(log: LogSink, process: str, text: str, event: Event) -> None:
    """The Postfix line `text` and its event record, to `log` (its `event()`)."""
    log.event(process, text, event)


class NullLog:
    def info(self, process: str, text: str) -> None:
        return None

    def warning(self, process: str, text: str) -> None:
        return None

    def event(self, process: str, text: str, event: Event) -> None:
        return None


class MemoryLog:
    """Collects (level, process, text) tuples, made printable; for tests and the API's
    callers."""

    def __init__(self, *, utf8: bool = True) -> None:
        self.records: list[tuple[str, str, str]] = []
        # The event records given with `event()`: (process, event).
        self.events: list[tuple[str, Event]] = []
        self.utf8 = utf8

    def info(self, process: str, text: str) -> None:
        self.records.append(("info", printable(process), printable(text, utf8=self.utf8)))

    def event(self, process: str, text: str, event: Event) -> None:
        if text:
            self.info(process, text)
        self.events.append((printable(process), event))

    def warning(self, process: str, text: str) -> None:
        self.records.append(("warning", printable(process), printable(text, utf8=self.utf8)))

    @property
    def lines(self) -> list[str]:
        return [("warning: " if lvl == "warning" else "") + text for lvl, _, text in self.records]


# The fields of a `logging.LogRecord` that a line of ours has no use for, as a record
# made by a Logger has them (formatters read them from the record's __dict__).
_RECORD_DEFAULTS: dict[str, object] = {
    "name": "mailcarrier",
    "args": (),
    "pathname": "",
    "filename": "",
    "module": "",
    "funcName": "",
    "lineno": 0,
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "thread": None,
    "threadName": None,
    "processName": None,
    "process": None,
    "taskName": None,
    "relativeCreated": 0.0,
}


class LogLine(logging.LogRecord):
    """One line as the `logging` handlers behind a `HandlerLog` get it: `procname` is
    Postfix's process name (smtp, qmgr), `msg` the text, both printable already.

    Made without `Logger.makeRecord`'s look-ups (the caller's frame, the thread, the
    process: several microseconds a record, three or four times what this costs, and the
    queue logs several lines per message); the fields it has no use for are those of
    `_RECORD_DEFAULTS`, so any `Formatter` can render it."""

    def __init__(  # no LogRecord.__init__: see the class text
        self, levelno: int, levelname: str, procname: str, text: str, created: float
    ) -> None:
        fields = _RECORD_DEFAULTS.copy()  # one copy and six stores: the cheapest way here
        fields["levelno"] = levelno
        fields["levelname"] = levelname
        fields["procname"] = procname
        fields["msg"] = text
        fields["created"] = created
        fields["msecs"] = (created - int(created)) * 1000
        self.__dict__ = fields


class EventLine(LogLine):
    """An event record as the handlers behind a `HandlerLog`'s `event_handlers` get it: a
    `LogLine` whose `event` is the record (loghandlers.py's `EventFormatter` renders it)
    and whose text is empty."""

    def __init__(self, procname: str, event: Event, created: float) -> None:
        super().__init__(logging.INFO, "INFO", procname, "", created)
        self.event = event


def postfix_text(record: logging.LogRecord) -> str:
    """The text of a line as Postfix writes it after the prefix: ``warning: `` first for a
    warning (`severity_prefix`)."""
    return severity_prefix(record.levelno) + record.getMessage()


class LineWriter(Protocol):
    """A handler's way in that needs no `logging.LogRecord` (loghandlers.py's
    `PostlogHandler`): `text` is printable already, without its severity prefix."""

    def write_line(self, levelno: int, procname: str, text: str, created: float) -> None: ...


_NAMES_KEPT = 64  # process names whose printable form a HandlerLog keeps


class HandlerLog:
    """A `LogSink` in front of stdlib `logging` handlers (loghandlers.py has Postfix's:
    stderr and maillog_file lines, syslog). It makes the process name and the text
    printable once, for every handler, and gives each handler whose level allows it one
    `LogLine`, or the line itself when the handler has a `write_line()` and no filters
    (`LineWriter`: a line per delivery, without a record); `close()` closes the handlers
    (what waits is written)."""

    def __init__(
        self,
        handlers: Sequence[logging.Handler],
        *,
        utf8: bool = True,
        clock: Callable[[], float] = time.time,
        event_handlers: Sequence[logging.Handler] = (),
    ) -> None:
        self.handlers = tuple(handlers)
        # Where event records go (`event()`): each gets an `EventLine`.
        self.event_handlers = tuple(event_handlers)
        # utf8: smtputf8_enable (Postfix's util_utf8_enable): keep valid UTF-8 in lines.
        self.utf8 = utf8
        self.clock = clock
        # Each handler with its `write_line` (None: it takes records), paired once.
        self._writers: tuple[
            tuple[logging.Handler, Callable[[int, str, str, float], None] | None], ...
        ] = tuple((handler, getattr(handler, "write_line", None)) for handler in self.handlers)
        # The process names made printable: a program logs under a handful (qmgr, smtp).
        self._names: dict[str, str] = {}

    def _printable_name(self, process: str) -> str:
        """`printable(process)`, made once per name (at most _NAMES_KEPT kept)."""
        if len(self._names) >= _NAMES_KEPT:
            self._names.clear()
        name = self._names[process] = printable(process)
        return name

    def _line(
        self, levelno: int, levelname: str, process: str, text: str, created: float = 0.0
    ) -> None:
        process = self._names.get(process) or self._printable_name(process)
        text = printable(text, utf8=self.utf8)
        created = created or self.clock()
        record: LogLine | None = None
        for handler, write in self._writers:
            if handler.level > levelno:
                continue
            if write is not None and not handler.filters:
                write(levelno, process, text, created)
                continue
            if record is None:
                record = LogLine(levelno, levelname, process, text, created)
            handler.handle(record)

    def info(self, process: str, text: str) -> None:
        self._line(logging.INFO, "INFO", process, text)

    def warning(self, process: str, text: str) -> None:
        self._line(logging.WARNING, "WARNING", process, text)

    def event(self, process: str, text: str, event: Event) -> None:
        """The line `text` (if any) as `info()` writes it, and the record of `event` with
        the same time to the event handlers."""
        created = self.clock()
        if text:
            self._line(logging.INFO, "INFO", process, text, created)
        if self.event_handlers:
            name = self._names.get(process) or self._printable_name(process)
            record = EventLine(name, event, created)
            for handler in self.event_handlers:
                handler.handle(record)

    def fatal(self, process: str, text: str) -> None:
        """The line a program writes before it stops (``fatal: ...``); not part of
        `LogSink`: only the program's entry point knows it is stopping."""
        self._line(logging.CRITICAL, "CRITICAL", process, text)

    def close(self) -> None:
        for handler in (*self.handlers, *self.event_handlers):
            handler.close()


class LoggerLog:
    """A sink onto the application's stdlib `logging`: each line is a record on the
    ``mailcarrier.<process>`` logger (``mailcarrier.smtp``, ``mailcarrier.qmgr``, ...),
    INFO or WARNING, its message the line's text as Postfix logs it (printable), with the
    process name in ``record.postfix_process``. The API's default sink: an application's
    handlers receive the delivery lines; without any, nothing is printed (the package's
    logger has a NullHandler)."""

    def __init__(self, logger: logging.Logger | None = None, *, utf8: bool = True) -> None:
        self.logger = logger if logger is not None else logging.getLogger("mailcarrier")
        self.utf8 = utf8
        self._children: dict[str, logging.Logger] = {}

    def _child(self, process: str) -> logging.Logger:
        child = self._children.get(process)
        if child is None:
            child = self._children[process] = self.logger.getChild(process)
        return child

    def _emit(self, level: int, process: str, text: str) -> None:
        logger = self._child(printable(process))
        if logger.isEnabledFor(level):
            extra = {"postfix_process": printable(process)}
            logger.log(level, "%s", printable(text, utf8=self.utf8), extra=extra)

    def info(self, process: str, text: str) -> None:
        self._emit(logging.INFO, process, text)

    def warning(self, process: str, text: str) -> None:
        self._emit(logging.WARNING, process, text)

    def event(self, process: str, text: str, event: Event) -> None:
        """The line only: records go to an event_log_file (eventlog.py), not to logging."""
        if text:
            self._emit(logging.INFO, process, text)


class PrintableLog:
    """Wraps a sink that does not make its text printable itself (someone else's). A
    caller's sink with an `event()` of its own gets the records too; one without gets
    the lines only: the one place where a sink may lack it."""

    def __init__(self, sink: LineSink, *, utf8: bool = True) -> None:
        self.sink = sink
        self.utf8 = utf8
        self._events: Callable[[str, str, Event], None] | None = getattr(sink, "event", None)

    def info(self, process: str, text: str) -> None:
        self.sink.info(printable(process), printable(text, utf8=self.utf8))

    def warning(self, process: str, text: str) -> None:
        self.sink.warning(printable(process), printable(text, utf8=self.utf8))

    def event(self, process: str, text: str, event: Event) -> None:
        process, text = printable(process), printable(text, utf8=self.utf8)
        if self._events is not None:
            self._events(process, text, event)
        elif text:
            self.sink.info(process, text)


_PRINTABLE_SINKS: tuple[type, ...] = (NullLog, MemoryLog, HandlerLog, PrintableLog, LoggerLog)


def printable_sink(sink: LineSink | None, *, utf8: bool = True) -> LogSink:
    """`sink` as it is when it is one of ours (they make text printable), else wrapped;
    None: the application's `logging` (`LoggerLog`)."""
    if sink is None:
        return LoggerLog(utf8=utf8)
    if type(sink) in _PRINTABLE_SINKS:
        return cast(LogSink, sink)
    return PrintableLog(sink, utf8=utf8)
