"""Postfix-format log lines, as pure functions of values, and the sinks that write them.

`delivery_line()` renders the one line per recipient per attempt that log tools (pflogsumm,
fail2ban filters, shippers) parse:
``QUEUEID: to=<rcpt>, relay=host[addr]:port, conn_use=2, delay=1.2, delays=0.1/0/0.5/0.6,
dsn=2.0.0, status=sent (250 2.0.0 Ok)``, with Postfix 3.11's ``tls=`` field (the TLS
feature status, tls/features.py) before ``dsn=`` when a TLS policy was applied.
`syslog_prefix()` renders the
``Mon DD HH:MM:SS host name/smtp[pid]: `` prefix of maillog_file lines. Sinks are objects with
`info()` and `warning()`; which sink is used is decided by cli.py, nobody else.

Text given to a sink may hold anything a peer or a user sent (reply text, addresses, host
names, file names): the sinks here pass every line through `printable()` (printable.py) at
their output, once, as Postfix's msg_output.c does, so no byte can end a line early, forge
another or reach a terminal as a control sequence. `printable_sink()` gives a sink of
someone else's the same guarantee (the API wraps what its callers pass).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from mailcarrier.printable import printable
from mailcarrier.status import RecipientStatus

__all__ = [
    "LogSink",
    "MemoryLog",
    "NullLog",
    "PrintableLog",
    "StreamLog",
    "SyslogLog",
    "delivery_line",
    "format_delay",
    "printable_sink",
    "syslog_prefix",
]


def format_delay(seconds: float, resolution: int = 2) -> str:
    """Postfix's delay format: two significant digits, at most `resolution` decimals.

    10 and above print as whole seconds; below that two significant digits; anything below
    the resolution limit prints as 0 (delay_logging_resolution_limit).
    """
    if seconds < 0:
        seconds = 0.0
    if seconds >= 10:
        return str(int(seconds + 0.5))  # rounded half up, as Postfix's format_tv()
    for decimals in range(0, resolution + 1):
        if seconds >= 10 ** (1 - decimals) or decimals == resolution:
            text = f"{seconds:.{decimals}f}"
            break
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def delivery_line(queue_id: str, status: RecipientStatus, resolution: int = 2) -> str:
    """The per-recipient delivery line (without the syslog prefix)."""
    parts = [f"{queue_id}: to=<{status.address}>"]
    if status.orig_address and status.orig_address != status.address:
        parts.append(f"orig_to=<{status.orig_address}>")
    parts.append(f"relay={status.relay}")
    if status.conn_use > 1:
        parts.append(f"conn_use={status.conn_use}")
    d = status.delays
    parts.append(f"delay={format_delay(d.total, resolution)}")
    parts.append(
        "delays="
        + "/".join(
            format_delay(x, resolution)
            for x in (d.before_qmgr, d.in_qmgr, d.conn_setup, d.transmission)
        )
    )
    if status.tls:
        # Postfix 3.11 smtp_log_tls_feature_status: "tls=may", "tls=!encrypt", "tls=may:none".
        parts.append(f"tls={status.tls}")
    parts.append(f"dsn={status.dsn}")
    parts.append(f"status={status.status.value} ({status.diagnostic})")
    return ", ".join(parts)


def syslog_prefix(when: float, hostname: str, syslog_name: str, process: str, pid: int) -> str:
    """``Nov 24 18:44:01 host postfix/smtp[1234]: `` (local time, as syslog writes it)."""
    return f"{_stamp(when, hostname, syslog_name)}{process}[{pid}]: "


def _stamp(when: float, hostname: str, syslog_name: str) -> str:
    """The part of the prefix before the process name: ``Nov 24 18:44:01 host postfix/``."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    # syslog pads single-digit days with a space: "Nov  4".
    if stamp[4] == "0":
        stamp = stamp[:4] + " " + stamp[5:]
    short = hostname.split(".", 1)[0] or "localhost"
    return f"{stamp} {short} {syslog_name}/"


class LogSink(Protocol):
    """Where log lines go. `process` is Postfix's process name (smtp, lmtp, qmgr, ...).

    `text` is raw: a sink that writes it anywhere makes it printable first (see above)."""

    def info(self, process: str, text: str) -> None: ...

    def warning(self, process: str, text: str) -> None: ...


class NullLog:
    def info(self, process: str, text: str) -> None:
        return None

    def warning(self, process: str, text: str) -> None:
        return None


class MemoryLog:
    """Collects (level, process, text) tuples, made printable; for tests and the API's
    callers."""

    def __init__(self, *, utf8: bool = True) -> None:
        self.records: list[tuple[str, str, str]] = []
        self.utf8 = utf8

    def info(self, process: str, text: str) -> None:
        self.records.append(("info", printable(process), printable(text, utf8=self.utf8)))

    def warning(self, process: str, text: str) -> None:
        self.records.append(("warning", printable(process), printable(text, utf8=self.utf8)))

    @property
    def lines(self) -> list[str]:
        return [("warning: " if lvl == "warning" else "") + text for lvl, _, text in self.records]


class StreamLog:
    """Writes syslog-format lines to a text stream (stderr, or an opened maillog_file)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        hostname: str = "localhost",
        syslog_name: str = "postfix",
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
        buffered: bool = False,
        utf8: bool = True,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        # utf8: smtputf8_enable (Postfix's util_utf8_enable): keep valid UTF-8 in lines.
        self.utf8 = utf8
        self.hostname = printable(hostname, utf8=utf8)
        self.syslog_name = printable(syslog_name, utf8=utf8)
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        # buffered: inside an event loop, lines are flushed once per loop turn (a busy queue
        # writes one block, not one line per system call); outside one, at once.
        self.buffered = buffered
        self._flush_pending = False
        self._second = -1
        self._stamp = ""

    def _write(self, process: str, text: str) -> None:
        when = self.clock()
        second = int(when)
        if second != self._second:
            # The time stamp changes once a second: render it once, not once per line.
            self._second = second
            self._stamp = _stamp(when, self.hostname, self.syslog_name)
        text = printable(text, utf8=self.utf8)
        self.stream.write(f"{self._stamp}{printable(process)}[{self.pid}]: {text}\n")
        if not self.buffered:
            self.stream.flush()
            return
        if not self._flush_pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.stream.flush()
                return
            # Every line written in this turn of the event loop goes out in one write.
            self._flush_pending = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self.stream.flush()

    def info(self, process: str, text: str) -> None:
        self._write(process, text)

    def warning(self, process: str, text: str) -> None:
        self._write(process, "warning: " + text)


class SyslogLog:
    """Writes to the system logger (syslog(3), ``/dev/log``) as Postfix's daemons do:
    identity ``syslog_name/process`` with the pid, facility ``syslog_facility``.

    Only used when the socket exists (`available()`); a container without a syslog daemon
    keeps the other sinks."""

    PATH = "/dev/log"

    def __init__(
        self, syslog_name: str = "postfix", facility: str = "mail", *, utf8: bool = True
    ) -> None:
        import syslog

        self._syslog = syslog
        self.utf8 = utf8
        self.syslog_name = printable(syslog_name, utf8=utf8)
        code = getattr(syslog, f"LOG_{facility.upper()}", None)
        if not isinstance(code, int):
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.facility = code
        self._ident = ""

    @classmethod
    def available(cls) -> bool:
        return os.path.exists(cls.PATH)

    def _write(self, priority: int, process: str, text: str) -> None:
        ident = f"{self.syslog_name}/{printable(process)}"
        if ident != self._ident:  # openlog only sets the identity: cheap
            self._syslog.openlog(ident, self._syslog.LOG_PID, self.facility)
            self._ident = ident
        # printable() also keeps NUL out: syslog(3) would cut the line there (and
        # Python's syslog module refuses it with ValueError).
        self._syslog.syslog(priority, printable(text, utf8=self.utf8))

    def info(self, process: str, text: str) -> None:
        self._write(self._syslog.LOG_INFO, process, text)

    def warning(self, process: str, text: str) -> None:
        self._write(self._syslog.LOG_WARNING, process, "warning: " + text)


class PrintableLog:
    """Wraps a sink that does not make its text printable itself (someone else's)."""

    def __init__(self, sink: LogSink, *, utf8: bool = True) -> None:
        self.sink = sink
        self.utf8 = utf8

    def info(self, process: str, text: str) -> None:
        self.sink.info(printable(process), printable(text, utf8=self.utf8))

    def warning(self, process: str, text: str) -> None:
        self.sink.warning(printable(process), printable(text, utf8=self.utf8))


_PRINTABLE_SINKS: tuple[type, ...] = (NullLog, MemoryLog, StreamLog, SyslogLog, PrintableLog)


def printable_sink(sink: LogSink | None, *, utf8: bool = True) -> LogSink | None:
    """`sink` as it is when it is one of ours (they make text printable), else wrapped."""
    if sink is None or type(sink) in _PRINTABLE_SINKS:
        return sink
    return PrintableLog(sink, utf8=utf8)
