"""The master(8) child contract at run time: the listen sockets, the status channel, and when
to stop. One `MasterChild` drives an asyncio server for a delivery agent under a real
Postfix master; the command line, main.cf and privileges are in options.py (re-exported
here), logging in maillog.py, the qmgr protocol in the server built on this.

master(8) gives the child its listen sockets at fd 6..6+s-1 (non-blocking: every process of
the service waits on them, and `accept()` failing with EAGAIN only means another one won)
and a status socket at fd 5, shared by every child of the service. On it the child writes
12-byte ``struct {int pid; unsigned generation; int avail}`` notices (``=iIi``; the
generation is master's octal ``$GENERATION``): TAKEN (0) and AVAIL (1). fd 5 turning
readable means master went away or restarted the service (every ``postfix reload``).

What master does with the notices (master_avail.c, master_status.c): a new child counts as
AVAIL; while any child of the service is AVAIL, master does not watch the listen socket and
starts no process; when none is, a pending connection makes it start one (up to maxproc);
every TAKEN -> AVAIL change counts one use of that child; a child that exits abnormally
before its first counted use throttles the service ("bad command startup").

What this child tells it. One process serves many qmgr connections at once, up to
``limits.concurrency`` (``agent_concurrency_limit``): it stays AVAIL while it has room, sends
TAKEN when it reaches the limit (and stops accepting, so that master starts another process for
the next connection) and AVAIL when a place is free again. A place is free when its connection
ends, or earlier when the handler calls `release()`: the qmgr server does so before it sends
its final reply, after which it only waits for qmgr to close. qmgr closes a finished delivery's
connection and connects for the next one at once; counted until its end, the old connection
would keep the process at its limit when the new one arrives, and master would start a process
for nothing. With a concurrency of 1 this is exactly single_server's TAKEN after accept and
AVAIL after close (`release()` does nothing then). Because a process that never reaches its
limit would never be counted as used, the first place freed without such a change while no
connection waits on the listen sockets is followed by a TAKEN and an AVAIL at once, so that a
later crash of the process does not throttle the service (with a connection waiting, master
would start a spare process in that instant; the next one tries again).

``max_use`` counts connections: at ``max_use`` accepted connections (0: no limit) the process
stops accepting, sends TAKEN if it still has connections to finish (so that master starts a
successor now), finishes them and returns. That is how `ChildLimits.from_settings` applies
main.cf's max_use with a concurrency of 1 (as smtp(8)). A process serving many connections at
once does not count them: qmgr opens one per delivery, so max_use 100 would restart the
interpreter (about 0.4 s of CPU) every 100 deliveries, and the successor's start-up overlaps
the old process. It retires by time instead, as Postfix's dnsblog(8) does (one short connection
per request; max_use off, CA_MAIL_SERVER_RETIRE_ME): after max_idle x max_use seconds (18000
when either is 0 or the product is larger; `retire_after`) it stops accepting, sends TAKEN if
busy, finishes and returns, as at max_use.

Before it accepts a connection, a process whose tables changed (`changed`: the table files
main.cf names, as Postfix's dict_changed_name(), see main.py) logs "table ... has changed --
restarting", stops accepting (the connection waits for its successor) and returns, as
smtp(8)'s pre_accept does: a table rebuilt in place by postmap must be opened afresh, and a
file renamed over the old one would otherwise never be seen.

``max_idle`` seconds (0: never) without any connection return too (the timer starts when the
last connection ends). When fd 5 turns readable, or a notice cannot be written (master is
gone), the process stops accepting, finishes the connections it has, and returns; master still
counts it AVAIL until it exits, so after ``postfix reload`` new connections wait for the
slowest delivery in flight of a process that was below its limit. `serve()` returns the reason;
the caller exits 0.

Each connection runs `handler(sock)` under ``daemon_timeout`` (then it is cancelled and
closed, with a warning); the handler gets the accepted socket (in blocking mode, as accept()
made it: the handler sets what it needs), closed when the handler returns (the qmgr server
reads and writes it directly: a request in, one reply out; `stream_handler()` gives a handler
asyncio streams instead). An exception from the handler is a warning, never the end of the
process. ``watchdog=True`` also arms a process
watchdog (faulthandler: the process exits if its event loop does not come back for
``daemon_timeout``). `set_signals()` makes SIGPIPE and SIGXFSZ harmless and SIGTERM
(``postfix stop``) end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import faulthandler
import os
import select
import signal
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.log import LogSink, NullLog
from mailcarrier.postfix.options import (
    MasterError,
    MasterOptions,
    drop_privileges,
    load_settings,
    parse_argv,
    parse_generation,
    split_nameval,
)

__all__ = [
    "AVAIL",
    "LISTEN_FD",
    "RETIRE_CEILING",
    "STATUS_FD",
    "TAKEN",
    "ChildLimits",
    "ChildStatistics",
    "Handler",
    "MasterChild",
    "MasterError",
    "MasterOptions",
    "StopReason",
    "StreamHandler",
    "drop_privileges",
    "inherited_descriptors",
    "load_settings",
    "parse_argv",
    "parse_generation",
    "retire_after",
    "set_signals",
    "split_nameval",
    "status_message",
    "stream_handler",
]

STATUS_FD: Final = 5  # MASTER_STATUS_FD
LISTEN_FD: Final = 6  # MASTER_LISTEN_FD


def inherited_descriptors(options: MasterOptions) -> frozenset[int]:
    """Which of master's descriptors (the status socket, the listen sockets) are open:
    taken first thing, before a table or anything else can be given those numbers."""
    present = set()
    for fd in range(STATUS_FD, LISTEN_FD + options.socket_count):
        try:
            os.fstat(fd)
        except OSError:
            continue
        present.add(fd)
    return frozenset(present)


TAKEN: Final = 0  # MASTER_STAT_TAKEN
AVAIL: Final = 1  # MASTER_STAT_AVAIL
_STATUS: Final = struct.Struct("=iIi")
# accept() errors that only mean "nothing for this process now".
_ACCEPT_AGAIN: Final = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNABORTED)
# Accepting pauses this long after another accept() error (EMFILE, ENOBUFS, ...).
_ACCEPT_PAUSE: Final = 1.0

# What serves one accepted connection (its socket, closed when it returns).
Handler = Callable[[socket.socket], Awaitable[None]]
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def stream_handler(handler: StreamHandler) -> Handler:
    """`handler` as a `Handler`: it gets asyncio streams on the accepted socket, closed
    after it returns."""

    async def on_socket(conn: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=conn)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    return on_socket


def _expire(task: asyncio.Task[None], expired: list[bool]) -> None:
    """The watchdog of one connection: its handler took daemon_timeout."""
    expired.append(True)
    task.cancel()


def status_message(pid: int, generation: int, avail: int) -> bytes:
    """The 12 bytes of one notice to master (MASTER_STATUS, native byte order)."""
    return _STATUS.pack(pid, generation & 0xFFFFFFFF, avail)


def set_signals() -> None:
    """As single_server_main: a peer going away (SIGPIPE) or a file size limit (SIGXFSZ)
    is an error return, not death; SIGTERM (``postfix stop``) ends the process."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StopReason(enum.Enum):
    MASTER_GONE = "master disconnect"
    MAX_USE = "use limit reached"
    MAX_IDLE = "idle timeout"
    RETIRE = "time to retire"
    TABLE_CHANGED = "table changed"


# A process that retires by time (see `retire_after`) does so after at most this long, as
# Postfix's server skeletons (CA_MAIL_SERVER_RETIRE_ME).
RETIRE_CEILING: Final = 18000.0


def retire_after(max_use: int, max_idle: float) -> float:
    """event_server's CA_MAIL_SERVER_RETIRE_ME: max_idle x max_use seconds, or 18000 when
    either is 0 or the product is larger."""
    if not max_use or not max_idle or max_idle > RETIRE_CEILING / max_use:
        return RETIRE_CEILING
    return max_idle * max_use


@dataclass(frozen=True, slots=True)
class ChildLimits:
    concurrency: int = 1  # connections served at once
    max_use: int = 100  # connections per process; 0: no limit
    max_idle: float = 100.0  # seconds without a connection; 0: no limit
    daemon_timeout: float = 18000.0  # seconds one connection may take
    retire: float = 0.0  # seconds before the process stops accepting and ends; 0: never

    @classmethod
    def from_settings(cls, settings: Settings) -> ChildLimits:
        """max_use counts connections with a concurrency of 1 (smtp(8)); a process serving
        many short connections at once retires by time instead (see the module text)."""
        p = settings.params
        concurrency = p.agent_concurrency_limit
        if concurrency == 1:
            return cls(1, p.max_use, p.max_idle, p.daemon_timeout)
        retire = retire_after(p.max_use, p.max_idle)
        return cls(concurrency, 0, p.max_idle, p.daemon_timeout, retire)


@dataclass(frozen=True, slots=True)
class ChildStatistics:
    active: int  # connections being served (released ones not counted)
    accepted: int
    completed: int
    taken: bool  # what master was told last: True after TAKEN
    uses: int  # TAKEN -> AVAIL changes master has counted


class MasterChild:
    """Serves the listen sockets master(8) gave, telling master through the status channel
    (see the module text). `serve()` once; `statistics()` at any time."""

    def __init__(
        self,
        listeners: Sequence[socket.socket],
        *,
        status_fd: int = STATUS_FD,
        generation: int = 0,
        limits: ChildLimits | None = None,
        log: LogSink | None = None,
        process: str = "smtp",
        service: str = "smtp",
        pid: int | None = None,
        watchdog: bool = False,
        changed: Callable[[], str | None] | None = None,
    ) -> None:
        self._listeners = tuple(listeners)
        self._changed = changed
        self._status_fd = status_fd
        self._generation = generation
        self.limits = limits or ChildLimits()
        self._log: LogSink = log or NullLog()
        self._process = process
        self._service = service
        self._pid = pid
        self._watchdog = watchdog
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = self._accepted = self._completed = self._uses = 0
        self._taken = False  # master counts a new child as available
        self._status_open = True
        self._accepting = False
        self._paused: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._released: set[asyncio.Task[None]] = set()  # connections done with their work
        self._retire: asyncio.TimerHandle | None = None
        self._stop: asyncio.Future[StopReason] | None = None
        self._handler: Handler | None = None
        # serve()'s loop, at hand (asyncio.get_running_loop() costs a getpid() on 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_master(
        cls,
        options: MasterOptions,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        log: LogSink | None = None,
        changed: Callable[[], str | None] | None = None,
        inherited: frozenset[int] | None = None,
    ) -> MasterChild:
        """The child master(8) started: fd 5, fds 6.., ``$GENERATION``, limits from the
        settings. `MasterError` when the descriptors are not there (started by hand).
        `inherited` is `inherited_descriptors()` taken before anything was opened (tables
        opened since may hold those numbers when master did not pass them); None: now."""
        env = os.environ if environ is None else environ
        if options.daemon_mode and os.isatty(0):
            raise MasterError("do not run this command by hand")
        if inherited is None:
            inherited = inherited_descriptors(options)
        if STATUS_FD not in inherited:
            raise MasterError(f"no status socket on fd {STATUS_FD}: not started by master(8)")
        listeners = []
        for fd in range(LISTEN_FD, LISTEN_FD + options.socket_count):
            try:
                if fd not in inherited:
                    raise OSError(errno.EBADF, os.strerror(errno.EBADF))
                listeners.append(socket.socket(fileno=fd))
            except OSError as exc:
                raise MasterError(f"listen socket fd {fd}: {exc.strerror or exc}") from None
        # As single_server: master's descriptors (the flow pipe at 3 and 4 too) are not
        # passed on to programs this one may start.
        for fd in (3, 4, STATUS_FD, *(s.fileno() for s in listeners)):
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
        return cls(
            listeners,
            generation=parse_generation(env),
            limits=ChildLimits.from_settings(settings),
            log=log,
            process=options.personality,
            service=options.service_name,
            watchdog=True,
            changed=changed,
        )

    def statistics(self) -> ChildStatistics:
        return ChildStatistics(
            self._active, self._accepted, self._completed, self._taken, self._uses
        )

    # --- the loop ---------------------------------------------------------------------------
    async def serve(self, handler: Handler) -> StopReason:
        """Accept and serve connections until a reason to stop, then finish those in
        progress and return the reason."""
        if self._stop is not None:
            raise RuntimeError("MasterChild.serve() runs once")
        loop = self._loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._handler = handler
        for listener in self._listeners:
            listener.setblocking(False)
        loop.add_reader(self._status_fd, self._master_gone)
        self._update_accepting()
        self._arm_idle()
        if self.limits.retire:
            self._retire = loop.call_later(self.limits.retire, self._stopping, StopReason.RETIRE)
        watchdog = loop.create_task(self._watch()) if self._watchdog else None
        try:
            reason = await asyncio.shield(self._stop)
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            return reason
        finally:
            self._end(loop, watchdog)

    def _end(self, loop: asyncio.AbstractEventLoop, watchdog: asyncio.Task[None] | None) -> None:
        self._stopping(StopReason.MASTER_GONE)  # only when serve() itself was cancelled
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self._status_fd)
        for task in self._tasks:
            task.cancel()
        if watchdog is not None:
            watchdog.cancel()
            faulthandler.cancel_dump_traceback_later()

    async def _watch(self) -> None:
        """Exit the process when the loop stops turning for daemon_timeout (a wedged
        process, as Postfix's watchdog)."""
        timeout = self.limits.daemon_timeout
        while True:
            with contextlib.suppress(RuntimeError, ValueError):  # no usable stderr
                faulthandler.dump_traceback_later(timeout, exit=True)
            await asyncio.sleep(min(timeout / 4, 60.0))

    def _update_accepting(self) -> None:
        """Watch the listen sockets exactly when a connection may be accepted."""
        want = (
            self._stop is not None
            and not self._stop.done()
            and self._paused is None
            and self._active < self.limits.concurrency
        )
        if want == self._accepting:
            return
        loop = self._loop
        assert loop is not None
        for listener in self._listeners:
            if want:
                loop.add_reader(listener.fileno(), self._accept, listener)
            else:
                loop.remove_reader(listener.fileno())
        self._accepting = want

    def _accept(self, listener: socket.socket) -> None:
        table = self._changed() if self._changed is not None else None
        if table is not None:
            self._log.info(self._process, f"table {table} has changed -- restarting")
            self._stopping(StopReason.TABLE_CHANGED)
            return
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            if exc.errno not in _ACCEPT_AGAIN:
                self._log.warning(self._process, f"accept connection: {exc.strerror or exc}")
                self._pause()
            return
        self._active += 1
        self._accepted += 1
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        max_use = self.limits.max_use
        if max_use and self._accepted >= max_use:
            self._stopping(StopReason.MAX_USE)
        elif self._active >= self.limits.concurrency:
            self._notify(TAKEN)
        self._update_accepting()
        assert self._loop is not None
        task = self._loop.create_task(self._run(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pending(self) -> bool:
        """A connection waits on a listen socket (master would start a process for it)."""
        try:
            ready, _, _ = select.select(self._listeners, [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _pause(self) -> None:
        def resume() -> None:
            self._paused = None
            self._update_accepting()

        self._paused = asyncio.get_running_loop().call_later(_ACCEPT_PAUSE, resume)
        self._update_accepting()

    async def _run(self, conn: socket.socket) -> None:
        """One connection: the handler under the watchdog (one timer, which cancels this
        task), then its place is free."""
        assert self._handler is not None and self._loop is not None
        task = asyncio.current_task(self._loop)
        assert task is not None
        timeout = self.limits.daemon_timeout
        expired: list[bool] = []
        watchdog = self._loop.call_later(timeout, _expire, task, expired)
        try:
            await self._handler(conn)
        except asyncio.CancelledError:
            if not expired:
                raise
            task.uncancel()
            text = f"watchdog timeout after {timeout:g}s: connection closed"
            self._log.warning(self._process, f"{self._service} socket: {text}")
        except Exception as exc:  # the handler's bug must not end the other deliveries
            text = f"{type(exc).__name__}: {exc}"
            self._log.warning(self._process, f"{self._service} socket: {text}")
        finally:
            watchdog.cancel()
            conn.close()
            self._completed += 1
            if task in self._released:
                self._released.discard(task)  # its place was given back already
            else:
                self._free_place()

    def release(self) -> None:
        """From a handler: this connection's work is done and it only waits for its peer to
        close, so its place no longer counts toward the limit (see the module text). Once per
        connection; with a concurrency of 1 (single_server) or elsewhere it does nothing."""
        if self._loop is None:
            return
        task = asyncio.current_task(self._loop)
        if self.limits.concurrency == 1 or task not in self._tasks or task in self._released:
            return
        assert task is not None
        self._released.add(task)
        self._free_place()

    def _free_place(self) -> None:
        self._active -= 1
        assert self._stop is not None
        if self._stop.done():
            return
        if self._taken:
            if self._active < self.limits.concurrency:
                self._notify(AVAIL)
        elif self._uses == 0 and not self._pending() and self._notify(TAKEN):
            # Be counted as used once (see the module text).
            self._notify(AVAIL)
        self._update_accepting()
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._active or not self.limits.max_idle or self._stop is None or self._stop.done():
            return
        if self._idle is not None:
            self._idle.cancel()
        assert self._loop is not None
        self._idle = self._loop.call_later(
            self.limits.max_idle, self._stopping, StopReason.MAX_IDLE
        )

    # --- stopping and the status channel ------------------------------------------------------
    def _stopping(self, reason: StopReason) -> None:
        """Stop accepting (once); tell master to start a successor while this one finishes."""
        if self._stop is None or self._stop.done():
            return
        self._stop.set_result(reason)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._retire is not None:
            self._retire.cancel()
            self._retire = None
        if self._active and not self._taken:
            self._notify(TAKEN)
        self._update_accepting()

    def _master_gone(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._status_fd)
        self._status_open = False
        self._stopping(StopReason.MASTER_GONE)

    def _notify(self, avail: int) -> bool:
        """One notice in one write; False (and stop) when master cannot be told."""
        if not self._status_open:
            return False
        pid = os.getpid() if self._pid is None else self._pid
        message = status_message(pid, self._generation, avail)
        try:
            written = os.write(self._status_fd, message)
        except OSError:
            written = -1
        if written != len(message):
            self._status_open = False
            self._stopping(StopReason.MASTER_GONE)
            return False
        if avail == AVAIL and self._taken:
            self._uses += 1
        self._taken = avail == TAKEN
        return True
