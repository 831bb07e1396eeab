"""The delivery request: what one agent run is asked to deliver (Postfix's DELIVER_REQUEST).

A request names a transport (smtp or lmtp; `service`, a master.cf service of that kind whose
settings apply), a next hop in the manual's destination syntax, an
envelope sender (``""`` is the null sender ``<>``), recipients, and where the content is: a path
(optionally a byte range inside a queue file) or an open binary stream, and the content's
bytes themselves when the caller has read them already (`content_bytes`: the queue's small
messages, the file not opened again). The content is never required to fit in memory, and
an address probe (`probe`, Postfix's trace-only request) never opens it. `Deliverer` is the
protocol of what delivers one (the agent, or a pool of agent processes;
`takes_content_bytes` says which wants `content_bytes`). Validation here refuses envelope
values that could inject commands or parameters: addresses must be addresses
(protocol/address.py), other values free of CR, LF and NUL. `queued_request` and
`queued_recipient` make the queue's requests with the same checks in less time (their
slots set in C). `Notify` (DSN NOTIFY) lives in notify.py, which the queue's submission
imports without this module.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from itertools import repeat
from operator import call
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from mailcarrier.errors import AddressError, UsageError
from mailcarrier.notify import Notify
from mailcarrier.protocol.address import address_problem
from mailcarrier.status import DeliveryResult, RecipientStatus, fast_init


def _has_line_break(value: str) -> bool:
    return "\r" in value or "\n" in value or "\0" in value


def check_envelope_text(what: str, value: str) -> None:
    """Refuse CR, LF and NUL in envelope values before anything reaches the wire."""
    if _has_line_break(value):
        raise UsageError(f"{what} contains CR, LF or NUL: {value!r}")


# The same senders and recipients come with request after request (a queue's, an
# application's): each address is judged once. Bounded.
_address_problem = functools.lru_cache(maxsize=4096)(address_problem)


def check_envelope_address(what: str, address: str, *, null_ok: bool = False) -> None:
    """Refuse what is not an envelope address (protocol/address.py): CR, LF or NUL as
    `check_envelope_text` does, anything else as `AddressError`, before connecting."""
    problem = _address_problem(address, null_ok=null_ok)
    if problem is not None:
        check_envelope_text(what, address)
        raise AddressError(f"bad {what} syntax: {address!r} {problem}")


@fast_init
@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    orig_address: str = ""
    dsn_orcpt: str = ""  # RFC 3461 ORCPT as "addr-type;address" (xtext-decoded)
    dsn_notify: Notify = Notify.NONE
    # Opaque position of this recipient in its queue file; the queue uses it to mark
    # the recipient done. -1 when the request does not come from the queue.
    queue_offset: int = -1
    # Which delivery attempt this is for the recipient (1: the first), for the event
    # record of its verdict (events.py); the queue counts its recorded verdicts.
    attempt: int = 1

    def __post_init__(self) -> None:
        check_envelope_address("recipient address", self.address)
        # One scan of all the values; each is looked at alone only to say which one is bad.
        if _has_line_break(self.orig_address + self.dsn_orcpt):
            check_envelope_text("original recipient", self.orig_address)
            check_envelope_text("ORCPT", self.dsn_orcpt)


@fast_init
@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    queue_id: str
    nexthop: str
    sender: str
    recipients: tuple[Recipient, ...]
    content: Path | str | BinaryIO  # a path (as a Path or its text), or an open stream
    transport: str = "smtp"
    # Bytes of content; None = measure it (file size, or unknown for a stream).
    size: int | None = None
    # Byte range of the message inside `content` (a queue file holds envelope and content).
    content_offset: int = 0
    # "7bit": no 8-bit byte in the content (no BODY=, never converted); "8bit": BODY=8BITMIME,
    # converted to 7bit MIME for a server without 8BITMIME; "": nobody declared it (Postfix's
    # MAIL_ATTR_ENC_NONE, what qmgr(8) sends for most mail): no BODY=, but it may hold 8-bit
    # bytes, so it is converted like "8bit" for a server without 8BITMIME.
    encoding: str = "7bit"
    smtputf8: bool = False
    dsn_envid: str = ""
    dsn_ret: str = ""  # "" | "FULL" | "HDRS"
    arrival_time: float = field(default_factory=time.time)
    # Time the request entered the queue manager (for the delays= split); 0 = arrival_time.
    qmgr_time: float = 0.0
    # The original client, as Postfix's DELIVER_REQUEST carries it, for XFORWARD
    # (smtp_send_xforward_command); "" = unknown. `log_ident` is the queue ID the message had
    # when it was received ("" = `queue_id`); `rewrite_context` is "local" or "remote".
    client_name: str = ""
    client_addr: str = ""
    client_port: str = ""
    client_proto: str = ""
    client_helo: str = ""
    log_ident: str = ""
    rewrite_context: str = ""
    # Whether `size` is the content's exact length (read that many bytes from
    # `content_offset`), or only what MAIL FROM announces as SIZE= and the server's limit is
    # checked against, the content ending by itself: the `size` of Postfix's DELIVER_REQUEST
    # counts queue-file record bytes, not content bytes.
    size_exact: bool = True
    # Address probe: MAIL and RCPT only, no content (Postfix's trace-only request: a
    # verify(8) probe, DEL_REQ_FLAG_MTA_VRFY, or ``sendmail -bv``, DEL_REQ_FLAG_USR_VRFY).
    # Each recipient's verdict is its RCPT reply; the transaction ends with RSET, never
    # DATA or BDAT, and `content` is neither opened nor read (`size` still gives SIZE=).
    probe: bool = False
    # RFC 8689: the sender asked for REQUIRETLS (MAIL FROM ... REQUIRETLS, Postfix's
    # SOPT_REQUIRETLS_ESMTP): delivered only as smtp_requiretls_policy enforces it. And the
    # message has a "TLS-Required: No" header (SOPT_REQUIRETLS_HEADER): the sender asks that
    # TLS policies not stand in the way (tls_required_enable); REQUIRETLS wins over it.
    requiretls: bool = False
    tls_required_no: bool = False
    # The master.cf service (a named transport, config/mastercf.py) whose settings deliver
    # it: main.cf's plus the service's -o overrides; "" = main.cf's, for `transport`.
    service: str = ""
    # The content itself, when whoever made the request holds it in memory already (the
    # queue's first read of a small queue file has it whole): exactly the `size` bytes at
    # `content_offset` of `content`, which is then not opened (it still names the file).
    # None: the content is read from `content`.
    content_bytes: bytes | None = None

    @property
    def content_length(self) -> int | None:
        """Bytes of `content` to send from `content_offset`; None: up to its end."""
        return self.size if self.size_exact else None

    def __post_init__(self) -> None:
        if self.transport not in ("smtp", "lmtp"):
            raise UsageError(f'unknown transport "{self.transport}" (want smtp or lmtp)')
        if not self.nexthop:
            raise UsageError("empty next-hop destination")
        if not self.recipients:
            raise UsageError("a delivery request needs at least one recipient")
        if self.encoding not in ("7bit", "8bit", ""):
            raise UsageError(f'bad body encoding "{self.encoding}" (want 7bit, 8bit or "")')
        if self.dsn_ret not in ("", "FULL", "HDRS"):
            raise UsageError(f'bad RET value "{self.dsn_ret}" (want FULL or HDRS)')
        # One scan of all the values; each is looked at alone only to say which one is bad.
        if _has_line_break(
            "".join(
                (
                    self.sender,
                    self.nexthop,
                    self.dsn_envid,
                    self.queue_id,
                    self.client_name,
                    self.client_addr,
                    self.client_port,
                    self.client_proto,
                    self.client_helo,
                    self.log_ident,
                )
            )
        ):
            check_envelope_text("sender address", self.sender)
            check_envelope_text("next-hop destination", self.nexthop)
            check_envelope_text("ENVID", self.dsn_envid)
            check_envelope_text("queue ID", self.queue_id)
            for what in ("name", "addr", "port", "proto", "helo"):
                check_envelope_text(f"client {what}", getattr(self, f"client_{what}"))
            check_envelope_text("log ident", self.log_ident)
        check_envelope_address("sender address", self.sender, null_ok=True)
        if self.content_bytes is not None and (
            not self.size_exact or len(self.content_bytes) != self.size
        ):
            raise UsageError("content_bytes must be the content's `size` bytes exactly")
        if self.rewrite_context not in ("", "local", "remote"):
            raise UsageError(f'bad rewrite context "{self.rewrite_context}" (want local or remote)')


_T = TypeVar("_T")
_drain: Callable[[Iterable[object]], object] = functools.partial(deque, maxlen=0)


def _maker(cls: type[_T]) -> Callable[[Sequence[object]], _T]:
    """What makes an instance of the slotted dataclass `cls` of the values of all its
    fields, in their order, without its `__init__`: each slot's own setter (what the
    `__init__` calls, one Python call a field) runs in one pass of C code, map() over
    the setters drained by a zero-length deque. The caller runs `__post_init__`."""
    setters = tuple(cls.__dict__[f.name].__set__ for f in fields(cls))  # type: ignore[arg-type]
    new = object.__new__

    def make(values: Sequence[object]) -> _T:
        made: _T = new(cls)
        _drain(map(call, setters, repeat(made), values))
        return made

    return make


_make_recipient = _maker(Recipient)
_make_request = _maker(DeliveryRequest)


def queued_recipient(
    address: str,
    orig_address: str,
    dsn_orcpt: str,
    dsn_notify: Notify,
    queue_offset: int,
    attempt: int,
) -> Recipient:
    """`Recipient(address, orig_address, dsn_orcpt, dsn_notify, queue_offset, attempt)`,
    checked as it checks, made in less time: the queue makes one per recipient and job
    (tests/delivery/test_request.py holds the two together)."""
    made = _make_recipient((address, orig_address, dsn_orcpt, dsn_notify, queue_offset, attempt))
    made.__post_init__()
    return made


def queued_request(
    *,
    queue_id: str,
    nexthop: str,
    sender: str,
    recipients: tuple[Recipient, ...],
    content: Path | str,
    transport: str,
    service: str,
    size: int,
    content_offset: int,
    encoding: str,
    smtputf8: bool,
    requiretls: bool,
    tls_required_no: bool,
    dsn_envid: str,
    dsn_ret: str,
    arrival_time: float,
    qmgr_time: float,
    probe: bool,
    content_bytes: bytes | None,
) -> DeliveryRequest:
    """`DeliveryRequest(...)` of these values (the client's, `log_ident` and
    `rewrite_context` empty, `size` exact), checked as it checks (`__post_init__`), made
    in less time: the queue makes one per job (tests/delivery/test_request.py holds the
    two together)."""
    made = _make_request(
        (
            queue_id,
            nexthop,
            sender,
            recipients,
            content,
            transport,
            size,
            content_offset,
            encoding,
            smtputf8,
            dsn_envid,
            dsn_ret,
            arrival_time,
            qmgr_time,
            "",  # client_name
            "",  # client_addr
            "",  # client_port
            "",  # client_proto
            "",  # client_helo
            "",  # log_ident
            "",  # rewrite_context
            True,  # size_exact
            probe,
            requiretls,
            tls_required_no,
            service,
            content_bytes,
        )
    )
    made.__post_init__()
    return made


# Called with (recipient index, status) as each recipient is marked.
StatusCallback = Callable[[int, RecipientStatus], None]


class Deliverer(Protocol):
    """What delivers a request: the agent in this process, or a pool of agent processes
    (queue/workers.py). The queue manager takes one injected; `on_status` runs as each
    recipient is marked, before the next one, so a queue can record it durably at once."""

    async def deliver(
        self, request: DeliveryRequest, *, on_status: StatusCallback | None = None
    ) -> DeliveryResult: ...


def takes_content_bytes(deliverer: object) -> bool:
    """Whether `deliverer` wants the bytes of small messages in its requests
    (`DeliveryRequest.content_bytes`): an agent in the caller's process says so with a true
    ``takes_content_bytes`` attribute; agent processes would have the bytes copied through
    a pipe by the busiest process to spare themselves a file read, so they do not."""
    return bool(getattr(deliverer, "takes_content_bytes", False))
