"""The queue manager (Postfix's qmgr): messages in, delivery jobs out, verdicts recorded.

`QueueManager` moves messages from incoming/ (and due ones from deferred/) to active/, routes
each pending recipient (route.py), groups recipients per (transport, next hop) in jobs
(jobs.py) of at most ``<transport>_destination_recipient_limit``, and runs jobs through the injected
`Deliverer` (the DeliveryAgent) under a per-destination concurrency window (window.py) and
`default_process_limit` in total. Each verdict is appended to the queue file and fsynced as
the agent reports it, before the next recipient. When a message's jobs are all done the
`Finisher` (finalize.py) sends notices and removes or defers it. `run_once()` drains what is
deliverable now; `serve()` (daemon.py drives it) runs until asked to stop; `stop()` gives
deliveries in flight a short grace period, then abandons them (stopping.py). Clock injected;
`progress` (progress.py) is told of each message activated and finished (``run --once``
shows it on a terminal). A small message's content, read whole with its envelope, goes
with its requests to an agent in this process (`CONTENT_KEPT`, `CONTENT_HELD_MAX`).

A write that fails (a full disk, a read-only queue: `TemporaryError`) costs one message, not
the run: a message whose records cannot be reserved is not delivered and stays where it
was; one whose verdict, notice or deferral cannot be written is logged with the file and
the error and goes back to the queue it came from. Either way this manager leaves it alone
for `minimal_backoff_time` (a ``queue flush`` or the next run tries at once), and delivers
the others meanwhile.

Fleet mode (fleet/): a delivery whose destination was at a fleet limit comes back "busy"
(`DeliveryResult.busy`, seconds): its recipients not yet marked go back to the front of the
destination's queue, the destination is held back that long (`statistics()`:
``busy_destinations``), and nothing is recorded: no deferral, no concurrency feedback.
`run_once()` waits for such destinations, except when Redis itself could not be asked: their
mail is left queued for the next run (it returns how many messages), not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.request import Deliverer, takes_content_bytes
from mailcarrier.errors import TemporaryError
from mailcarrier.events import delivery_event
from mailcarrier.log import LogSink, NullLog, delivery_line, log_event
from mailcarrier.progress import NULL_PROGRESS, Progress
from mailcarrier.queue.crash import crash_point
from mailcarrier.queue.finalize import Finisher, record_state
from mailcarrier.queue.jobs import ActiveMessage, Job, delivery_request
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.observer import NullObserver, QueueObserver
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import RecipientState
from mailcarrier.queue.route import Route, RouteAnswers, Router
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.stopping import STOP_GRACE, cancel_tasks, wait_running
from mailcarrier.queue.window import DestinationWindow, Feedback
from mailcarrier.status import DeliveryStatus, HopStatus, RecipientStatus

__all__ = ["Deliverer", "QueueManager", "dsn_split"]  # Deliverer: delivery/request.py

DestKey = tuple[str, str]
# A message's content of at most CONTENT_KEPT bytes (the first block an agent reads and
# keeps through a delivery, content/stream.py) is kept from the spool's first read, for the
# agent in this process, while the active messages hold less than CONTENT_HELD_MAX.
CONTENT_KEPT: Final = 16384
CONTENT_HELD_MAX: Final = 16 * 1024 * 1024
# The hop status of a delivery that ended without a result: the agent failed.
_AGENT_FAILED: Final = HopStatus("4.3.0", "unknown mail transport error")
# An RFC 3463 status code at the start of a text (Postfix's dsn_valid()).
_DSN: Final = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")


def dsn_split(default: str, text: str) -> tuple[str, str]:
    """(status, text) as Postfix's dsn_split(): the status code the text starts with, after
    white space, else `default` (error(8) and retry: ``error:5.1.1 no such user``)."""
    text = text.lstrip()
    found = _DSN.match(text)
    if found is None:
        return default, text
    return found.group(), text[found.end() :].lstrip()


class QueueManager:
    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        deliverer: Deliverer,
        *,
        router: Router | None = None,
        log: LogSink | None = None,
        clock: Callable[[], float] = time.time,
        observer: QueueObserver | None = None,
    ) -> None:
        self.spool = spool
        # Told of every verdict written and of what the agents counted (observe/).
        self.observer: QueueObserver = observer if observer is not None else NullObserver()
        self.deliverer = deliverer  # and `_content_up_to`, for it
        self.log: LogSink = log if log is not None else NullLog()
        self.clock = clock
        self._queues: dict[DestKey, deque[Job]] = {}
        self._windows: dict[DestKey, DestinationWindow] = {}
        # Destinations at a fleet limit: not started again before this time (clock()).
        self._busy: dict[DestKey, float] = {}
        self._busy_timer: asyncio.TimerHandle | None = None
        # run_once(): destinations left for the next run (the shared state server away).
        self._leave: set[DestKey] | None = None
        self._active: dict[str, ActiveMessage] = {}
        # Bytes of content the active messages hold for an agent in this process (`_take`).
        self._content_held = 0
        # Deliveries run as tasks of this TaskGroup, open only inside `running()`; the jobs
        # they run, by task, until each ends (for the limits, waiting and abandoning).
        self._deliveries: asyncio.TaskGroup | None = None
        self._running: dict[asyncio.Task[None], Job] = {}
        # Messages a write failed for: queue ID -> when to try again (see forget_trouble).
        self._held: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        # run --once on a terminal: messages activated so far, and the progress line told
        # of them and of each one finished (progress.py; nothing shown by default).
        self.progress: Progress = NULL_PROGRESS
        self._activated = 0
        self.configure(settings, router)

    @property
    def deliverer(self) -> Deliverer:
        """What delivers the jobs (replaced on a reload)."""
        return self._deliverer

    @deliverer.setter
    def deliverer(self, deliverer: Deliverer) -> None:
        self._deliverer = deliverer
        self._content_up_to = CONTENT_KEPT if takes_content_bytes(deliverer) else 0

    def configure(self, settings: Settings, router: Router | None = None) -> None:
        """(Re)load the configuration: routing, limits, lifetimes (SIGHUP calls this)."""
        # The router first: a transport nothing defines leaves the old configuration whole.
        router = router if router is not None else Router(settings)
        self.settings = settings
        self.params = QueueParams(settings)
        self.router = router
        self.finisher = Finisher(
            self.spool, self.params, self.log, self.clock, on_expired=self._expired
        )
        self.process_limit = self.params.main.default_process_limit
        # <transport>_destination_recipient_limit by transport name, read when first asked.
        self._recipient_limits: dict[str, int] = {}
        self.active_limit = self.params.main.qmgr_message_active_limit
        for (transport, _), window in self._windows.items():
            window.limit = self.params.transport_int(transport, "destination_concurrency_limit")

    def _expired(self, recipients: int) -> None:
        self.observer.expired(recipients)  # the observer of now: cli_queue.py sets it late

    # --- statistics -------------------------------------------------------------------
    def statistics(self) -> dict[str, int]:
        return {
            "active_messages": len(self._active),
            "running_jobs": len(self._running),
            "queued_jobs": sum(len(q) for q in self._queues.values()),
            "busy_destinations": len(self._busy),
        }

    def peak_concurrency(self, transport: str, nexthop: str) -> int:
        window = self._windows.get((transport, nexthop))
        return 0 if window is None else window.peak

    # --- recovery and activation ------------------------------------------------------
    def recover(self) -> int:
        """After a crash, or a failed write: put what no delivery owns in active/ back into
        incoming/."""
        moved = 0
        for queue_id in self.spool.ids("active"):
            if queue_id not in self._active and queue_id not in self.spool.removing:
                try:
                    self.spool.move(queue_id, "active", "incoming")
                    moved += 1
                except FileNotFoundError:
                    pass
                except TemporaryError as exc:  # stays in active/: tried again next time
                    self.log.warning(QMGR, f"{queue_id}: {exc}")
        return moved

    async def activate_ready_async(self, *, deferred: bool = True) -> int:
        """`activate_ready` with `activate_async` (network transport_maps)."""
        count = 0
        for queue, queue_id in self._ready(deferred=deferred):
            if self.full:
                break
            count += await self.activate_async(queue, queue_id)
        return count

    def activate_ready(self, *, deferred: bool = True) -> int:
        """Activate everything in incoming/ and, with `deferred`, what is due in deferred/."""
        count = 0
        for queue, queue_id in self._ready(deferred=deferred):
            if self.full:
                break
            count += self.activate(queue, queue_id)
        return count

    @property
    def full(self) -> bool:
        """The active queue holds `qmgr_message_active_limit` messages: activate no more
        until some leave (the rest waits where it is, as with Postfix's qmgr)."""
        return len(self._active) >= self.active_limit

    def _ready(self, *, deferred: bool = True) -> list[tuple[str, str]]:
        ready = [("incoming", i) for i in self.spool.ids("incoming")]
        if deferred:
            ready += [("deferred", i) for i in self.spool.due("deferred", self.clock())]
        if self._held:
            now = self.clock()
            for queue_id, until in list(self._held.items()):
                if until <= now:
                    del self._held[queue_id]
            ready = [pair for pair in ready if pair[1] not in self._held]
        return ready

    def _hold_off(self, queue_id: str) -> None:
        """A write failed for this message: leave it alone for a while."""
        self._held[queue_id] = self.clock() + self.params.main.minimal_backoff_time

    def forget_trouble(self) -> None:
        """Try messages that a write failed for again at once (``queue flush``)."""
        self._held.clear()

    def activate(self, queue: str, queue_id: str) -> int:
        active = self._take(queue, queue_id)
        if active is None:
            return 0
        self._start(active, None)
        return 1

    async def activate_async(self, queue: str, queue_id: str) -> int:
        """`activate`, with network transport_maps asked on the loop without blocking it."""
        active = self._take(queue, queue_id)
        if active is None:
            return 0
        answers = None
        if self.router.network:
            env = active.message.envelope
            pending = active.message.pending()
            answers = await self.router.prefetch(
                (env.recipients[i].address for i in pending), env.sender
            )
        self._start(active, answers)
        return 1

    def _take(self, queue: str, queue_id: str) -> ActiveMessage | None:
        if queue_id in self._active:
            return None
        # A small message's content goes to an agent in this process with the request: read
        # once, not opened again by the agent (delivery/request.py).
        keep = self._content_up_to if self._content_held < CONTENT_HELD_MAX else 0
        try:
            taken = self.spool.take(queue, queue_id, content_up_to=keep)
        except TemporaryError as exc:  # not delivered: it stays where it was
            self.log.warning(QMGR, f"{queue_id}: {exc}")
            self._hold_off(queue_id)
            return None
        if taken is None:
            return None
        message, records = taken
        if message.content is not None:
            self._content_held += len(message.content)
        crash_point("activate-after-move")
        env = message.envelope
        active = ActiveMessage(message, records, self.clock())
        self._active[queue_id] = active
        self._activated += 1
        self.progress.grow(self._activated)
        self.log.info(
            QMGR,
            f"{queue_id}: from=<{env.sender}>, size={env.size}, "
            f"nrcpt={len(env.recipients)} (queue active)",
        )
        return active

    def _start(self, active: ActiveMessage, answers: RouteAnswers | None) -> None:
        self._plan(active, answers)
        if active.jobs_left == 0:
            self._finish(active)
        self._wakeup.set()

    def _plan(self, active: ActiveMessage, answers: RouteAnswers | None) -> None:
        groups: dict[DestKey, list[int]] = {}
        routes: dict[DestKey, Route] = {}
        env = active.message.envelope
        for i in active.message.pending():
            route = self.router.route(env.recipients[i].address, answers, env.sender)
            if not route.deliverable:
                self._record_local(active, i, route)
                continue
            key = (route.name, route.nexthop)
            groups.setdefault(key, []).append(i)
            routes[key] = route
        for key, indexes in groups.items():
            limit = self._recipient_limits.get(key[0])
            if limit is None:
                limit = self.params.transport_int(key[0], "destination_recipient_limit")
                self._recipient_limits[key[0]] = limit
            step = limit if limit > 0 else len(indexes)
            for start in range(0, len(indexes), step):
                job = Job(active, routes[key], indexes[start : start + step])
                self._queues.setdefault(key, deque()).append(job)
                active.jobs_left += 1

    def _record_local(self, active: ActiveMessage, index: int, route: Route) -> None:
        """Recipients routed to error:, retry: or an unknown transport (no agent runs)."""
        if route.transport == "error":
            status, process = DeliveryStatus.BOUNCED, "error"
            dsn, reason = dsn_split("5.0.0", route.nexthop or "delivery failed")
        elif route.transport == "retry":
            status, process = DeliveryStatus.DEFERRED, "retry"
            dsn, reason = dsn_split("4.0.0", route.nexthop or "delivery temporarily suspended")
        else:
            status, dsn = DeliveryStatus.DEFERRED, "4.3.0"
            reason, process = "mail transport unavailable", "qmgr"
            missing = f"connect to transport private/{route.nexthop}: No such file or directory"
            self.log.warning(QMGR, missing + self.router.hint(route.nexthop))
        self._record(active, index, status, dsn, reason, "none", process, route)

    def _record(
        self,
        active: ActiveMessage,
        index: int,
        status: DeliveryStatus,
        dsn: str,
        reason: str,
        relay: str,
        process: str,
        route: Route,
    ) -> None:
        env = active.message.envelope
        now = self.clock()
        state = RecipientState(status, dsn, reason, relay, now, "")
        try:
            record_state(active.message, active.records, index, state)
        except TemporaryError as exc:
            self._trouble(active, exc)
            return
        rcpt = env.recipients[index]
        shown = RecipientStatus(
            rcpt.address, status, dsn, reason, relay, orig_address=rcpt.orig_address
        )
        attempt = active.message.state.attempts.get(index, 1)  # this one is counted
        event = delivery_event(env.queue_id, shown, attempt)
        log_event(self.log, process, delivery_line(env.queue_id, shown), event)
        self.observer.recorded(route.transport, route.nexthop, shown)

    def _trouble(self, active: ActiveMessage, exc: TemporaryError) -> None:
        """A verdict could not be written: logged once per message, which goes back to
        where it came from when its jobs end (its unwritten recipients stay pending)."""
        if not active.trouble:
            active.trouble = str(exc)
            self.log.warning(QMGR, f"{active.message.queue_id}: {exc}")

    # --- dispatch ---------------------------------------------------------------------
    def _window(self, key: DestKey) -> DestinationWindow:
        window = self._windows.get(key)
        if window is None:
            transport = key[0]
            window = DestinationWindow.start(
                self.params.transport_int(transport, "destination_concurrency_limit"),
                self.params.main.initial_destination_concurrency,
                self.params.transport_int(transport, "destination_concurrency_failed_cohort_limit"),
                self._feedback(transport, "positive"),
                self._feedback(transport, "negative"),
            )
            self._windows[key] = window
        return window

    def _feedback(self, transport: str, kind: str) -> Feedback:
        suffix = f"destination_concurrency_{kind}_feedback"
        return Feedback.parse(self.params.transport_str(transport, suffix))

    def revive_destinations(self) -> None:
        for window in self._windows.values():
            window.revive()

    def pump(self) -> None:
        """Start every job the windows and the process limit allow (inside `running()`)."""
        deliveries = self._deliveries
        if deliveries is None:
            raise RuntimeError("QueueManager.pump() outside QueueManager.running()")
        now = self.clock() if self._busy else 0.0
        for key, queue in list(self._queues.items()):
            if self._leave and key in self._leave:
                del self._queues[key]  # its messages stay active: run_once() puts them back
                continue
            if key in self._busy:
                if self._busy[key] > now:
                    continue  # at a fleet limit: _wake_busy() comes back to it
                del self._busy[key]
            window = self._window(key)
            if window.dead_reason:  # `window.dead`, without the property's call
                while queue:
                    self._suspend(queue.popleft(), window.dead_reason)
            while queue and window.can_start():
                if self.process_limit and len(self._running) >= self.process_limit:
                    return
                job = queue.popleft()
                window.begin()
                task = deliveries.create_task(self._run(key, job))
                self._running[task] = job
                task.add_done_callback(self._task_done)
            if not queue:
                del self._queues[key]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wakeup.set()  # drain() waits for this, whatever the task's end

    def _suspend(self, job: Job, reason: str) -> None:
        for i in job.indexes:
            text = f"delivery temporarily suspended: {reason}"
            deferred = DeliveryStatus.DEFERRED
            self._record(job.active, i, deferred, "4.4.1", text, "none", "qmgr", job.route)
        self._job_done(job)

    async def _run(self, key: DestKey, job: Job) -> None:
        window = self._windows[key]
        # The site-level failure the agent reports (status.HopStatus); a crash counts as one,
        # as Postfix's qmgr takes "unknown mail transport error" for a dead agent.
        hop_status: HopStatus | None = _AGENT_FAILED
        try:
            request = delivery_request(job)

            def on_status(index: int, status: RecipientStatus) -> None:
                crash_point("delivery-before-record")
                rcpt_index = request.recipients[index].queue_offset
                state = RecipientState(
                    status.status,
                    status.dsn,
                    status.diagnostic,
                    status.relay,
                    self.clock(),
                    status.action,
                )
                try:
                    record_state(job.active.message, job.active.records, rcpt_index, state)
                except TemporaryError as exc:  # never into the agent: it delivers on
                    self._trouble(job.active, exc)
                else:
                    job.recorded.add(rcpt_index)
                    observer.recorded(job.route.transport, job.route.nexthop, status)
                crash_point("delivery-after-record")

            observer = self.observer
            result = await self.deliverer.deliver(request, on_status=on_status)
            if result.counts:
                observer.counted(job.route.transport, result.counts)
            if result.busy is not None and len(job.recorded) < len(job.indexes):
                if result.fleet_unavailable and self._leave is not None:
                    self._leave_queued(key)
                else:
                    self._hold_busy(key, job, result.busy)
                return
            hop_status = result.hop_status
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a bad next hop must defer, never lose, mail
            self.log.warning(job.route.transport, f"{job.active.message.queue_id}: {exc}")
            for i in job.indexes:
                if i not in job.recorded:
                    reason = f"delivery failed: {exc}"
                    deferred = DeliveryStatus.DEFERRED
                    self._record(
                        job.active, i, deferred, "4.3.0", reason, "none", "qmgr", job.route
                    )
        # Postfix's qmgr: negative concurrency feedback, and in the end a suspended
        # destination, only from a hop status; a deferral of one recipient (RCPT 450), of
        # the message (MAIL or DATA 4xx) or a bounce is positive feedback.
        window.end(hop_status is None, hop_status.reason if hop_status else "")
        self._job_done(job)
        self.pump()
        # No wake-up here: `_task_done` gives it as this task ends, when drain() finds it
        # gone from `_running` (woken now, it would find it there and wait once more).

    def _hold_busy(self, key: DestKey, job: Job, delay: float) -> None:
        """The destination was at a fleet limit: the recipients not yet marked wait at the
        front of its queue for `delay` seconds; no record, no feedback (window.py)."""
        self._windows[key].active -= 1
        rest = Job(job.active, job.route, [i for i in job.indexes if i not in job.recorded])
        self._queues.setdefault(key, deque()).appendleft(rest)
        until = self.clock() + delay
        self._busy[key] = max(self._busy.get(key, 0.0), until)
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._busy_timer
        if timer is None or timer.cancelled() or timer.when() > when or timer.when() < loop.time():
            if timer is not None:
                timer.cancel()
            self._busy_timer = loop.call_at(when, self._wake_busy)
        self.pump()
        self._wakeup.set()

    def _leave_queued(self, key: DestKey) -> None:
        """run_once(), Redis away: the job (its message stays active, unfinished) and the
        destination's other jobs are left for the next run; no record, no feedback."""
        self._windows[key].active -= 1
        if self._leave is not None:
            self._leave.add(key)
        self.pump()
        self._wakeup.set()

    def _wake_busy(self) -> None:
        self._busy_timer = None
        if self._deliveries is not None:
            self.pump()
        self._wakeup.set()
        if self._busy:  # destinations held back longer: wake again for the next
            delay = max(0.0, min(self._busy.values()) - self.clock())
            self._busy_timer = asyncio.get_running_loop().call_later(delay, self._wake_busy)

    def _job_done(self, job: Job) -> None:
        job.active.jobs_left -= 1
        if job.active.jobs_left == 0:
            self._finish(job.active)

    def _forget(self, queue_id: str) -> ActiveMessage | None:
        """Take `queue_id` out of the active messages (and its content out of the count)."""
        active = self._active.pop(queue_id, None)
        if active is not None and active.message.content is not None:
            self._content_held -= len(active.message.content)
        return active

    def _finish(self, active: ActiveMessage) -> None:
        queue_id = active.message.queue_id
        self._forget(queue_id)
        try:
            if active.trouble:
                done = self.finisher.put_back(active.message, active.records)
            else:
                done = self.finisher.finish(active.message, active.records)
        finally:
            with contextlib.suppress(TemporaryError):  # already closed but after a bug
                active.records.close()
        if not done:
            self._hold_off(queue_id)
        self.progress.advance()

    # --- drivers ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The scope deliveries run in: `pump()` starts them as tasks of an
        `asyncio.TaskGroup` open only here, so none outlives it (`run_once()` and daemon.py's
        `serve()` end with none running; a bug in one ends the scope with it). Inside an
        open scope this opens none: cli.py's ``run --once`` keeps one open around a
        `run_once()` it may cancel, so that deliveries in flight keep their grace period
        (`stop()`). An error of the block itself is raised as it is, after the deliveries
        are cancelled."""
        if self._deliveries is not None:
            yield
            return
        failure: Exception | None = None
        try:
            async with asyncio.TaskGroup() as deliveries:
                self._deliveries = deliveries
                try:
                    yield
                except Exception as exc:  # not wrapped in an ExceptionGroup: see above
                    failure = exc
                    for task in self._running:
                        task.cancel()
        finally:
            self._deliveries = None
        if failure is not None:
            raise failure

    async def drain(self) -> None:
        """Run until no job is queued or running (inside `running()`). Waits on `_wakeup`,
        which every delivery task sets as it ends (`_task_done`): one wake-up per job, not
        a wait on every running task each time one ends."""
        self.pump()
        while self._running or self._queues:
            self._wakeup.clear()
            if self._running:
                if self._busy:
                    # A destination at a fleet limit comes back when its time is up.
                    await self.wait_activity(max(0.0, min(self._busy.values()) - self.clock()))
                    self.pump()
                else:
                    await self._wakeup.wait()
            else:
                self.pump()
                if not self._running:
                    if not self._busy:
                        break
                    # Only destinations at a fleet limit are left: wait for them.
                    await self.wait_activity(max(0.0, min(self._busy.values()) - self.clock()))

    async def run_once(self) -> int:
        """Deliver what is deliverable now (incoming, and deferred that is due), then
        return; notices made on the way are delivered too. Returns how many messages were
        left queued (back in incoming/, one log line) because the fleet's shared state
        server could not be asked for a destination with fleet limits."""
        self.recover()
        if self.progress is not NULL_PROGRESS:  # the total is worth a scan only when shown
            self.progress.grow(len(self._ready()))
        self._leave = set()
        try:
            async with self.running():
                while await self._activate_interleaved():
                    await self.drain()
            await self.spool.settle()
        finally:
            self._leave = None
        left = self._put_back_active()
        if left:
            plural = "message" if left == 1 else "messages"
            self.log.info(
                QMGR,
                f"{left} {plural} left in the queue for destinations with fleet limits: "
                "the shared state server cannot be reached",
            )
        return left

    async def _activate_interleaved(self, batch: int = 64) -> int:
        """`activate_ready`, starting deliveries after every `batch` messages (and letting
        them run), so a large queue starts going out while the rest is still being read."""
        count = 0
        for n, (queue, queue_id) in enumerate(self._ready(), 1):
            while self.full:
                self.pump()
                if not self._running:
                    return count  # nothing can make room: drain, then go on
                self._wakeup.clear()
                await self._wakeup.wait()
            count += await self.activate_async(queue, queue_id)
            if n % batch == 0:
                self.pump()
                await asyncio.sleep(0)
        return count

    async def wait_activity(self, timeout: float) -> None:
        """Wait until a job ends or new work is activated, or `timeout` seconds pass."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def stop(
        self, *, grace: float = STOP_GRACE, abandon: asyncio.Event | None = None
    ) -> None:
        """Stop on a signal: deliveries in flight get `grace` seconds to finish (less when
        `abandon` is set), the rest are abandoned (logged; recipients without a verdict
        stay unmarked); every active message, and queued work, goes back to incoming/."""
        for queue in self._queues.values():
            queue.clear()
        self._queues.clear()
        if self._running:
            count = len(self._running)
            self.log.info(
                QMGR,
                f"stopping: waiting up to {grace:g} seconds for {count} "
                f"deliver{'y' if count == 1 else 'ies'} in progress",
            )
            await wait_running(self._running, grace, abandon)
            await self._abandon()
        await self.spool.settle()
        self._put_back_active()

    def _put_back_active(self) -> int:
        """Every active message back to incoming/, its records kept; how many."""
        count = len(self._active)
        for queue_id, active in list(self._active.items()):
            self._forget(queue_id)
            try:
                active.records.close()
                self.spool.move(queue_id, "active", "incoming")
            except FileNotFoundError:
                pass
            except TemporaryError as exc:  # left in active/: the next run recovers it
                self.log.warning(QMGR, f"{queue_id}: {exc}")
        return count

    async def _abandon(self) -> None:
        """Cancel the deliveries still running, one log line each."""
        running = {task: job for task, job in self._running.items() if not task.done()}
        for job in running.values():
            left = len(job.indexes) - len(job.recorded)
            plural = "recipient stays" if left == 1 else "recipients stay"
            self.log.info(
                QMGR,
                f"{job.active.message.queue_id}: delivery to {job.route.name}:"
                f"{job.route.nexthop} abandoned on signal, {left} {plural} queued",
            )
        await cancel_tasks(running)
