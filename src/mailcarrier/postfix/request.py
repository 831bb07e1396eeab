"""The DELIVER_REQUEST that qmgr(8) sends a delivery agent, sans-IO (Postfix's
global/deliver_request.c, rcpt_print.c, rcpt_buf.c; the flags of deliver_request.h).

After the agent's hello (reply.py), qmgr sends one attribute list of 23 common attributes,
then `recipient_count` lists of one recipient each. `parse_common` and `parse_recipient`
turn those lists (attr.py's `AttrParser` gives them) into a `NativeRequest` and its
`NativeRecipient`s, scanning strictly as Postfix does: names, order and count exact. The
one tolerance is attribute 8, ``smtputf8`` in Postfix 3.7-3.9 and ``sendopts`` from 3.10
(same bits; `NativeRequest.sendopts_name` keeps which). `RequestReader` drives both over
bytes as they arrive; `NativeRequest.encode()` is the other direction (qmgr's side, for
tests). Errors are `AttrError` with one line naming what was wrong.

`to_delivery_request` makes mailcarrier's `DeliveryRequest` of one (delivery/request.py);
a value that it refuses becomes `RequestRefused`, which the caller turns into a deferral.
This module reads no socket and no queue file: the server does the socket, queuefile.py
the file; msgstats.py is the ``time`` attribute; the bounce/defer clients reuse
`NativeRecipient.attr_pairs()` (rcpt_print).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, cast

from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.errors import DataError, UsageError
from mailcarrier.notify import Notify
from mailcarrier.postfix.attr import (
    AttrError,
    AttrList,
    AttrParser,
    Long,
    Value,
    as_int,
    as_long,
    encode,
    expect,
    expect_strings,
)
from mailcarrier.postfix.msgstats import MsgStats
from mailcarrier.status import fast_init

__all__ = [
    "COMMON_ATTRIBUTES",
    "DEL_REQ_FLAG_BOUNCE",
    "DEL_REQ_FLAG_CONN_LOAD",
    "DEL_REQ_FLAG_CONN_STORE",
    "DEL_REQ_FLAG_DEFLT",
    "DEL_REQ_FLAG_MTA_VRFY",
    "DEL_REQ_FLAG_RECORD",
    "DEL_REQ_FLAG_REC_DLY_SENT",
    "DEL_REQ_FLAG_SUCCESS",
    "DEL_REQ_FLAG_USR_VRFY",
    "DEL_REQ_TRACE_FLAGS_MASK",
    "DEL_REQ_TRACE_ONLY_MASK",
    "RECIPIENT_ATTRIBUTES",
    "SMTPUTF8_FLAG_REQUESTED",
    "SOPT_REQUIRETLS_ESMTP",
    "SOPT_REQUIRETLS_HEADER",
    "NativeRecipient",
    "NativeRequest",
    "RequestReader",
    "RequestRefused",
    "parse_common",
    "parse_recipient",
    "parse_request",
    "to_delivery_request",
    "trace_flags",
    "trace_only",
]

# --- flags (global/deliver_request.h) ---------------------------------------------------
DEL_REQ_FLAG_SUCCESS: Final = 1 << 0  # mark a delivered recipient done (D)
DEL_REQ_FLAG_BOUNCE: Final = 1 << 1  # unimplemented in Postfix too
DEL_REQ_FLAG_DEFLT: Final = DEL_REQ_FLAG_SUCCESS | DEL_REQ_FLAG_BOUNCE
DEL_REQ_FLAG_MTA_VRFY: Final = 1 << 8  # address probe from verify(8): no DATA
DEL_REQ_FLAG_USR_VRFY: Final = 1 << 9  # sendmail -bv: no DATA
DEL_REQ_FLAG_RECORD: Final = 1 << 10  # sendmail -v: every outcome to trace(8) too
DEL_REQ_FLAG_CONN_LOAD: Final = 1 << 11  # hint: look up a cached connection
DEL_REQ_FLAG_CONN_STORE: Final = 1 << 12  # hint: save the connection
DEL_REQ_FLAG_REC_DLY_SENT: Final = 1 << 13  # confirm_delay_cleared
DEL_REQ_TRACE_FLAGS_MASK: Final = (
    DEL_REQ_FLAG_MTA_VRFY | DEL_REQ_FLAG_USR_VRFY | DEL_REQ_FLAG_RECORD | DEL_REQ_FLAG_REC_DLY_SENT
)
DEL_REQ_TRACE_ONLY_MASK: Final = DEL_REQ_FLAG_MTA_VRFY | DEL_REQ_FLAG_USR_VRFY

# Bit 0 of attribute 8 (smtputf8.h; sendopts.h from 3.10): the sender asked for SMTPUTF8.
SMTPUTF8_FLAG_REQUESTED: Final = 1 << 0
# HEADER (2), SENDER (4), RECIPIENT (8): what in the message needs SMTPUTF8 (global/smtputf8.h).
SMTPUTF8_FLAG_NEEDED: Final = 0b1110
# RFC 8689 (sendopts.h, Postfix 3.10+): a "TLS-Required: No" header, and REQUIRETLS on the
# MAIL FROM that brought the message in.
SOPT_REQUIRETLS_HEADER: Final = 1 << 4
SOPT_REQUIRETLS_ESMTP: Final = 1 << 5

# DSN RET (global/dsn_mask.h) as mailcarrier spells it.
_DSN_RET: Final = {0: "", 1: "FULL", 2: "HDRS"}
# DSN NOTIFY bits: 1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY.
_NOTIFY_BITS: Final = (
    (1, Notify.NEVER),
    (2, Notify.SUCCESS),
    (4, Notify.FAILURE),
    (8, Notify.DELAY),
)


def trace_flags(flags: int) -> int:
    """DEL_REQ_TRACE_FLAGS(): the flags passed on to bounce(8), defer(8) and trace(8)."""
    return flags & DEL_REQ_TRACE_FLAGS_MASK


def trace_only(flags: int) -> int:
    """DEL_REQ_TRACE_ONLY(): non-zero for an address probe, which sends no DATA."""
    return flags & DEL_REQ_TRACE_ONLY_MASK


# --- the request ----------------------------------------------------------------------------

COMMON_ATTRIBUTES: Final = (
    "flags",
    "queue_name",
    "queue_id",
    "offset",
    "size",
    "nexthop",
    "encoding",
    "smtputf8",  # "sendopts" from Postfix 3.10
    "sender",
    "envelope_id",
    "ret_flags",
    "time",
    "log_client_name",
    "log_client_address",
    "log_client_port",
    "log_protocol_name",
    "log_helo_name",
    "sasl_method",
    "sasl_username",
    "sasl_sender",
    "log_ident",
    "rewrite_context",
    "recipient_count",
)
_SENDOPTS_AT: Final = 7
_SENDOPTS_NAMES: Final = ("smtputf8", "sendopts")
# The common list's names by what attribute 8 is called.
_COMMON_BY_SENDOPTS: Final = {
    name.encode(): (*COMMON_ATTRIBUTES[:_SENDOPTS_AT], name, *COMMON_ATTRIBUTES[_SENDOPTS_AT + 1 :])
    for name in _SENDOPTS_NAMES
}
RECIPIENT_ATTRIBUTES: Final = (
    "original_recipient",
    "recipient",
    "offset",
    "dsn_orig_rcpt",
    "notify_flags",
)


def _text(value: bytes) -> str:
    # Undecodable bytes survive as surrogates (attr.encode() writes them back as they were).
    return value.decode("utf-8", "surrogateescape")


@fast_init
@dataclass(frozen=True, slots=True)
class NativeRecipient:
    """One recipient list of the request (rcpt_print.c order)."""

    orig_addr: str
    address: str
    offset: int  # of its R record in the queue file; -1: not to be marked
    dsn_orcpt: str  # e.g. "rfc822;orig@example" (raw, not xtext)
    notify_flags: int  # DSN NOTIFY bits; 0: not specified

    def attr_pairs(self) -> list[tuple[str, Value]]:
        """The attributes as rcpt_print() sends them (also inside bounce/defer requests)."""
        return list(
            zip(
                RECIPIENT_ATTRIBUTES,
                (
                    self.orig_addr,
                    self.address,
                    Long(self.offset),
                    self.dsn_orcpt,
                    self.notify_flags,
                ),
                strict=True,
            )
        )


@fast_init
@dataclass(frozen=True, slots=True)
class NativeRequest:
    """A delivery request as qmgr(8) sent it; field names are DELIVER_REQUEST's."""

    flags: int
    queue_name: str
    queue_id: str
    data_offset: int  # attribute "offset": the first content record after M
    data_size: int  # attribute "size": content length in record bytes (SIZE=)
    nexthop: str
    encoding: str  # "", "7bit" or "8bit"
    sendopts: int  # attribute 8: SMTPUTF8 bits (3.10+: also REQUIRETLS bits)
    sender: str
    dsn_envid: str
    dsn_ret: int  # 0, 1 FULL, 2 HDRS
    msg_stats: MsgStats
    client_name: str
    client_addr: str
    client_port: str
    client_proto: str
    client_helo: str
    sasl_method: str
    sasl_username: str
    sasl_sender: str
    log_ident: str
    rewrite_context: str
    recipients: tuple[NativeRecipient, ...] = ()
    sendopts_name: str = "smtputf8"  # which name attribute 8 had: "smtputf8" | "sendopts"

    def with_recipients(self, recipients: Sequence[NativeRecipient]) -> NativeRequest:
        """The request with its recipients; at least one, as deliver_request_get insists."""
        if not recipients:
            raise AttrError(
                f"{self.queue_id}: no recipients in delivery request for destination {self.nexthop}"
            )
        return NativeRequest(
            self.flags,
            self.queue_name,
            self.queue_id,
            self.data_offset,
            self.data_size,
            self.nexthop,
            self.encoding,
            self.sendopts,
            self.sender,
            self.dsn_envid,
            self.dsn_ret,
            self.msg_stats,
            self.client_name,
            self.client_addr,
            self.client_port,
            self.client_proto,
            self.client_helo,
            self.sasl_method,
            self.sasl_username,
            self.sasl_sender,
            self.log_ident,
            self.rewrite_context,
            tuple(recipients),
            self.sendopts_name,
        )

    def common_pairs(self) -> list[tuple[str, Value]]:
        names = list(COMMON_ATTRIBUTES)
        names[_SENDOPTS_AT] = self.sendopts_name
        values: tuple[Value, ...] = (
            self.flags,
            self.queue_name,
            self.queue_id,
            Long(self.data_offset),
            Long(self.data_size),
            self.nexthop,
            self.encoding,
            self.sendopts,
            self.sender,
            self.dsn_envid,
            self.dsn_ret,
            self.msg_stats.to_attr(),
            self.client_name,
            self.client_addr,
            self.client_port,
            self.client_proto,
            self.client_helo,
            self.sasl_method,
            self.sasl_username,
            self.sasl_sender,
            self.log_ident,
            self.rewrite_context,
            len(self.recipients),
        )
        return list(zip(names, values, strict=True))

    def encode(self) -> bytes:
        """The bytes qmgr(8) would send for this request (qmgr_deliver_send_request)."""
        out = [encode(self.common_pairs())]
        out += [encode(r.attr_pairs()) for r in self.recipients]
        return b"".join(out)


def parse_common(pairs: AttrList) -> tuple[NativeRequest, int]:
    """The common attribute list: a request without recipients yet, and how many follow."""
    fields, name, count = _common_fields(pairs)
    return NativeRequest(*fields, sendopts_name=name), count


# The values of the common list, in NativeRequest's order (recipients aside).
_CommonFields = tuple[
    int, str, str, int, int, str, str, int, str, str, int, MsgStats,
    str, str, str, str, str, str, str, str, str, str,
]  # fmt: skip


def _common_fields(pairs: AttrList) -> tuple[_CommonFields, str, int]:
    """What `parse_common` makes its request of: the values, the name of attribute 8, and
    the recipient count."""
    try:
        names = _common_names(pairs[_SENDOPTS_AT][0] if len(pairs) > _SENDOPTS_AT else b"")
        return _parse_common(expect(pairs, names), names)
    except AttrError as exc:
        raise AttrError(f"error receiving common attributes: {exc}") from exc


def _common_strings(strings: list[bytes]) -> tuple[_CommonFields, str, int]:
    """`_common_fields` of a list as `AttrParser.next_strings()` gives it."""
    try:
        at = 2 * _SENDOPTS_AT
        names = _common_names(strings[at] if len(strings) > at else b"")
        return _parse_common(expect_strings(strings, names), names)
    except AttrError as exc:
        raise AttrError(f"error receiving common attributes: {exc}") from exc


def _common_names(sendopts: bytes) -> tuple[str, ...]:
    """The names of the common list, by what its attribute 8 is called."""
    return _COMMON_BY_SENDOPTS.get(sendopts, COMMON_ATTRIBUTES)


def _parse_common(v: list[bytes], names: tuple[str, ...]) -> tuple[_CommonFields, str, int]:
    # Undecodable bytes survive as surrogates (attr.encode() writes them back as they were);
    # values hold no NUL, so they are decoded in one piece.
    t = b"\0".join(v).decode("utf-8", "surrogateescape").split("\0")
    fields: _CommonFields = (
        as_int(v[0], "flags"),
        t[1],  # queue_name
        t[2],  # queue_id
        as_long(v[3], "offset"),
        as_long(v[4], "size"),
        t[5],  # nexthop
        t[6],  # encoding
        as_int(v[7], names[_SENDOPTS_AT]),
        t[8],  # sender
        t[9],  # dsn_envid
        as_int(v[10], "ret_flags"),
        MsgStats.from_attr(v[11]),
        t[12],  # client_name
        t[13],  # client_addr
        t[14],  # client_port
        t[15],  # client_proto
        t[16],  # client_helo
        t[17],  # sasl_method
        t[18],  # sasl_username
        t[19],  # sasl_sender
        t[20],  # log_ident
        t[21],  # rewrite_context
    )
    count = as_int(v[22], "recipient_count")
    if count <= 0:
        raise AttrError(f"{t[2]}: no recipients in delivery request for destination {t[5]}")
    return fields, names[_SENDOPTS_AT], count


def parse_recipient(pairs: AttrList) -> NativeRecipient:
    """One recipient list (rcpb_scan)."""
    try:
        return _recipient_of(expect(pairs, RECIPIENT_ATTRIBUTES))
    except AttrError as exc:
        raise AttrError(f"error receiving recipient attributes: {exc}") from exc


def _recipient_strings(strings: list[bytes]) -> NativeRecipient:
    """`parse_recipient` of a list as `AttrParser.next_strings()` gives it."""
    try:
        return _recipient_of(expect_strings(strings, RECIPIENT_ATTRIBUTES))
    except AttrError as exc:
        raise AttrError(f"error receiving recipient attributes: {exc}") from exc


def _recipient_of(v: list[bytes]) -> NativeRecipient:
    return NativeRecipient(
        _text(v[0]),
        _text(v[1]),
        as_long(v[2], "offset"),
        _text(v[3]),
        as_int(v[4], "notify_flags"),
    )


class RequestReader:
    """Bytes from qmgr in, one `NativeRequest` out: `feed()` what the socket gave (b"" at
    end of file), then `request()`, which is None until the last recipient list is in.
    `header` is the request without recipients as soon as its common list is in (Postfix
    checks the queue file name then). Malformed input raises `AttrError`."""

    __slots__ = ("_common", "_parser", "_recipients", "_request")

    def __init__(self, parser: AttrParser | None = None) -> None:
        self._parser = parser if parser is not None else AttrParser()
        self._common: tuple[_CommonFields, str, int] | None = None
        self._recipients: list[NativeRecipient] = []
        self._request: NativeRequest | None = None

    def feed(self, data: bytes) -> None:
        self._parser.feed(data)

    @property
    def idle(self) -> bool:
        """Between lists: nothing of the next one received yet."""
        return self._parser.idle

    @property
    def header(self) -> NativeRequest | None:
        if self._common is None:
            return None
        fields, name, _ = self._common
        return NativeRequest(*fields, sendopts_name=name)

    def request(self) -> NativeRequest | None:
        while self._request is None:
            strings = self._parser.next_strings()
            if strings is None:
                return None
            if self._common is None:
                self._common = _common_strings(strings)
                continue
            self._recipients.append(_recipient_strings(strings))
            fields, name, count = self._common
            if len(self._recipients) == count:
                # Made once, with its recipients (not the header, then a copy).
                self._request = NativeRequest(*fields, tuple(self._recipients), name)
        return self._request


def parse_request(data: bytes) -> NativeRequest:
    """A whole request in one piece; anything after it is refused."""
    parser = AttrParser()
    reader = RequestReader(parser)
    parser.feed(data)
    parser.feed(b"")
    request = reader.request()
    if request is None:
        raise AttrError("premature end of file in delivery request")
    if parser.next_list() is not None:
        raise AttrError("data after the delivery request")
    return request


# --- to mailcarrier's request ---------------------------------------------------------------


class RequestRefused(DataError):
    """mailcarrier's `DeliveryRequest` refused a value of the request (an address that is
    not one, CR or LF in a value, an unknown RET): the caller defers the request, or only
    `recipient` when it names one."""

    def __init__(self, message: str, *, recipient: NativeRecipient | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


def _notify(flags: int) -> Notify:
    notify = _NOTIFY_BY_FLAGS.get(flags)
    if notify is None:
        raise UsageError(f"bad notify_flags {flags}")
    return notify


def _notify_of(flags: int) -> Notify:
    result = Notify.NONE
    for bit, notify in _NOTIFY_BITS:
        if flags & bit:
            result |= notify
    return result


# Every valid notify_flags value (four bits) and its Notify, made once.
_NOTIFY_BY_FLAGS: Final = {flags: _notify_of(flags) for flags in range(16)}


def _recipient(native: NativeRecipient) -> Recipient:
    return Recipient(
        native.address,
        orig_address=native.orig_addr,
        dsn_orcpt=native.dsn_orcpt,
        dsn_notify=_notify(native.notify_flags),
        queue_offset=native.offset,
    )


def to_delivery_request(
    native: NativeRequest,
    *,
    transport: str,
    content: BinaryIO | Path | io.RawIOBase,
    size: int | None = None,
) -> DeliveryRequest:
    """mailcarrier's request for `native`, with `content` (a queuefile.RecordContent, or any
    binary stream or path) read to its end. `size` (default: the request's, in record bytes)
    is what SIZE= announces. Encoding "" stays "" (no BODY=), anything not 7bit or 8bit too,
    as Postfix's smtp(8) sends no BODY= for it."""
    recipients = []
    for rcpt in native.recipients:
        try:
            recipients.append(_recipient(rcpt))
        except UsageError as exc:
            raise RequestRefused(f"{native.queue_id}: {exc}", recipient=rcpt) from exc
    try:
        return _delivery_request(native, transport, content, size, tuple(recipients))
    except UsageError as exc:
        raise RequestRefused(f"{native.queue_id}: {exc}") from exc


def _delivery_request(
    native: NativeRequest,
    transport: str,
    content: BinaryIO | Path | io.RawIOBase,
    size: int | None,
    recipients: tuple[Recipient, ...],
) -> DeliveryRequest:
    ret = _DSN_RET.get(native.dsn_ret)
    if ret is None:
        raise UsageError(f"bad ret_flags {native.dsn_ret}")
    stats = native.msg_stats
    return DeliveryRequest(
        queue_id=native.queue_id,
        nexthop=native.nexthop,
        sender=native.sender,
        recipients=recipients,
        content=cast("BinaryIO | Path", content),
        transport=transport,
        size=native.data_size if size is None else size,
        size_exact=False,
        encoding=native.encoding if native.encoding in ("7bit", "8bit") else "",
        # smtp(8) refuses a server without SMTPUTF8 only when the client asked for it and
        # something in the message needs it (smtp_proto.c); mailcarrier's flag means that.
        smtputf8=bool(
            native.sendopts & SMTPUTF8_FLAG_REQUESTED and native.sendopts & SMTPUTF8_FLAG_NEEDED
        ),
        probe=bool(trace_only(native.flags)),
        requiretls=bool(native.sendopts & SOPT_REQUIRETLS_ESMTP),
        tls_required_no=bool(native.sendopts & SOPT_REQUIRETLS_HEADER),
        dsn_envid=native.dsn_envid,
        dsn_ret=ret,
        arrival_time=stats.incoming_arrival,
        qmgr_time=stats.active_arrival,
        client_name=native.client_name,
        client_addr=native.client_addr,
        client_port=native.client_port,
        client_proto=native.client_proto,
        client_helo=native.client_helo,
        log_ident=native.log_ident,
        rewrite_context=native.rewrite_context,
    )
