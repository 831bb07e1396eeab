"""What the delivery agent carries through one request (`Job`, `Attempt`), and the settings
of one transport that every request reads (`TransportProfile`), looked up once.

A `TransportProfile` belongs to one `Settings` object (settings are immutable; a reload makes
a new one, and with it new profiles): everything the hot path asks of the configuration for
each request, such as soft_bounce, the delay logging resolution, the connection cache
destinations or whether to send XFORWARD, is read here once instead of by name each time.
Values whose reading opens tables (session options, the content plan) are made on first use,
so a broken table is reported at the same point of a delivery as before.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, BinaryIO

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.content.pipeline import ContentPlan, HeaderRewriter, plan_from_settings
from mailcarrier.content.stream import MessageFile, open_message_file
from mailcarrier.delivery.outcome import Leftover
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.servers import Destination, destinations
from mailcarrier.errors import UsageError
from mailcarrier.log import LogSink
from mailcarrier.status import Delays
from mailcarrier.transport.session import SessionOptions

if TYPE_CHECKING:
    from mailcarrier.delivery.generic import GenericMapper
    from mailcarrier.delivery.tls_step import TlsJob

__all__ = [
    "Attempt",
    "ContentFactory",
    "Job",
    "TransportProfile",
    "content_size",
    "open_content",
]

ContentFactory = Callable[[], Iterable[bytes]]

# Next hops whose destination list a profile remembers (a queue has a few hundred at most).
_MAX_NEXTHOPS = 4096


def _ignore(text: str) -> None:
    return None


# The fields of a ContentPlan that plan_from_settings() fills from the settings alone; with
# exactly these fields a plan is copied from its template by a plain constructor call.
_PLAN_FIELDS = frozenset(
    {
        "fileobj",
        "start",
        "length",
        "encoding",
        "line_length_limit",
        "disable_conversion",
        "limits",
        "checks",
        "rewrite_header",
    }
)


class TransportProfile:
    """The smtp_/lmtp_ settings of one transport that every request reads, read once."""

    __slots__ = (
        "_destinations",
        "_options",
        "_plan_direct",
        "_plan_template",
        "agent",
        "assume_final",
        "cache_destinations",
        "cache_on_demand",
        "dest_keys",
        "dummy_auth",
        "lmtp",
        "plaintext_label",
        "resolution",
        "sasl",
        "sender_dependent_auth",
        "settings",
        "smtputf8_enable",
        "soft_bounce",
        "transport",
        "use_chunking",
        "xforward",
    )

    def __init__(self, settings: Settings, transport: str) -> None:
        agent = settings.for_transport(transport)
        self.settings = settings
        self.agent = agent
        self.transport = agent.transport
        # The connection-reuse label of a plaintext session without SASL (reuse.py).
        self.plaintext_label = f"{agent.transport}|tls=none"
        self.lmtp = agent.is_lmtp
        self.soft_bounce = settings.params.soft_bounce
        self.resolution = settings.params.delay_logging_resolution_limit
        self.cache_on_demand = agent.params.connection_cache_on_demand
        self.cache_destinations = frozenset(
            d.lower() for d in agent.params.connection_cache_destinations
        )
        self.sasl = agent.params.sasl_auth_enable
        self.sender_dependent_auth = self.sasl and agent.params.sender_dependent_authentication
        self.dummy_auth = self.sasl and agent.params.send_dummy_mail_auth
        self.xforward = agent.params.send_xforward_command
        self.use_chunking = agent.params.use_chunking
        self.smtputf8_enable = settings.params.smtputf8_enable
        # Postfix smtp_rcpt_done(): an LMTP server's success is final delivery.
        self.assume_final = self.lmtp and settings.params.lmtp_assume_final
        self._options: SessionOptions | None = None
        # The content plan of these settings without a request's file, when it holds no
        # table (no header or body checks); False when it does.
        self._plan_template: ContentPlan | bool | None = None
        self._plan_direct = False
        self._destinations: dict[str, tuple[Destination, ...]] = {}
        # Connection-cache keys by destination, when they do not depend on the request
        # (reuse.py: without SASL).
        self.dest_keys: dict[str, str] = {}

    def session_options(self) -> SessionOptions:
        """SessionOptions.from_settings, made on first use (it opens smtp_reply_filter)."""
        options = self._options
        if options is None:
            options = self._options = SessionOptions.from_settings(self.agent)
        return options

    def content_plan(
        self,
        request: DeliveryRequest,
        content: BinaryIO | MessageFile,
        *,
        log: LogSink,
        rewrite_header: HeaderRewriter | None,
    ) -> ContentPlan:
        """plan_from_settings() for a request. Without header or body checks the plan is the
        same for every request but for the file and the request's own values, so it is made
        once and copied with those (tables, limits and flags are not looked up again)."""
        template = self._plan_template
        if template is None:
            probe = plan_from_settings(
                self.agent,
                io.BytesIO(),
                start=0,
                length=None,
                encoding="7bit",
                queue_id="",
                info=_ignore,
                warning=_ignore,
            )
            template = probe if probe.checks is None and probe.rewrite_header is None else False
            self._plan_template = template
            self._plan_direct = {f.name for f in fields(ContentPlan)} == _PLAN_FIELDS
        if isinstance(template, ContentPlan):
            if self._plan_direct:
                return ContentPlan(
                    fileobj=content,
                    start=request.content_offset,
                    length=request.size,
                    encoding=request.encoding,
                    line_length_limit=template.line_length_limit,
                    disable_conversion=template.disable_conversion,
                    limits=template.limits,
                    checks=None,
                    rewrite_header=rewrite_header,
                )
            return replace(
                template,
                fileobj=content,
                start=request.content_offset,
                length=request.size,
                encoding=request.encoding,
                rewrite_header=rewrite_header,
            )
        process = request.transport
        return plan_from_settings(
            self.agent,
            content,
            start=request.content_offset,
            length=request.size,
            encoding=request.encoding,
            queue_id=request.queue_id,
            info=lambda text: log.info(process, text),
            warning=lambda text: log.warning(process, text),
            rewrite_header=rewrite_header,
        )

    def remember_dest_key(self, destination: str, key: str) -> None:
        if len(self.dest_keys) >= _MAX_NEXTHOPS:
            self.dest_keys.clear()
        self.dest_keys[destination] = key

    def destinations(self, nexthop: str) -> tuple[Destination, ...]:
        """servers.destinations() of a next hop (with the fallback relays), kept."""
        found = self._destinations.get(nexthop)
        if found is None:
            found = tuple(destinations(nexthop, self.agent))
            if len(self._destinations) >= _MAX_NEXTHOPS:
                self._destinations.clear()
            self._destinations[nexthop] = found
        return found


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
class Job:
    """Everything about one request that the server loop passes around."""

    request: DeliveryRequest
    agent: AgentSettings
    options: SessionOptions
    tracker: RecipientTracker
    attempt: Attempt
    factory: ContentFactory
    size: int
    soft_bounce: bool
    profile: TransportProfile
    last: Leftover | None = None
    # Connection-cache key of the destination being tried ("" = do not cache).
    dest_key: str = ""
    # The destination (of the next hop list or the fallback relays) being tried.
    destination: str = ""
    plan: ContentPlan | None = None  # content transforms (content/pipeline.py)
    generic: GenericMapper | None = None  # smtp_generic_maps (generic.py)
    # Cached sessions this request took: one that could not serve it is not taken again
    # under another key (reuse.py).
    tried_sessions: set[object] = field(default_factory=set)
    # Makes the TLS state of the destination being tried (`tls`) when first asked for.
    _tls_maker: Callable[[], TlsJob] | None = None
    _tls_job: TlsJob | None = None

    @property
    def tls(self) -> TlsJob | None:
        """TLS policy state of the destination being tried; None without any."""
        tls = self._tls_job
        if tls is None and self._tls_maker is not None:
            tls = self._tls_job = self._tls_maker()
            self._tls_maker = None
        return tls

    @tls.setter
    def tls(self, value: TlsJob | None) -> None:
        self._tls_job = value
        self._tls_maker = None

    @property
    def tls_maker(self) -> Callable[[], TlsJob] | None:
        return self._tls_maker

    @tls_maker.setter
    def tls_maker(self, maker: Callable[[], TlsJob] | None) -> None:
        """A new destination: its TLS state will be made by `maker` when needed."""
        self._tls_job = None
        self._tls_maker = maker

    @property
    def has_tls(self) -> bool:
        """Whether the destination has TLS state (`tls is not None`, without making it)."""
        return self._tls_job is not None or self._tls_maker is not None

    @property
    def process(self) -> str:
        return self.request.transport


def open_content(request: DeliveryRequest) -> tuple[BinaryIO | MessageFile, bool]:
    """The content as a seekable file, and whether it was opened here (to be closed).

    A path is opened as a `MessageFile` (content/stream.py): read at offsets, with its
    first block read now (the whole of a small message)."""
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
        opened = open_message_file(src, start=request.content_offset, length=request.size)
    except OSError as exc:
        raise UsageError(f"cannot open message file {src}: {exc.strerror}") from exc
    return opened, True


def content_size(request: DeliveryRequest, content: BinaryIO | MessageFile) -> int:
    """The size of the message: the request's, else the file's from the content offset."""
    if request.size is not None:
        return request.size
    if isinstance(content, MessageFile):
        return content.size()
    try:
        return max(0, os.fstat(content.fileno()).st_size - request.content_offset)
    except (OSError, ValueError):
        pos = content.tell()
        end = content.seek(0, os.SEEK_END)
        content.seek(pos)
        return max(0, end - request.content_offset)
