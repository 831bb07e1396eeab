"""The queue file format: one file per message holding envelope, content and recipient state.

A queue file has three parts, in order:

1. the envelope, text lines ``keyword value...`` (fields are ``=``-prefixed percent-encoded
   so they never contain spaces or line breaks), ending with ``size NNNN`` (fixed width, so
   the writer can fill it in after streaming the content) and ``content``;
2. exactly ``size`` bytes of message content, stored as submitted;
3. an append-only log of state records: ``status`` (one verdict for one recipient),
   ``notified`` (the notice a verdict asked for is queued) and ``warned`` (the delay warning
   is queued). The last ``status`` record of a recipient is its state; none means pending.

Appending a record and fsyncing it is how per-recipient completion becomes durable (Postfix
marks recipients done inside its queue file in the same spirit). A crash can leave at most a
torn final line, which readers ignore and writers cut off before appending. This module only
renders and parses; the spool (spool.py) owns files and directories.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote

from mailcarrier.notify import Notify
from mailcarrier.status import DeliveryStatus, fast_init

__all__ = [
    "MAGIC",
    "Envelope",
    "MessageClass",
    "ParseError",
    "QueueRecipient",
    "RecipientState",
    "StateLog",
    "notified_record",
    "parse_envelope",
    "parse_records",
    "render_envelope",
    "status_record",
    "warned_record",
]

MAGIC: Final = b"MAILCARRIER-QUEUE 1\n"
SIZE_WIDTH: Final = 20
# The envelope of a message never needs more than this much text (recipient limits apply).
MAX_ENVELOPE: Final = 64 * 1024 * 1024


class ParseError(ValueError):
    """The file is not a queue file, or is damaged: it belongs in corrupt/."""


class MessageClass(enum.StrEnum):
    """What produced the message: mail, or one of the notices the bounce service makes."""

    MAIL = "mail"
    BOUNCE = "bounce"  # non-delivery notice (sender is <>)
    DELAY = "delay"
    SUCCESS = "success"
    POSTMASTER = "postmaster"  # copy to the postmaster, sent from double_bounce_sender
    VERIFY = "verify"  # the report of an address probe (sendmail -bv), to its sender

    @property
    def is_notice(self) -> bool:
        return self is not MessageClass.MAIL


_SAFE: Final = "@+.-_!#$&'*/?^`{|}~;:[]<>,()"
# Text that `quote(text, safe=_SAFE)` leaves as it is (its own always-safe characters and
# ours) is written without calling it (tests/queue/test_qfile.py pins the two together).
_PLAIN: Final = re.compile("[A-Za-z0-9" + re.escape(_SAFE) + "]*")
# ... and text whose only other character is the space (a server's reply, mostly).
_SPACED: Final = re.compile("[ A-Za-z0-9" + re.escape(_SAFE) + "]*")


def _enc(text: str) -> str:
    if _PLAIN.fullmatch(text):
        return "=" + text
    if _SPACED.fullmatch(text):
        return "=" + text.replace(" ", "%20")
    return "=" + quote(text, safe=_SAFE)


def _dec(token: str) -> str:
    if not token.startswith("="):
        raise ParseError(f"bad field {token!r}")
    if "%" not in token:  # what unquote() returns for it, without the call
        return token[1:]
    return unquote(token[1:], errors="strict")


@fast_init
@dataclass(frozen=True, slots=True)
class QueueRecipient:
    address: str
    orig_address: str = ""
    dsn_orcpt: str = ""
    dsn_notify: Notify = Notify.NONE


@fast_init
@dataclass(frozen=True, slots=True)
class Envelope:
    queue_id: str
    sender: str
    recipients: tuple[QueueRecipient, ...]
    arrival_time: float
    size: int = 0
    content_offset: int = 0
    dsn_envid: str = ""
    dsn_ret: str = ""
    encoding: str = "7bit"
    smtputf8: bool = False
    message_class: MessageClass = MessageClass.MAIL
    # RFC 8689: REQUIRETLS asked, a "TLS-Required: No" header. Written as a "sendopts" line
    # with Postfix's bits (sendopts.h) only when one is set, so files without them stay as
    # they were and files of earlier versions read as without.
    requiretls: bool = False
    tls_required_no: bool = False
    # An address probe (sendmail -bv): delivered only as far as RCPT TO, every verdict final,
    # and one report to the sender at the end. Written as a "trace" line with Postfix's
    # DEL_REQ_FLAG_USR_VRFY bit (deliver_request.h, MAIL_ATTR_TRACE_FLAGS) only when set.
    probe: bool = False


TRACE_USR_VRFY: Final = 1 << 9  # Postfix's DEL_REQ_FLAG_USR_VRFY
SENDOPTS_REQUIRETLS_HEADER: Final = 1 << 4  # Postfix's SOPT_REQUIRETLS_HEADER
SENDOPTS_REQUIRETLS_ESMTP: Final = 1 << 5  # Postfix's SOPT_REQUIRETLS_ESMTP


def _sendopts(env: Envelope) -> int:
    return (SENDOPTS_REQUIRETLS_ESMTP if env.requiretls else 0) | (
        SENDOPTS_REQUIRETLS_HEADER if env.tls_required_no else 0
    )


def render_envelope(env: Envelope) -> bytes:
    """The envelope part, ending just before the content; size is a fixed-width placeholder."""
    lines = [
        f"id {env.queue_id}",
        f"time {env.arrival_time!r}",
        f"class {env.message_class.value}",
        f"sender {_enc(env.sender)}",
        f"envid {_enc(env.dsn_envid)}",
        f"ret {_enc(env.dsn_ret)}",
        f"body {env.encoding} {int(env.smtputf8)}",
    ]
    sendopts = _sendopts(env)
    if sendopts:
        lines.append(f"sendopts {sendopts}")
    if env.probe:
        lines.append(f"trace {TRACE_USR_VRFY}")
    for r in env.recipients:
        lines.append(
            f"rcpt {r.dsn_notify.value} {_enc(r.dsn_orcpt)} {_enc(r.orig_address)} "
            f"{_enc(r.address)}"
        )
    lines.append(f"size {env.size:0{SIZE_WIDTH}d}")
    lines.append("content")
    return MAGIC + ("\n".join(lines) + "\n").encode("utf-8")


def size_field_offset(header: bytes) -> int:
    """Where the fixed-width size digits are inside a rendered envelope."""
    return header.rindex(b"size ") + len(b"size ")


# The values a file holds, looked up rather than made by the enums' (slower) calls.
_NOTIFY: Final = {str(n): Notify(n) for n in range(16)}
_CLASSES: Final = {c.value: c for c in MessageClass}


def parse_envelope(data: bytes) -> Envelope:
    """Parse the envelope part; `data` must start at the beginning of the file and contain
    at least the whole envelope. Raises ParseError on anything unexpected."""
    if not data.startswith(MAGIC):
        raise ParseError("not a mailcarrier queue file")
    end = data.find(b"\ncontent\n")
    if end < 0:
        raise ParseError("no content record")
    offset = end + len(b"\ncontent\n")
    try:
        text = data[len(MAGIC) : end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("envelope is not UTF-8") from exc
    env = _parse_rendered(text, offset)
    return env if env is not None else _parse_fields(text, offset)


# The envelope as `render_envelope` writes it, every field without a ``%`` escape: read
# with one match (`_parse_rendered`) instead of line by line. Anything else (lines in
# another order or of other kinds, escaped fields, values the enums' tables do not hold)
# is left to `_parse_fields`, the general reader, which gives the same envelope for every
# text this one reads (tests/queue/test_qfile.py pins the two together).
_RENDERED: Final = re.compile(
    "id ([^ \n]*)\n"
    "time ([^ \n]*)\n"
    "class ([^ \n]*)\n"
    "sender =([^ \n%]*)\n"
    "envid =([^ \n%]*)\n"
    "ret =([^ \n%]*)\n"
    "body ([^ \n]*) ([^ \n]*)\n"
    "(?:sendopts ([0-9]+)\n)?"
    "(?:trace ([0-9]+)\n)?"
    "((?:rcpt [0-9]+ =[^ \n%]* =[^ \n%]* =[^ \n%]*\n)+)"
    "size ([0-9]+)"
)
# One of the rcpt lines `_RENDERED` matched, in its fields.
_RCPT_FIELDS: Final = re.compile("rcpt ([0-9]+) =([^ \n%]*) =([^ \n%]*) =([^ \n%]*)\n")


def _parse_rendered(text: str, offset: int) -> Envelope | None:
    """The envelope of `text` when it is as `render_envelope` writes it, else None."""
    found = _RENDERED.fullmatch(text)
    if found is None:
        return None
    queue_id, time, kind, sender, envid, ret, encoding, smtputf8, sendopts, trace, lines, size = (
        found.groups()
    )
    message_class = _CLASSES.get(kind)
    if message_class is None:
        return None
    rcpts = []
    for notify, orcpt, orig, addr in _RCPT_FIELDS.findall(lines):
        flags = _NOTIFY.get(notify)
        if flags is None:
            return None
        rcpts.append(QueueRecipient(addr, orig, orcpt, flags))
    try:  # what int() and float() refuse, the general reader refuses as well
        arrival_time = float(time)
        options = int(sendopts) if sendopts is not None else 0
        probe = trace is not None and bool(int(trace) & TRACE_USR_VRFY)
        length = int(size)
    except ValueError:
        return None
    return Envelope(
        queue_id,
        sender,
        tuple(rcpts),
        arrival_time,
        length,
        offset,
        envid,
        ret,
        encoding,
        smtputf8 == "1",
        message_class,
        bool(options & SENDOPTS_REQUIRETLS_ESMTP),
        bool(options & SENDOPTS_REQUIRETLS_HEADER),
        probe,
    )


def _parse_fields(text: str, offset: int) -> Envelope:
    """The envelope of `text` (after the magic, up to the content record), line by line:
    any order, unknown keywords ignored, the last of a repeated keyword counts."""
    fields: dict[str, list[str]] = {}
    rcpts: list[QueueRecipient] = []
    try:
        for line in text.split("\n"):
            key, _, rest = line.partition(" ")
            parts = rest.split(" ")
            if key == "rcpt":
                notify, orcpt, orig, addr = parts
                flags = _NOTIFY[notify] if notify in _NOTIFY else Notify(int(notify))
                rcpts.append(QueueRecipient(_dec(addr), _dec(orig), _dec(orcpt), flags))
            else:
                fields[key] = parts
        encoding, smtputf8 = fields["body"]
        sendopts = int(fields["sendopts"][0]) if "sendopts" in fields else 0
        trace = int(fields["trace"][0]) if "trace" in fields else 0
        env = Envelope(
            queue_id=fields["id"][0],
            sender=_dec(fields["sender"][0]),
            recipients=tuple(rcpts),
            arrival_time=float(fields["time"][0]),
            size=int(fields["size"][0]),
            content_offset=offset,
            dsn_envid=_dec(fields["envid"][0]),
            dsn_ret=_dec(fields["ret"][0]),
            encoding=encoding,
            smtputf8=smtputf8 == "1",
            message_class=_CLASSES.get(fields["class"][0]) or MessageClass(fields["class"][0]),
            requiretls=bool(sendopts & SENDOPTS_REQUIRETLS_ESMTP),
            tls_required_no=bool(sendopts & SENDOPTS_REQUIRETLS_HEADER),
            probe=bool(trace & TRACE_USR_VRFY),
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise ParseError(f"bad envelope: {exc}") from exc
    if not env.recipients:
        raise ParseError("no recipients")
    return env


# --- state records ----------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientState:
    """The last recorded verdict of one recipient."""

    status: DeliveryStatus
    dsn: str
    diagnostic: str
    relay: str
    when: float
    action: str = ""


@dataclass
class StateLog:
    """The state records of one message, folded: last verdict per recipient, and notices."""

    states: dict[int, RecipientState] = field(default_factory=dict)
    notified: set[int] = field(default_factory=set)
    warned: bool = False
    # Verdicts recorded per recipient: the attempts made so far (event records count them).
    attempts: dict[int, int] = field(default_factory=dict)
    # Bytes of well-formed records (a torn tail beyond this is ignored and later cut off).
    valid_length: int = 0

    def apply(self, line: str) -> None:
        key, _, rest = line.partition(" ")
        parts = rest.split(" ")
        if key == "status":
            index, status, dsn, relay, diag, when, action = parts
            i = int(index)
            self.states[i] = RecipientState(
                DeliveryStatus(status), dsn, _dec(diag), _dec(relay), float(when), _dec(action)
            )
            self.attempts[i] = self.attempts.get(i, 0) + 1
        elif key == "notified":
            self.notified.add(int(parts[0]))
        elif key == "warned":
            self.warned = True
        else:
            raise ParseError(f"unknown record {key!r}")

    def is_final(self, index: int) -> bool:
        state = self.states.get(index)
        return state is not None and state.status is not DeliveryStatus.DEFERRED


def parse_records(data: bytes) -> StateLog:
    """Fold the record log; a final line without its newline is a torn write and ignored."""
    log = StateLog()
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        try:
            log.apply(data[pos:nl].decode("utf-8"))
        except (ValueError, IndexError) as exc:
            raise ParseError(f"bad state record: {exc}") from exc
        pos = nl + 1
    log.valid_length = pos
    return log


def status_record(
    index: int,
    status: DeliveryStatus,
    dsn: str,
    relay: str,
    diagnostic: str,
    when: float,
    action: str = "",
) -> bytes:
    # A StrEnum member formats as its value, in C (`.value` is Python code of enum.py).
    text = (
        f"status {index} {status} {dsn} {_enc(relay)} {_enc(diagnostic)} {when!r} {_enc(action)}\n"
    )
    return text.encode("utf-8")


def notified_record(index: int) -> bytes:
    return f"notified {index}\n".encode()


def warned_record() -> bytes:
    return b"warned\n"
