"""One delivery transport of one configuration (`TransportProfile`): the values every request
derives from the smtp_ (or lmtp_) parameters, and the tools built from them, made once.

A profile belongs to one `Settings` object (settings are immutable; a reload makes a new
agent, and with it new profiles). It holds what is derived rather than read: the connection
reuse labels, the content plan without a request's file, the destinations of a next
hop, and the transport's tables and helpers, each made on first use so that a broken table is
reported at the same point of a delivery as before: the session options (smtp_reply_filter),
the server quirks (discarded EHLO keywords, PIX), smtp_generic_maps, the delivery status
filter and the server finder (routing/). The tables of SASL passwords and TLS policies are
opened when the profile is made, as smtp(8) opens them when it starts (pre_init): a network
table (pgsql:, ...) loads its driver and reads its configuration file once, not on the first
delivery; a table that cannot be opened is left to report itself where it is used. Plain
parameters are read from `params` (the typed view, config/views.py). Neighbours: state.py
(per request), hop.py (per next hop), agent.py.
"""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Callable
from dataclasses import fields, replace
from typing import BinaryIO

from mailcarrier.config.settings import Settings
from mailcarrier.config.views import ClientMapsName
from mailcarrier.content.pipeline import ContentPlan, HeaderRewriter, plan_from_settings
from mailcarrier.content.stream import MessageFile
from mailcarrier.delivery.generic import GenericMapper
from mailcarrier.delivery.quirks import ServerQuirks
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.servers import Destination, ServerFinder, destinations
from mailcarrier.delivery.status_filter import StatusFilter
from mailcarrier.delivery.tally import Tally
from mailcarrier.errors import ConfigError
from mailcarrier.log import LogSink
from mailcarrier.routing.resolver import NativeLookup, Resolver
from mailcarrier.tables.base import TableError
from mailcarrier.tables.maps import Maps
from mailcarrier.transport.options import SessionOptions

__all__ = ["TransportProfile"]

# Next hops whose destination list (and cache key) a profile remembers: a queue has a few
# hundred at most; past this the memory is dropped and made again.
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
        "on_broken_line",
    }
)


class TransportProfile:
    """The smtp_/lmtp_ configuration of one transport that every request uses, made once."""

    __slots__ = (
        "_destinations",
        "_finder",
        "_generic",
        "_options",
        "_plan_direct",
        "_plan_template",
        "_quirks",
        "_status_maps",
        "agent",
        "assume_final",
        "cache_destinations",
        "dummy_auth",
        "label",
        "lmtp",
        "log",
        "native",
        "params",
        "plaintext_label",
        "probe_data",
        "resolver",
        "rng",
        "send_xforward",
        "sender_dependent_auth",
        "settings",
        "smtputf8_enable",
        "tally",
        "transport",
        "use_chunking",
    )

    def __init__(
        self,
        settings: Settings,
        transport: str,
        *,
        log: LogSink,
        resolver: Resolver | None = None,
        native: NativeLookup | None = None,
        rng: random.Random | None = None,
        tally: Tally | None = None,
    ) -> None:
        agent = settings.for_transport(transport)
        p = agent.params
        self.settings = settings
        self.agent = agent
        self.params = p
        self.transport = agent.transport
        # What connection-cache keys start with: the master.cf service, else the transport
        # (Postfix's smtp_key.c puts the service name first: sessions of services with
        # other settings are never shared).
        self.label = agent.label
        self.log = log
        self.resolver = resolver
        self.native = native
        self.rng = rng
        self.tally = tally  # the agent's counts (tally.py): its DNS questions
        self.lmtp = agent.is_lmtp
        # The connection-reuse label of a plaintext session without SASL (reuse.py).
        self.plaintext_label = f"{agent.label}|tls=none"
        self.cache_destinations = frozenset(d.lower() for d in p.connection_cache_destinations)
        self.sender_dependent_auth = p.sasl_auth_enable and p.sender_dependent_authentication
        self.dummy_auth = p.sasl_auth_enable and p.send_dummy_mail_auth
        # What every transaction's envelope and content read (transaction.py).
        self.send_xforward = p.send_xforward_command
        self.smtputf8_enable = settings.params.smtputf8_enable
        self.probe_data = p.address_verify_target == "data"
        self.use_chunking = p.use_chunking
        # Postfix smtp_rcpt_done(): an LMTP server's success is final delivery.
        self.assume_final = self.lmtp and settings.params.lmtp_assume_final
        self._options: SessionOptions | None = None
        # The content plan of these settings without a request's file, when it holds no
        # table (no header or body checks); False when it does.
        self._plan_template: ContentPlan | bool | None = None
        self._plan_direct = False
        self.open_tables()
        self._destinations: dict[str, tuple[Destination, ...]] = {}
        self._quirks: ServerQuirks | None = None
        self._generic: GenericMapper | bool | None = None  # False: no smtp_generic_maps
        self._status_maps: Maps | bool | None = None  # False: no status filter
        self._finder: ServerFinder | None = None

    def open_tables(self) -> None:
        """Open the transport's SASL password and TLS policy tables now (smtp(8) pre_init);
        a table that cannot be opened is reported by the step that uses it."""
        agent = self.agent
        names: list[ClientMapsName] = ["tls_policy_maps", "tls_per_site"]
        if self.params.sasl_auth_enable:
            names.append("sasl_password_maps")
        for name in names:
            with contextlib.suppress(TableError, ConfigError):
                agent.open_maps(name)

    # --- the transport's tools, made on first use -------------------------------------
    def session_options(self) -> SessionOptions:
        """SessionOptions.from_settings, made on first use (it opens smtp_reply_filter)."""
        options = self._options
        if options is None:
            options = self._options = SessionOptions.from_settings(self.agent)
        return options

    def quirks(self) -> ServerQuirks:
        """Tables keyed by server address: discarded EHLO keywords, PIX (quirks.py)."""
        if self._quirks is None:
            process, log = self.transport, self.log
            self._quirks = ServerQuirks(
                self.agent,
                info=lambda text: log.info(process, text),
                warning=lambda text: log.warning(process, text),
            )
        return self._quirks

    def generic(self) -> GenericMapper | None:
        """smtp_generic_maps (generic.py); None when it is empty."""
        if self._generic is None:
            process, log = self.transport, self.log
            mapper = GenericMapper(self.agent, warning=lambda text: log.warning(process, text))
            self._generic = mapper if mapper.enabled else False
        return self._generic if isinstance(self._generic, GenericMapper) else None

    def status_filter(self) -> StatusFilter | None:
        """smtp_delivery_status_filter (lmtp_ for LMTP); None when it is empty."""
        if self._status_maps is None:
            opened = self.agent.open_maps("delivery_status_filter")
            self._status_maps = opened if opened else False
        if self._status_maps is False:
            return None
        assert isinstance(self._status_maps, Maps)
        process, log = self.transport, self.log
        name = self.agent.name("delivery_status_filter")
        return StatusFilter(self._status_maps, name, lambda text: log.warning(process, text))

    def finder(self) -> ServerFinder:
        """Looks destinations up (servers.py); made when a request first needs DNS."""
        if self._finder is None:
            self._finder = ServerFinder(
                self.settings,
                self.agent,
                resolver=self.resolver,
                native=self.native,
                rng=self.rng,
                tally=self.tally,
            )
        return self._finder

    # --- per next hop -----------------------------------------------------------------
    def destinations(self, nexthop: str) -> tuple[Destination, ...]:
        """servers.destinations() of a next hop (with the fallback relays), kept."""
        found = self._destinations.get(nexthop)
        if found is None:
            found = tuple(destinations(nexthop, self.agent))
            if len(self._destinations) >= _MAX_NEXTHOPS:
                self._destinations.clear()
            self._destinations[nexthop] = found
        return found

    # --- per request ------------------------------------------------------------------
    def content_plan(
        self,
        request: DeliveryRequest,
        content: BinaryIO | MessageFile,
        *,
        rewrite_header: HeaderRewriter | None,
    ) -> ContentPlan:
        """plan_from_settings() for a request. Without header or body checks the plan is the
        same for every request but for the file and the request's own values, so it is made
        once and copied with those (tables, limits and flags are not looked up again)."""
        template = self._plan_template
        if template is None:
            template = self._plan_template = self._make_template()
        if isinstance(template, ContentPlan):
            limit = template.line_length_limit
            if self._plan_direct:
                return ContentPlan(
                    fileobj=content,
                    start=request.content_offset,
                    length=request.content_length,
                    encoding=request.encoding,
                    line_length_limit=limit,
                    disable_conversion=template.disable_conversion,
                    limits=template.limits,
                    checks=None,
                    rewrite_header=rewrite_header,
                    on_broken_line=self._line_breaking(request, limit),
                )
            return replace(
                template,
                fileobj=content,
                start=request.content_offset,
                length=request.content_length,
                encoding=request.encoding,
                rewrite_header=rewrite_header,
                on_broken_line=self._line_breaking(request, limit),
            )
        process, log = request.transport, self.log
        plan = plan_from_settings(
            self.agent,
            content,
            start=request.content_offset,
            length=request.content_length,
            encoding=request.encoding,
            queue_id=request.queue_id,
            info=lambda text: log.info(process, text),
            warning=lambda text: log.warning(process, text),
            rewrite_header=rewrite_header,
        )
        return replace(plan, on_broken_line=self._line_breaking(request, plan.line_length_limit))

    def _line_breaking(self, request: DeliveryRequest, limit: int) -> Callable[[], None]:
        """smtp(8)'s note that it broke a line longer than smtp_line_length_limit, logged
        once per request (smtp_text_out())."""
        told = False

        def tell() -> None:
            nonlocal told
            if not told:
                told = True
                self.log.info(
                    request.transport,
                    f"{request.queue_id}: breaking line > {limit} bytes with <CR><LF>SPACE",
                )

        return tell

    def _make_template(self) -> ContentPlan | bool:
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
        self._plan_direct = {f.name for f in fields(ContentPlan)} == _PLAN_FIELDS
        return probe if probe.checks is None and probe.rewrite_header is None else False
