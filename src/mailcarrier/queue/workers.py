"""Delivery agent processes: the scheduler's deliveries run in N child processes.

Postfix's qmgr hands each delivery to a separate smtp(8) process; one Python process runs on
one core. With ``delivery_agent_processes`` = N > 1 the scheduler's `Deliverer` is an
`AgentPool`: N children (``python -m mailcarrier.queue.workers``), each a `DeliveryAgent`
with its own connection cache on its own event loop. The scheduler keeps every decision
(windows, limits, records): a request goes to the child running the fewest; each recipient's
verdict comes back the moment the child has it, and the scheduler records it durably exactly
as it does in-process; log lines come back too and go to the scheduler's log, the one writer
of maillog_file.

Wire format, over the child's stdin and stdout pipes: batches of frames (queue/frames.py: a
4-byte big-endian length and one pickle of the list of frames sent in one turn of the event
loop; both ends are this program, nothing else can write to the pipes).
Parent to child: ``("settings", Settings)`` first, then ``("deliver", id, DeliveryRequest)``
and ``("cancel", id)`` (the scheduler abandoned that delivery: the child cancels it, drops
its connection and reports nothing more about it).
Child to parent: ``("status", id, index, RecipientStatus)`` (one per recipient, as it is decided),
``("done", id, hop_status, busy, counts, unavailable)`` (the result is the statuses sent,
the hop status, in fleet mode the seconds after which a busy destination may be tried
again, or None, what the agent counted for the metrics, status.Counts, and whether it was
busy because Redis could not be asked),
``("failed", id, text)``, ``("log", level, process, text)``, ``("event", process, text,
Event)`` (a line and its event record, events.py), ``("transcript",
SessionTranscript)`` (a postmaster transcript, queued by the parent). The parent closing the child's
stdin asks it to finish what it runs and exit; `close(timeout)` kills the children that have
not exited by then (a stop must not wait for a stalled server). A child that dies fails its
running requests (the scheduler defers every recipient not yet recorded) and is replaced on
the next request.
Writes are batched: everything sent in one turn of the event loop goes out in one write,
as one batch: the reader is woken, and unpickles, once for all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from mailcarrier.aio import EndOfTurn, run_event_loop
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.transcript import SessionTranscript, TranscriptHook
from mailcarrier.events import Event
from mailcarrier.fleet import make_gate
from mailcarrier.log import LogSink, log_event
from mailcarrier.queue.frames import HEAD, MAX_BATCH, decode, encode
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.stopping import cancel_tasks
from mailcarrier.status import Counts, DeliveryResult, HopStatus, RecipientStatus

__all__ = ["AgentPool", "make_agent", "run_event_loop"]

StatusCallback = Callable[[int, RecipientStatus], None]


def make_agent(
    settings: Settings, log: LogSink, notify: TranscriptHook | None = None
) -> DeliveryAgent:
    """The queue's delivery agent, with a connection cache shared by all its deliveries;
    `notify` receives postmaster transcripts (queue/transcripts.py)."""
    limits = CacheLimits.from_settings(settings.for_transport("smtp"))
    cache = ConnectionCache(limits)
    fleet = make_gate(settings, log)  # fleet mode, or LocalGate for a single node
    # Long-running: cached MTA-STS policies are refreshed without waiting for mail.
    return DeliveryAgent(
        settings, log=log, cache=cache, notify=notify, sts_refresh=True, fleet=fleet
    )


class _Outbox:
    """Frames to one pipe, written once per event-loop turn as one batch (aio.py's
    `EndOfTurn`, frames.py's `encode`)."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._frames: EndOfTurn[tuple[object, ...]] = EndOfTurn(self._write_all)
        # The event loop the pipe is served by (looking it up costs a getpid() on 3.11).
        self.loop = asyncio.get_running_loop()

    def send(self, message: tuple[object, ...]) -> None:
        self._frames.add(message, self.loop)

    def flush(self) -> None:
        self._frames.flush()

    def _write_all(self, frames: list[tuple[object, ...]]) -> None:
        self._write(encode(frames))


async def _connect_pipes(
    read_fd: int, write_fd: int
) -> tuple[asyncio.StreamReader, asyncio.WriteTransport]:
    """Frames in on `read_fd`, out on `write_fd`: both ends of a parent-child channel."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader),
        open(read_fd, "rb", buffering=0),  # noqa: SIM115 - the transport owns it
    )
    transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol,
        open(write_fd, "wb", buffering=0),  # noqa: SIM115 - the transport owns it
    )
    return reader, transport


async def _receive(reader: asyncio.StreamReader) -> list[tuple[Any, ...]] | None:
    """The frames of the next batch, or None at the end of the stream."""
    try:
        head = await reader.readexactly(HEAD.size)
    except asyncio.IncompleteReadError:
        return None
    (length,) = HEAD.unpack(head)
    if length > MAX_BATCH:
        raise ValueError(f"batch of {length} bytes")
    return decode(await reader.readexactly(length))


_Verdict = tuple[int, RecipientStatus]
# The statuses, the hop status, the fleet's "busy: try again in N seconds", the metrics'
# counts, and whether the busy was for want of Redis.
_Outcome = tuple[list[_Verdict], HopStatus | None, float | None, Counts, bool]
_Pending = tuple[StatusCallback | None, asyncio.Future[_Outcome], list[_Verdict]]


class _Child:
    """One agent process as the parent sees it: its pid, its two pipes, its requests."""

    def __init__(
        self,
        number: int,
        pid: int,
        reader: asyncio.StreamReader,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        wait: Callable[[], Coroutine[Any, Any, int]],
    ) -> None:
        self.number = number
        self.pid = pid
        self.reader = reader
        self.outbox = _Outbox(write)
        self.close_input = close
        self.wait = wait
        # request id -> (status callback, future of the verdicts, verdicts so far)
        self.pending: dict[int, _Pending] = {}
        self.alive = True
        self.task: asyncio.Task[None] | None = None


class AgentPool:
    """A `Deliverer` that runs each request in one of `processes` agent processes.

    `fork()` before the event loop starts makes the children cheaply (they share the loaded
    program); children started later (after a reload, or to replace one that died) are new
    interpreters (``python -m mailcarrier.queue.workers``)."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        log: LogSink,
        notify: TranscriptHook | None = None,
    ) -> None:
        self.settings = settings
        self.processes = processes
        self.log = log
        self.notify = notify
        self._children: list[_Child] = []
        self._closing: list[_Child] = []
        self._forked: list[tuple[int, int, int]] = []  # pid, read fd, write fd
        self._ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None
        self._numbers = itertools.count(1)

    def fork(self) -> None:
        """Fork the agent processes now; call before any event loop or thread exists."""
        inherited: list[int] = []
        for _ in range(self.processes):
            down_r, down_w = os.pipe()  # parent -> child
            up_r, up_w = os.pipe()  # child -> parent
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 1
                try:
                    for fd in (down_w, up_r, *inherited):
                        os.close(fd)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)
                    notify = self.notify is not None
                    run_event_loop(_agent_main(down_r, up_w, (self.settings, notify)))
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            os.close(down_r)
            os.close(up_w)
            os.set_inheritable(up_r, False)
            os.set_inheritable(down_w, False)
            inherited += [up_r, down_w]
            self._forked.append((pid, up_r, down_w))

    async def start(self) -> None:
        """Start every agent process (deliver() also starts missing ones on demand)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            while self._forked:
                self._children.append(await self._attach(*self._forked.pop(0)))
            self._children = [c for c in self._children if c.alive]
            while len(self._children) < self.processes:
                self._children.append(await self._spawn())

    async def _attach(self, pid: int, read_fd: int, write_fd: int) -> _Child:
        loop = asyncio.get_running_loop()
        reader, transport = await _connect_pipes(read_fd, write_fd)

        async def wait() -> int:
            _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
            return os.waitstatus_to_exitcode(status)

        return self._run(
            _Child(next(self._numbers), pid, reader, transport.write, transport.close, wait)
        )

    async def _spawn(self) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailcarrier.queue.workers",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        assert process.stdin is not None and process.stdout is not None
        stdin = process.stdin

        def close() -> None:
            with contextlib.suppress(OSError):
                stdin.close()

        child = _Child(
            next(self._numbers), process.pid, process.stdout, stdin.write, close, process.wait
        )
        child.outbox.send(("settings", self.settings, self.notify is not None))
        return self._run(child)

    def _run(self, child: _Child) -> _Child:
        child.task = asyncio.get_running_loop().create_task(self._read(child))
        return child

    async def deliver(
        self, request: DeliveryRequest, *, on_status: StatusCallback | None = None
    ) -> DeliveryResult:
        if len(self._children) < self.processes or not all(c.alive for c in self._children):
            await self.start()
        child = min(self._children, key=lambda c: len(c.pending))
        request_id = next(self._ids)
        future: asyncio.Future[_Outcome] = child.outbox.loop.create_future()
        child.pending[request_id] = (on_status, future, [])
        child.outbox.send(("deliver", request_id, request))
        try:
            received, hop_status, busy, counts, unavailable = await future
        except asyncio.CancelledError:
            # Abandoned (a stop): the child drops it; later frames about it are ignored.
            if child.pending.pop(request_id, None) is not None and child.alive:
                child.outbox.send(("cancel", request_id))
                child.outbox.flush()
            raise
        # Every verdict came in its own frame already: the result is made of them.
        verdicts = sorted(received, key=lambda pair: pair[0])
        statuses = tuple(status for _, status in verdicts)
        return DeliveryResult(
            request.queue_id,
            statuses,
            hop_status,
            busy,
            counts=counts,
            fleet_unavailable=unavailable,
        )

    async def _read(self, child: _Child) -> None:
        reason = "closed its pipe"
        try:
            while (batch := await _receive(child.reader)) is not None:
                for message in batch:
                    self._dispatch(child, message)
        except (ValueError, pickle.UnpicklingError, EOFError, OSError) as exc:
            reason = f"sent a malformed frame: {exc}"
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        child.alive = False
        child.close_input()
        status = await child.wait()
        if child.pending:
            text = _exit_text(status) if status else reason
            self.log.warning(QMGR, f"delivery agent process pid {child.pid} {text}")
            for _, future, _ in child.pending.values():
                if not future.done():
                    future.set_exception(RuntimeError(f"delivery agent process {text}"))
            child.pending.clear()

    def _dispatch(self, child: _Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "status":
            _, request_id, index, status = message
            entry = child.pending.get(request_id)
            if entry is not None:
                entry[2].append((index, status))
                if entry[0] is not None:
                    entry[0](index, status)
        elif kind in {"done", "failed"}:
            entry = child.pending.pop(message[1], None)
            if entry is not None and not entry[1].done():
                if kind == "done":
                    hop = message[2] if isinstance(message[2], HopStatus) else None
                    busy = message[3] if isinstance(message[3], float) else None
                    counts = message[4] if isinstance(message[4], tuple) else ()
                    entry[1].set_result((entry[2], hop, busy, counts, message[5] is True))
                else:
                    entry[1].set_exception(RuntimeError(message[2]))
        elif kind == "log":
            _, level, process, text = message
            (self.log.warning if level == "warning" else self.log.info)(process, text)
        elif kind == "event":
            _, process, text, event = message
            if isinstance(event, Event):
                log_event(self.log, process, text, event)
        elif kind == "transcript":
            if self.notify is not None and isinstance(message[1], SessionTranscript):
                self.notify(message[1])
        else:
            raise ValueError(f"unknown frame {kind!r}")

    async def close(self, timeout: float | None = None) -> None:
        """Let every agent finish what it runs, then exit (end of its input); those still
        running after `timeout` seconds are killed."""
        if self._forked:  # forked but never attached: the loop never ran
            await self.start()
        children, self._children = self._children, []
        self._closing += children
        for child in children:
            child.outbox.flush()
            child.close_input()
        tasks = {child.task for child in children if child.task is not None}
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        if late:
            self.kill()
            await asyncio.wait(late)
        for task in tasks:  # retrieved, so that no error is reported as never retrieved
            if not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()

    def kill(self) -> None:
        """Kill every agent process that has not exited (SIGKILL): their deliveries were
        abandoned, and their connections just drop."""
        for child in self._children + self._closing:
            if child.task is not None and not child.task.done():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)


def _exit_text(status: int) -> str:
    if status < 0:
        return f"killed by signal {-status}"
    return f"exit status {status}"


# --- the child ----------------------------------------------------------------------------


class _PipeLog:
    """The child's log: lines go to the parent, which writes them."""

    def __init__(self, outbox: _Outbox) -> None:
        self.outbox = outbox

    def info(self, process: str, text: str) -> None:
        self.outbox.send(("log", "info", process, text))

    def warning(self, process: str, text: str) -> None:
        self.outbox.send(("log", "warning", process, text))

    def event(self, process: str, text: str, event: Event) -> None:
        self.outbox.send(("event", process, text, event))


async def _agent_main(in_fd: int, out_fd: int, given: tuple[Settings, bool] | None = None) -> None:
    """The agent process: requests in on `in_fd`, verdicts and log lines out on `out_fd`.
    `given` (the settings, and whether to send transcripts) is passed to a forked child; a
    new interpreter reads it as the first frame."""
    reader, transport = await _connect_pipes(in_fd, out_fd)
    outbox = _Outbox(transport.write)
    early: list[tuple[Any, ...]] = []  # what came in the batch of the settings
    if given is None:
        batch = await _receive(reader) or []
        first = batch[0] if batch else ("",)
        if first[0] != "settings" or len(first) < 3 or not isinstance(first[1], Settings):
            raise SystemExit("mailcarrier agent: expected the settings first")
        given, early = (first[1], bool(first[2])), batch[1:]
    settings, transcripts = given

    def notify(transcript: SessionTranscript) -> None:
        outbox.send(("transcript", transcript))

    agent = make_agent(settings, _PipeLog(outbox), notify if transcripts else None)
    agent.start_sts_refresh()
    async with asyncio.TaskGroup() as deliveries:  # none outlives the input
        refused = await _serve(reader, agent, outbox, deliveries, early)
    agent.stop_sts_refresh()
    if refused:
        raise SystemExit(refused)
    if agent.cache is not None:
        await agent.cache.close_all()
    await agent.fleet.close()  # after the cache: its sessions' leases are released
    await agent.close_tlsrpt()
    outbox.flush()
    transport.close()


async def _serve(
    reader: asyncio.StreamReader,
    agent: DeliveryAgent,
    outbox: _Outbox,
    deliveries: asyncio.TaskGroup,
    early: list[tuple[Any, ...]],
) -> str:
    """Start a task of `deliveries` for each request that comes in (`early` first), and
    cancel those the scheduler abandons, until the end of the input: "" then, or why the
    input was refused (an unexpected frame: the deliveries running are cancelled)."""
    tasks: dict[int, asyncio.Task[None]] = {}
    batch: list[tuple[Any, ...]] | None = early
    while batch is not None:
        for message in batch:
            if message[0] == "cancel":
                task = tasks.get(message[1])
                if task is not None:
                    deliveries.create_task(cancel_tasks([task]))
                continue
            if message[0] != "deliver":
                for task in tasks.values():
                    task.cancel()
                return f"mailcarrier agent: unexpected frame {message[0]!r}"
            request_id: int = message[1]
            task = deliveries.create_task(_deliver(agent, outbox, request_id, message[2]))
            tasks[request_id] = task
            task.add_done_callback(functools.partial(_forget, tasks, request_id))
        batch = await _receive(reader)
    return ""


async def _deliver(
    agent: DeliveryAgent, outbox: _Outbox, request_id: int, request: DeliveryRequest
) -> None:
    """One request in the agent process: each verdict as it comes, then the outcome."""

    def on_status(index: int, status: RecipientStatus) -> None:
        outbox.send(("status", request_id, index, status))

    try:
        result = await agent.deliver(request, on_status=on_status)
    except Exception as exc:  # reported to the scheduler, which defers the rest
        outbox.send(("failed", request_id, f"{type(exc).__name__}: {exc}"))
    else:
        done = (
            "done",
            request_id,
            result.hop_status,
            result.busy,
            result.counts,
            result.fleet_unavailable,
        )
        outbox.send(done)


def _forget(tasks: dict[int, asyncio.Task[None]], request_id: int, _: object) -> None:
    tasks.pop(request_id, None)


def _child() -> None:
    # The scheduler decides when agents stop (it closes their input): a SIGTERM, SIGHUP or ^C sent
    # to the whole process group must not kill deliveries in the middle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Frames go to a private copy of stdout; anything else printed goes to stderr.
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    run_event_loop(_agent_main(in_fd, out_fd))


if __name__ == "__main__":
    _child()
