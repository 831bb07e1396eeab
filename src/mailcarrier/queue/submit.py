"""Submission: a message from a local user into incoming/, durably (sendmail and the API).

`submit_stream()` does what Postfix's sendmail -> postdrop -> pickup -> cleanup chain does for
local submission: check and qualify the envelope addresses, read the header section (bounded
by `header_size_limit`), take recipients from To/Cc/Bcc with ``-t`` (the Resent- ones when
present), remove Bcc, add a missing From:, Date: and Message-ID:, then stream the body into
the queue file, stopping at a lone "." line unless told to ignore dots (``-i``). As
cleanup does, each recipient is recorded as given (the log's ``orig_to=``) and as qualified,
with its DSN original recipient (ORCPT); 8-bit content and the SMTPUTF8 flag are found by
delivery/autodetect.py (the ``sendmail`` class). The headers it adds are single header lines
whatever the input: the ``-F`` full name is cleaned and encoded as cleanup(8) does it,
myhostname is cleaned (queue/headers.py). Bad input raises DataError and leaves nothing
queued; a message larger than `message_size_limit` (header and body together, as Postfix
limits the queue file) raises MessageTooBigError as soon as the limit is passed, without
reading the rest; a queue that cannot be written (a full disk, a read-only directory) raises
TemporaryError, also leaving nothing. The queue ID is returned only after the message is
durable (spool.py). Logs ``pickup`` and ``cleanup`` lines in Postfix's wording, the
``cleanup`` line with its ``queued`` event record (events.py).
"""

from __future__ import annotations

import email.utils
import getpass
import io
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Final

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.autodetect import (
    ContentScan,
    MailSource,
    smtputf8_autodetect,
    smtputf8_requested,
)
from mailcarrier.errors import DataError, MessageTooBigError
from mailcarrier.events import queued_event
from mailcarrier.lean.body import copy_body
from mailcarrier.lean.unique import unique
from mailcarrier.log import LogSink, NullLog, log_event
from mailcarrier.notify import Notify
from mailcarrier.protocol.address import orcpt_for
from mailcarrier.queue.addresses import check_address, parse_address
from mailcarrier.queue.headers import field_text, from_value
from mailcarrier.queue.names import CLEANUP, PICKUP
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import Envelope, MessageClass, QueueRecipient
from mailcarrier.queue.spool import Spool

__all__ = [
    "RecipientDSN",
    "SubmitOptions",
    "address_list",
    "argument_recipients",
    "default_sender",
    "submit_stream",
]

_FIELD: Final = re.compile(rb"([!-9;-~]+)[ \t]*:")
# RFC 3461 4.4: ENVID is printable US-ASCII (Postfix's sendmail: printable, at most 100).
_ENVID: Final = re.compile(r"[!-~]{0,100}")


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    sender: str | None = None  # None: the submitting user @ myorigin
    recipients: tuple[str, ...] = ()
    extract_recipients: bool = False  # -t
    ignore_dots: bool = True  # -i / -oi (the API default); sendmail default is False
    full_name: str = ""  # -F
    notify: Notify = Notify.NONE  # -N
    ret: str = ""  # -R
    envid: str = ""  # -V
    requiretls: bool = False  # --requiretls, -O requiretls=yes (RFC 8689)
    # -B 8BITMIME (BODY=8BITMIME): the body is declared 8bit whatever it holds; "7BIT" or ""
    # leave it to the content (8-bit data found makes it 8bit: 8-bit type information
    # overrides 7-bit, as Postfix's cleanup lets it).
    body_type: str = ""
    smtputf8: bool = False  # -O smtputf8=yes, MAIL FROM ... SMTPUTF8 (RFC 6531)
    # Per recipient (by position in `recipients`), NOTIFY and ORCPT as an SMTP client gave
    # them (RCPT TO ... NOTIFY= ORCPT=); empty: `notify` for all, ORCPT from the address.
    recipient_dsn: tuple[RecipientDSN, ...] = ()
    # sendmail -bv: no message is read; an address probe is queued instead (see
    # `_probe_header`), which the queue delivers as far as RCPT TO and reports on by mail.
    probe: bool = False


@dataclass(frozen=True, slots=True)
class RecipientDSN:
    """One recipient's DSN options as an SMTP client gave them (RFC 3461 4.1, 4.2)."""

    notify: Notify = Notify.NONE
    orcpt: str = ""  # "type;address" (xtext already decoded), "" when not given


def default_sender(myorigin: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{myorigin}"


@dataclass
class _Headers:
    lines: list[bytes]  # raw header lines, each ending in a line break
    first_body_line: bytes  # a non-header line that starts the body ("" when none)


def _read_headers(src: BinaryIO, limit: int) -> _Headers:
    """Read the header section. A first line that is not a header means there are none;
    a non-header line after a header is a malformed header (exit 65)."""
    lines: list[bytes] = []
    total = 0
    while True:
        line = src.readline(limit + 2)
        if not line:
            return _Headers(lines, b"")
        total += len(line)
        if total > limit:
            raise DataError(f"message header exceeds header_size_limit ({limit} bytes)")
        if line in (b"\n", b"\r\n"):
            return _Headers(lines, line)
        if line[:1] in (b" ", b"\t") and lines:
            lines.append(line)
            continue
        if _FIELD.match(line):
            lines.append(line)
            continue
        if not lines:
            return _Headers(lines, line)
        shown = line.rstrip(b"\r\n")[:60].decode("utf-8", "replace")
        raise DataError(f"malformed message header line: {shown!r}")


def _fields(lines: list[bytes]) -> list[tuple[str, str, int, int]]:
    """(lower-case name, unfolded value, first line index, line count) per header field."""
    out: list[tuple[str, str, int, int]] = []
    for i, line in enumerate(lines):
        if line[:1] in (b" ", b"\t") and out:
            name, value, first, count = out[-1]
            out[-1] = (
                name,
                value + line.decode("utf-8", "replace").rstrip("\r\n"),
                first,
                count + 1,
            )
            continue
        name, _, value = line.decode("utf-8", "replace").partition(":")
        out.append((name.strip().lower(), value.rstrip("\r\n"), i, 1))
    return out


def _header_recipients(fields: list[tuple[str, str, int, int]]) -> list[str]:
    resent = any(name.startswith("resent-") for name, *_ in fields)
    wanted = ("resent-to", "resent-cc", "resent-bcc") if resent else ("to", "cc", "bcc")
    return [a for name, value, *_ in fields if name in wanted for a in address_list(value)]


def address_list(value: str) -> list[str]:
    """The addresses of an RFC 822 address list (a header value, or a sendmail recipient
    argument such as ``Name <n@example.org>`` or ``a@x, b@y``); `DataError` when it cannot
    be parsed."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', "", value)
    if unquoted.count("<") != unquoted.count(">") or '"' in unquoted:
        raise DataError(f"cannot parse recipient header value: {value.strip()!r}")
    out = []
    for name, addr in email.utils.getaddresses([value]):
        if addr:
            out.append(addr)
        elif name:
            raise DataError(f"cannot parse recipient header value: {value.strip()!r}")
    return out


# sendmail's recipient arguments as address lists, strictly: bare addresses and
# ``phrase <address>`` separated by commas, (comments) dropped; anything else is refused.
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
_LOCAL = rf'(?:{_QUOTED}|[^\s<>()\[\],;:\\"@]+)'
_DOMAIN = r'(?:\[[^\[\]\s\\]*\]|[^\s<>()\[\],;:\\"@]+)'
_ADDR = rf"{_LOCAL}(?:@{_DOMAIN})?"
_ELEMENT = re.compile(
    rf'\s*(?:(?P<bare>{_ADDR})|(?:{_QUOTED}|[^<>()",;:\\@\x00-\x1f\x7f])*<(?P<angle>{_ADDR})>)\s*'
)
_COMMENT = re.compile(r"\([^()\\\x00-\x1f\x7f]*\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def argument_recipients(arguments: Iterable[str]) -> list[str]:
    """sendmail's recipient arguments, each an address list as Postfix's sendmail parses
    them (``Name <n@example.org>``, ``a@x, b@y``, ``user(comment)@x``); a plain address
    is taken as it is, and checked later like any other. A list that does not parse
    cleanly, or one with control characters, is refused (`DataError`), never guessed at."""
    out: list[str] = []
    for argument in arguments:
        if not any(c in argument for c in ",<>()") or _CONTROL.search(argument):
            out.append(argument)
            continue
        out.extend(_argument_list(argument))
    return out


def _argument_list(argument: str) -> list[str]:
    text = _COMMENT.sub("", argument)
    elements = _split_commas(text)
    found = []
    for element in elements:
        match = _ELEMENT.fullmatch(element)
        if match is None or "(" in element or ")" in element:
            raise DataError(f"cannot parse recipient address list: {argument!r}")
        found.append(match.group("bare") or match.group("angle"))
    return found


def _split_commas(text: str) -> list[str]:
    """`text` split at the commas outside quotes and angle brackets."""
    parts: list[str] = []
    current: list[str] = []
    quoted, angle, escaped = False, 0, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">":
            angle -= 1
        elif char == "," and not quoted and angle == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _added_headers(
    fields: list[tuple[str, str, int, int]], sender: str, full_name: str, queue_id: str, host: str
) -> list[bytes]:
    names = {name for name, *_ in fields}
    added = []
    if "from" not in names:
        value = from_value(sender or "MAILER-DAEMON", full_name)
        added.append(f"From: {value}\n".encode())
    if "date" not in names:
        added.append(f"Date: {email.utils.formatdate(localtime=True)}\n".encode())
    if "message-id" not in names:
        added.append(f"Message-Id: <{queue_id}@{field_text(host)}>\n".encode())
    return added


class _BodyCopier:
    """Streams the content into the queue file, scanning it (`ContentScan`: 8-bit data) and
    watching the size limit and the lone-dot terminator."""

    def __init__(self, write: Callable[[bytes], None], limit: int, scan: ContentScan) -> None:
        self._write = write
        self.limit = limit
        self.size = 0
        self.scan = scan

    def put(self, data: bytes, *, scanned: bool = False) -> None:
        self.size += len(data)
        if self.limit and self.size > self.limit:
            raise MessageTooBigError(
                f"message file too big (message_size_limit is {self.limit} bytes)"
            )
        if not scanned:
            self.scan.feed(data)
        self._write(data)

    def copy(self, src: BinaryIO, first: bytes, ignore_dots: bool) -> None:
        copy_body(self.put, src, first, ignore_dots)


def submit_stream(
    src: BinaryIO,
    options: SubmitOptions,
    *,
    settings: Settings,
    spool: Spool,
    log: LogSink | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Queue one message read from `src`; return its queue ID once it is durable."""
    log = log if log is not None else NullLog()
    params = QueueParams(settings)
    myorigin = params.myorigin()
    if options.ret not in ("", "FULL", "HDRS"):
        raise DataError(f'bad RET value "{options.ret}" (want FULL or HDRS)')
    if not _ENVID.fullmatch(options.envid):
        raise DataError(f"bad ENVID value {options.envid!r}")
    raw_sender = default_sender(myorigin) if options.sender is None else options.sender
    sender = check_address(raw_sender, what="sender", myorigin=myorigin, allow_null=True)
    if options.probe:
        src = io.BytesIO(_probe_header(sender, options.recipients))
    headers = _read_headers(src, params.main.header_size_limit)
    fields = _fields(headers.lines)
    given = options.recipient_dsn
    wanted = [(r, given[i] if i < len(given) else None) for i, r in enumerate(options.recipients)]
    if options.extract_recipients:
        wanted += [(r, None) for r in _header_recipients(fields)]
    recipients = unique(
        (*parse_address(r, what="recipient", myorigin=myorigin), dsn) for r, dsn in wanted
    )
    if not recipients:
        raise DataError(
            "no recipient addresses found"
            + (" in message header" if options.extract_recipients else "")
        )
    queue_id = spool.new_id()
    drop = {"bcc", "resent-bcc"}
    head = _added_headers(fields, sender, options.full_name, queue_id, params.myhostname())
    for name, _value, first, count in fields:
        if name not in drop:
            head.extend(headers.lines[first : first + count])
    # The header as it will be queued decides SMTPUTF8 before the envelope is written; the
    # body adds to the same scan (8-bit content). See delivery/autodetect.py.
    scan = ContentScan(params.main.header_size_limit)
    for line in head:
        scan.feed(line)
    envelope = _new_envelope(settings, options, queue_id, sender, recipients, scan, clock())
    with spool.create(envelope) as writer:
        copier = _BodyCopier(writer.write, params.main.message_size_limit, scan)
        for line in head:
            copier.put(line, scanned=True)
        opening = headers.first_body_line
        if head and opening and opening not in (b"\n", b"\r\n"):
            # No header of its own: the body starts at once, after the headers added
            # above, which the empty line must end (RFC 5322 2.1), or its first line
            # would read as a broken header line.
            copier.put(b"\n", scanned=True)
        copier.copy(src, opening, options.ignore_dots)
        if scan.finish().eight_bit or options.body_type.upper() == "8BITMIME":
            writer.set_encoding("8bit")
        queue_id = writer.commit()
        size = writer.size
    uid = os.getuid()
    log.info(PICKUP, f"{queue_id}: uid={uid} from=<{sender}>")
    message_id = _message_id(fields, queue_id, params.myhostname())
    queued = queued_event(
        queue_id,
        sender=sender,
        size=size,
        nrcpt=len(recipients),
        message_id=message_id,
        uid=uid,
    )
    log_event(log, CLEANUP, f"{queue_id}: message-id=<{message_id}>", queued)
    return queue_id


def _new_envelope(
    settings: Settings,
    options: SubmitOptions,
    queue_id: str,
    sender: str,
    recipients: list[tuple[str, str, RecipientDSN | None]],
    scan: ContentScan,
    now: float,
) -> Envelope:
    """The envelope as Postfix's cleanup records it: each recipient as qualified, with the
    address as it was given (``orig_to=``) and the DSN original recipient (ORCPT, of type
    ``utf-8`` for a UTF-8 address when SMTPUTF8 autodetection applies), the SMTPUTF8
    request flag (delivery/autodetect.py, from the header `scan`), and RFC 8689's flags:
    REQUIRETLS as asked, "TLS-Required: No" as the header says (Postfix's sendopts)."""
    addresses = (sender, *(address for _given, address, _dsn in recipients))
    smtputf8 = smtputf8_requested(
        settings,
        MailSource.SENDMAIL,
        addresses=addresses,
        header_utf8=scan.header_utf8,
        explicit=options.smtputf8,
    )
    utf8_orcpt = smtputf8_autodetect(settings, MailSource.SENDMAIL)
    return Envelope(
        queue_id=queue_id,
        sender=sender,
        recipients=tuple(
            QueueRecipient(
                address,
                given,
                orcpt_for(dsn.orcpt if dsn else "", address, utf8=utf8_orcpt),
                dsn.notify if dsn else options.notify,
            )
            for given, address, dsn in recipients
        ),
        arrival_time=now,
        dsn_envid=options.envid,
        dsn_ret=options.ret,
        smtputf8=smtputf8,
        message_class=MessageClass.MAIL,
        requiretls=options.requiretls,
        tls_required_no=scan.tls_required_no,
        probe=options.probe,
    )


def _probe_header(sender: str, recipients: Iterable[str]) -> bytes:
    """The content of an address probe, as Postfix's sendmail writes it for -bv: a From:
    (unless the sender is null), ``Subject: probe`` and a To: with the recipients; the
    report to the sender returns this header."""
    lines = [f"From: {field_text(sender)}\n"] if sender else []
    lines.append("Subject: probe\n")
    shown = [field_text(r) for r in recipients]
    if shown:
        lines.append("To:" + ",\n".join(f"\t{r}" for r in shown) + "\n")
    return "".join(lines).encode("utf-8")


def _message_id(fields: list[tuple[str, str, int, int]], queue_id: str, host: str) -> str:
    for name, value, *_ in fields:
        if name == "message-id":
            return value.strip().strip("<>")
    return f"{queue_id}@{host}"
