"""smtp_generic_maps (lmtp_generic_maps): generic(5) output address rewriting in the client.

As Postfix's smtp(8) does (smtp_map11.c, smtp_misc.c, smtp_proto.c), the envelope sender and
recipients are rewritten as they go into MAIL FROM and RCPT TO, and the addresses in the
primary message headers that carry sender or recipient addresses (`GENERIC_HEADERS`, Postfix's
header_opts HDR_OPT_SENDER and HDR_OPT_RECIP headers) as the content streams by. The request is
never changed: recipients are logged and reported under their original address (to=<...>).

One lookup is mail_addr_map(3) over the tables: the key search order of generic(5)
(``user+ext@domain``, ``user@domain``, then ``user+ext`` and ``user`` only when the domain is
$myorigin, a $mydestination domain or a local interface address, then ``@domain``), keys in
external (quoted) form. A result ``@otherdomain`` keeps the original local part. When a key
without the address extension matched, the extension (with its recipient_delimiter
character) is put back into the result when propagate_unmatched_extensions lists
``generic``. A multi-valued result uses its first address, with Postfix's warning.

A table that cannot be opened or read, or a result that is not an address, is a lookup
problem: the transaction is not started (envelope) or the content is abandoned mid-DATA
(headers), and the recipients are deferred with 4.3.0, never bounced. With network tables
(pgsql:, ...) the envelope addresses and those of the primary header section are looked up
before the transaction by `prefetch` and `prefetch_header`, on the event loop without
blocking it; the answers are kept for the request (`for_request`: the mapper of a
transport lives as long as the agent, its answers only as long as one request, as a
Postfix table is asked again for every delivery). Neighbours: content/rfc822.py parses
header address lists; content/pipeline.py calls `header_rewriter()`'s hook; agent.py calls
`envelope()` for each transaction.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Final

from mailcarrier.config.settings import AgentSettings
from mailcarrier.content.mime import ContentError, HeaderClass
from mailcarrier.content.pipeline import ContentPlan, HeaderRewriter
from mailcarrier.content.rfc822 import (
    Address,
    Node,
    fold_header,
    parse_address_list,
    quote_local,
    split_address,
    unquote_local,
)
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.errors import MailcarrierError
from mailcarrier.protocol.address import address_problem
from mailcarrier.routing.local import is_local_domain, is_local_domain_async
from mailcarrier.status import DeliveryStatus
from mailcarrier.tables.base import TableError
from mailcarrier.tables.maps import Maps, Match
from mailcarrier.tables.search import split_extension
from mailcarrier.transport.records import Envelope

__all__ = [
    "GENERIC_HEADERS",
    "LOOKUP_ERRORS",
    "GenericLookupError",
    "GenericMapper",
    "data_error_verdict",
    "header_addresses",
]

# Postfix header_opts.c: the headers flagged HDR_OPT_SENDER or HDR_OPT_RECIP, which
# smtp_header_rewrite() maps (lower case).
GENERIC_HEADERS: Final = frozenset(
    {
        "apparently-to",
        "bcc",
        "cc",
        "disposition-notification-to",
        "errors-to",
        "from",
        "mail-followup-to",
        "reply-to",
        "resent-bcc",
        "resent-cc",
        "resent-from",
        "resent-reply-to",
        "resent-sender",
        "resent-to",
        "return-path",
        "return-receipt-to",
        "sender",
        "to",
    }
)

# What a table can raise while it is opened or asked: a missing or unusable file, an index
# that went bad under us.
LOOKUP_ERRORS: Final = (TableError, OSError, sqlite3.Error)


class GenericLookupError(MailcarrierError):
    """A generic map could not answer for `address` (Postfix: "map lookup problem")."""

    def __init__(self, name: str, address: str, detail: str) -> None:
        super().__init__(f"{name} map lookup problem for {address}: {detail}")
        self.address = address
        self.detail = detail


def data_error_verdict(namaddr: str) -> Verdict:
    """Postfix smtp_stream_except(SMTP_ERR_DATA): a local table failed mid-session."""
    return Verdict(DeliveryStatus.DEFERRED, "4.3.0", f"local data error while talking to {namaddr}")


class GenericMapper:
    """The generic maps of one transport. Tables open on first use (a failure to open is a
    lookup problem, reported for the address being mapped) and stay open."""

    def __init__(
        self,
        agent: AgentSettings,
        *,
        warning: Callable[[str], None],
        maps: Maps | None = None,
    ) -> None:
        self._header_done = False
        settings = agent.settings
        self.agent = agent
        self.name = agent.name("generic_maps")
        self.enabled = maps is not None or bool(agent.params.generic_maps)
        self.delimiters = settings.params.recipient_delimiter
        self.propagate = "generic" in {
            w.lower() for w in settings.params.propagate_unmatched_extensions
        }
        self.warning = warning
        self._maps = maps
        self._local: dict[str, bool] = {}
        # Answers found by `prefetch` (external-form address -> mapping or None).
        self._memo: dict[str, str | None] = {}

    def for_request(self) -> GenericMapper:
        """This mapper (its tables, its settings) with answers kept for one request."""
        mapper = copy.copy(self)
        mapper._memo = {}
        mapper._local = {}
        mapper._header_done = False
        return mapper

    # --- lookups ----------------------------------------------------------------------
    def _tables(self, address: str) -> Maps:
        if self._maps is None:
            try:
                self._maps = self.agent.open_maps("generic_maps")
            except LOOKUP_ERRORS as exc:
                raise GenericLookupError(self.name, address, str(exc)) from None
        return self._maps

    def _is_local(self, domain: str) -> bool:
        key = domain.lower()
        known = self._local.get(key)
        if known is None:
            known = self._local[key] = is_local_domain(self.agent.settings, key)
        return known

    async def _is_local_async(self, domain: str) -> bool:
        key = domain.lower()
        known = self._local.get(key)
        if known is None:
            known = self._local[key] = await is_local_domain_async(self.agent.settings, key)
        return known

    def map_external(self, address: str) -> str | None:
        """The mapping of an external-form address (None: no entry), as mail_addr_map(3)
        with smtp_map11_external(); raises `GenericLookupError`."""
        if not address:
            return None
        if address in self._memo:
            return self._memo[address]
        maps = self._tables(address)
        domain = split_address(address)[1][1:]
        try:
            local = self._is_local(domain) if domain else True
            found = maps.find_address(address, recipient_delimiter=self.delimiters, local=local)
        except LOOKUP_ERRORS as exc:
            raise GenericLookupError(self.name, address, str(exc)) from None
        finally:
            self._log_table_warnings(maps)
        return self._result(address, found)

    async def prefetch(self, addresses: Iterable[str]) -> None:
        """Look internal-form addresses up now, on the event loop without blocking it
        (network tables: pgsql:, ...); `map_internal` then finds the answers. A failure is
        left for the synchronous lookup to report."""
        await self._prefetch_external(quote_local(a) if a else "" for a in addresses)

    async def prefetch_header(self, plan: ContentPlan) -> None:
        """Look up, as `prefetch` does, the addresses of the primary header section that
        `rewrite_header` will map (once per request)."""
        if not self.enabled or self._header_done:
            return
        self._header_done = True
        try:
            if not self._tables("").network:
                return
            head = plan.header_section(self.agent.settings.params.header_size_limit)
        except (GenericLookupError, *LOOKUP_ERRORS, MailcarrierError):
            return  # reported when the content is sent
        await self._prefetch_external(header_addresses(head))

    async def _prefetch_external(self, addresses: Iterable[str]) -> None:
        if not self.enabled:
            return
        for address in addresses:
            if not address or address in self._memo:
                continue
            try:
                maps = self._tables(address)
                if not maps.network:
                    return  # file tables answer at once: nothing to gain
                domain = split_address(address)[1][1:]
                local = await self._is_local_async(domain) if domain else True
                found = await maps.find_address_async(
                    address, recipient_delimiter=self.delimiters, local=local
                )
                self._log_table_warnings(maps)
                self._memo[address] = self._result(address, found)
            except (GenericLookupError, *LOOKUP_ERRORS):
                continue

    def _log_table_warnings(self, maps: Maps) -> None:
        if maps.network:
            for warning in maps.take_warnings():
                self.warning(warning)

    def _result(self, address: str, found: Match | None) -> str | None:
        if found is None:
            return None
        local_part = split_address(address)[0]
        # The unmatched extension, with its delimiter (Postfix strip_addr()).
        extension = ""
        if found.extension:
            user, _ = split_extension(local_part, self.delimiters)
            extension = local_part[len(user) :]
        value = found.value.strip()
        if value.startswith("@"):
            # The original user in another domain (the unmatched extension left out; it
            # is put back below when propagation is on).
            base = local_part[: len(local_part) - len(extension)] if extension else local_part
            value = base + value
        results = [a.text for a in _addresses(parse_address_list(value))]
        if not results:
            self.warning(
                f'{self.name} lookup of {address} returns non-address result "{found.value}"'
            )
            raise GenericLookupError(self.name, address, "non-address result")
        if len(results) > 1:
            self.warning(f"multi-valued {self.name} result for {address}")
        result = results[0]
        if extension and self.propagate:
            result = _add_extension(result, extension)
        return result

    def map_internal(self, address: str) -> str:
        """An internal-form (envelope) address, rewritten or as it was; "" stays ""."""
        if not address:
            return address
        mapped = self.map_external(quote_local(address))
        if mapped is None:
            return address
        internal = unquote_local(mapped)
        problem = address_problem(internal)
        if problem is not None:
            # Never into MAIL or RCPT: a table entry must not be able to add parameters.
            self.warning(f'{self.name} lookup of {address} returns bad address "{mapped}"')
            raise GenericLookupError(self.name, address, f"result {problem}")
        return internal

    # --- envelope ---------------------------------------------------------------------
    def envelope(self, envelope: Envelope, namaddr: str, queue_id: str = "") -> Envelope | Verdict:
        """The envelope with sender and recipients mapped, or the 4.3.0 verdict of a lookup
        problem (logged as a warning). Recipients keep their index: results and logs name
        the original address."""
        try:
            sender = self.map_internal(envelope.sender)
            recipients = tuple(
                replace(r, address=self.map_internal(r.address)) for r in envelope.recipients
            )
        except GenericLookupError as exc:
            self.warning(f"{queue_id}: {exc}" if queue_id else str(exc))
            return data_error_verdict(namaddr)
        return replace(envelope, sender=sender, recipients=recipients)

    # --- headers ----------------------------------------------------------------------
    def header_rewriter(self, queue_id: str = "") -> HeaderRewriter:
        """The content/pipeline.py hook: maps the addresses of one primary header."""

        def rewrite(cls: HeaderClass, text: bytes) -> Iterable[bytes]:
            if cls is not HeaderClass.PRIMARY:
                return text.split(b"\n")
            try:
                return self.rewrite_header(text)
            except GenericLookupError as exc:
                self.warning(f"{queue_id}: {exc}" if queue_id else str(exc))
                # Mid-DATA the only way out is to drop the connection (Postfix: vstream
                # longjmp with SMTP_ERR_DATA); the recipients are deferred, not bounced.
                raise ContentError(
                    "4.3.0", f"local data error while sending message content: {exc}"
                ) from None

        return rewrite

    def rewrite_header(self, text: bytes) -> list[bytes]:
        """One logical header (folded lines joined by LF) as the lines to send: unchanged
        unless an address in it was found in the maps (then rebuilt as Postfix does)."""
        unchanged = text.split(b"\n")
        name, colon, value = text.partition(b":")
        if not colon or name.strip().lower().decode("latin-1") not in GENERIC_HEADERS:
            return unchanged
        nodes = parse_address_list(value.decode("utf-8", "surrogateescape"))
        rewritten = False
        out: list[Node] = []
        for node in nodes:
            if isinstance(node, Address):
                mapped = self.map_external(node.text)
                if mapped is not None:
                    node = Address(mapped)
                    rewritten = True
            out.append(node)
        if not rewritten:
            return unchanged
        label = name.rstrip(b" \t").decode("utf-8", "surrogateescape")
        return [line.encode("utf-8", "surrogateescape") for line in fold_header(label, out)]


def header_addresses(header: bytes) -> list[str]:
    """The external-form addresses in the `GENERIC_HEADERS` of a raw header section, as
    `rewrite_header` meets them (one logical header: its folded lines joined by LF)."""
    logical: list[bytes] = []
    for line in header.split(b"\n"):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1] += b"\n" + line
        elif line:
            logical.append(line)
    out: list[str] = []
    for text in logical:
        name, colon, value = text.partition(b":")
        if colon and name.strip().lower().decode("latin-1") in GENERIC_HEADERS:
            nodes = parse_address_list(value.decode("utf-8", "surrogateescape"))
            out.extend(a.text for a in _addresses(nodes))
    return out


def _addresses(nodes: list[Node]) -> list[Address]:
    return [n for n in nodes if isinstance(n, Address)]


def _add_extension(address: str, extension: str) -> str:
    """``user@domain`` + ``+ext`` -> ``user+ext@domain`` (mail_addr_crunch(3)), in external
    form: the extension goes into the unquoted local part, which is then quoted again."""
    internal = unquote_local(address)
    at = internal.rfind("@")
    if at < 0:
        return quote_local(internal + extension)
    return quote_local(internal[:at] + extension + internal[at:])
