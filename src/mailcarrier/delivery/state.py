"""One delivery request, as it goes from server to server: `DeliveryState` (Postfix's
SMTP_STATE), its timing (`Attempt`), and the request's content opened for reading.

The state carries what lives as long as the request: the request itself, the recipient
tracker (each recipient marked exactly once, recipients.py), the timing of the delays= field,
the content plan and its size, the smtp_generic_maps mapper, the last failure that recipients
not yet marked would be deferred or bounced with (`last`, a `Leftover`), and the cached
sessions this request already took. Its two pieces of bookkeeping are `site_failed()` (a
server failed: remember why, and log it when another server follows) and `mark_pending()`
(every recipient still pending gets one verdict). What lives per next hop is hop.py's; per
connection, transport/session.py's; per transport, profile.py's.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO

from mailcarrier.config.settings import AgentSettings
from mailcarrier.content.pipeline import ContentPlan
from mailcarrier.content.stream import MessageFile, open_message_file
from mailcarrier.delivery.generic import GenericMapper
from mailcarrier.delivery.outcome import Leftover
from mailcarrier.delivery.profile import TransportProfile
from mailcarrier.delivery.quirks import Answers
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.tally import Tally
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.errors import UsageError
from mailcarrier.fleet import Busy, FleetGate
from mailcarrier.log import LogSink
from mailcarrier.sasl.passwords import PasswordMatch
from mailcarrier.status import Delays
from mailcarrier.transport.options import SessionOptions

__all__ = ["Attempt", "ContentFactory", "DeliveryState", "content_size", "open_content"]

ContentFactory = Callable[[], Iterable[bytes]]


class Attempt:
    """Timing for the delays= field of the recipients marked during one request."""

    __slots__ = ("before_qmgr", "in_qmgr", "ready", "start")

    def __init__(self, request: DeliveryRequest, start: float, wall: float) -> None:
        if request.qmgr_time:
            self.before_qmgr = max(0.0, request.qmgr_time - request.arrival_time)
            self.in_qmgr = max(0.0, wall - request.qmgr_time)
        else:
            self.before_qmgr = 0.0
            self.in_qmgr = max(0.0, wall - request.arrival_time)
        self.start = start
        self.ready: float | None = None

    def delays(self, now: float) -> Delays:
        if self.ready is None:
            return Delays(self.before_qmgr, self.in_qmgr, now - self.start, 0.0)
        return Delays(self.before_qmgr, self.in_qmgr, self.ready - self.start, now - self.ready)


@dataclass(slots=True)
class DeliveryState:
    """Everything about one request that lives until its last recipient is marked."""

    request: DeliveryRequest
    profile: TransportProfile
    tracker: RecipientTracker
    attempt: Attempt
    factory: ContentFactory
    size: int
    plan: ContentPlan | None = None  # content transforms (content/pipeline.py)
    generic: GenericMapper | None = None  # smtp_generic_maps (generic.py)
    last: Leftover | None = None
    # Cached sessions this request took: one that could not serve it is not taken again
    # under another key (reuse.py).
    tried_sessions: set[object] = field(default_factory=set)
    # SASL credentials looked up for (server host name, destination) (auth_step.py).
    sasl_credentials: dict[tuple[str, str], PasswordMatch | None] = field(default_factory=dict)
    # What network tables said about the servers' addresses (quirks.py `prefetch`).
    quirk_answers: Answers = field(default_factory=dict)
    # Fleet mode (fleet/gate.py): the gate asked before each connection and each message;
    # `busy` when it said "at the fleet limit" (the rest of the request waits in the queue,
    # unmarked); `fleet_dead` when another node found the destination not responding.
    fleet: FleetGate | None = None
    busy: Busy | None = None
    fleet_dead: bool = False
    # The agent's counts for the metrics (tally.py): connections, TLS, DANE, MTA-STS, fleet.
    tally: Tally = field(default_factory=Tally)
    # Read for every transaction: kept as plain fields (the profile's values).
    agent: AgentSettings = field(init=False)
    options: SessionOptions = field(init=False)
    soft_bounce: bool = field(init=False)

    def __post_init__(self) -> None:
        self.agent = self.profile.agent
        self.options = self.profile.session_options()
        self.soft_bounce = self.profile.settings.params.soft_bounce

    @property
    def process(self) -> str:
        return self.request.transport

    def site_failed(self, leftover: Leftover, final: bool, log: LogSink) -> None:
        """A server failed the recipients still pending: remember why (the next server
        may still take them); Postfix logs a non-final server's failure as it moves on."""
        self.last = leftover
        if not final:
            log.info(self.process, f"{self.request.queue_id}: {leftover.verdict.diagnostic}")

    def mark_pending(self, verdict: Verdict, relay: str, now: float, conn_use: int = 0) -> None:
        """Mark every recipient still pending; `conn_use` 0 when no connection was reached."""
        tracker = self.tracker
        delays = self.attempt.delays(now)
        for i in tracker.pending():
            tracker.mark(i, verdict, relay=relay, delays=delays, conn_use=conn_use)


def open_content(request: DeliveryRequest) -> tuple[BinaryIO | MessageFile, bool]:
    """The content as a seekable file, and whether it was opened here (to be closed).

    A path is opened as a `MessageFile` (content/stream.py): read at offsets, with its
    first block read now (the whole of a small message); the request's `content_bytes` make
    one that is that block, whole, without opening anything. An address probe sends no
    content: its own is neither opened nor read (an empty stream stands in for it)."""
    if request.probe:
        return io.BytesIO(), False
    if request.content_bytes is not None:  # read already: the whole content, no descriptor
        start, length = request.content_offset, request.content_length
        return MessageFile(-1, request.content_bytes, start, length, eof=True), False
    src = request.content
    if not isinstance(src, (str, PurePath)) and not isinstance(src, os.PathLike):
        if src.seekable():
            return src, False
        # A pipe can be read once; a second server needs it again: spool it to disk.
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
        try:
            while block := src.read(65536):
                spool.write(block)
            spool.flush()
        except BaseException:
            spool.close()
            raise
        return spool, True
    try:
        opened = open_message_file(src, start=request.content_offset, length=request.content_length)
    except OSError as exc:
        raise UsageError(f"cannot open message file {src}: {exc.strerror}") from exc
    return opened, True


def content_size(request: DeliveryRequest, content: BinaryIO | MessageFile) -> int:
    """The size of the message: the request's, else the file's from the content offset
    (an address probe's, when the request gives none: 0, its content is not looked at)."""
    if request.size is not None:
        return request.size
    if request.probe:
        return 0
    if isinstance(content, MessageFile):
        return content.size()
    try:
        return max(0, os.fstat(content.fileno()).st_size - request.content_offset)
    except (OSError, ValueError):
        pos = content.tell()
        end = content.seek(0, os.SEEK_END)
        content.seek(pos)
        return max(0, end - request.content_offset)
