"""What a new message declares, found one way for every entry point: 8-bit content, UTF-8 in
the header, and whether SMTPUTF8 is requested (Postfix's cleanup with smtputf8_autodetect()).

`ContentScan` is fed the message as it will be sent, in pieces of any size, and notes 8-bit
content (any byte >= 0x80, which makes a request ``8bit``: BODY=8BITMIME) and UTF-8 in the
header section (RFC 6532 3.7). The header section ends, as Postfix's cleanup decides, at the
empty line or at the first line that is neither a header field nor the continuation of one;
only its first `header_size_limit` bytes are looked at. `smtputf8_requested()` then says
whether the request carries the SMTPUTF8 flag (Postfix's SMTPUTF8_FLAG_REQUESTED): never with
smtputf8_enable=no; always when the sender asked for it explicitly; otherwise only when
smtputf8_autodetect_classes lists the class of mail and the envelope has a UTF-8 local part
or the header has UTF-8 (a UTF-8 domain alone needs no SMTPUTF8: the client sends it in
A-labels when it must, delivery/smtputf8.py, with `a_label_address` from here, so that
submission does not load the client). A request without the flag is never refused for
want of SMTPUTF8, which is how Postfix keeps mail flows that predate SMTPUTF8 working. The
scan also notes a ``TLS-Required: No`` header field (RFC 8689 4.3): `tls_required_no`.

The classes of mail, as mailcarrier's entry points map onto Postfix's (mail_params.h):

- ``sendmail``: the ``sendmail`` command and the `submit()` API (Postfix's sendmail(1)); also
  the ``deliver`` command and the `make_request()` API. Postfix has no queue-less delivery;
  these are local programs handing over a message just as sendmail does, and mapping them to
  the same class makes one message get the same MAIL FROM parameters whichever way it goes.
- ``bounce``: non-delivery, delay and success notices and their postmaster copies (bounce(8)
  posts all of them in this class); a notice also keeps the flag of the message it is about.
- ``notify``: postmaster transcripts of SMTP sessions (Postfix's smtp_chat_notify()).
- ``smtpd``, ``qmqpd``, ``forward``, ``verify``: accepted for compatibility with main.cf
  files written for Postfix; mailcarrier has no such source of mail. ``all`` is every class.

Users: cli.py (deliver), api.py (make_request), queue/submit.py, queue/notices.py and
queue/transcripts.py. The verdicts at delivery time are in smtputf8.py.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO, Final

from mailcarrier.config.settings import Settings
from mailcarrier.idn import address_to_ascii

__all__ = [
    "ContentScan",
    "Declared",
    "MailSource",
    "a_label_address",
    "declare",
    "envelope_needs_smtputf8",
    "scan_stream",
    "smtputf8_autodetect",
    "smtputf8_requested",
    "spool_stream",
    "wants_smtputf8",
]

_CHUNK: Final = 65536
# A header field: a name of printable characters other than ":", then ":" (RFC 5322 2.2;
# Postfix's is_header() also allows white space before the colon).
_FIELD: Final = re.compile(rb"[!-9;-~]+[ \t]*:")
# RFC 8689 4.1: "TLS-Required:" with the one defined value, "No" (case-insensitive).
_TLS_REQUIRED_NO: Final = re.compile(rb"(?i)tls-required[ \t]*:[ \t]*no[ \t]*\r?\n?\Z")


class MailSource(enum.StrEnum):
    """Postfix's classes of mail (MAIL_SRC_NAME_*), as smtputf8_autodetect_classes names them."""

    SENDMAIL = "sendmail"
    SMTPD = "smtpd"
    QMQPD = "qmqpd"
    FORWARD = "forward"
    BOUNCE = "bounce"
    NOTIFY = "notify"
    VERIFY = "verify"


def smtputf8_autodetect(settings: Settings, source: MailSource) -> bool:
    """Postfix smtputf8_autodetect(): is UTF-8 in mail of class `source` looked for?"""
    if not settings.params.smtputf8_enable:
        return False
    classes = {c.lower() for c in settings.params.smtputf8_autodetect_classes}
    return source.value in classes or "all" in classes


def smtputf8_requested(
    settings: Settings,
    source: MailSource,
    *,
    addresses: tuple[str, ...],
    header_utf8: bool,
    explicit: bool = False,
) -> bool:
    """Whether a new message of class `source` carries the SMTPUTF8 request flag.

    `addresses` is the envelope (sender and recipients), `header_utf8` what `ContentScan`
    found, `explicit` the sender's own request (the API's ``smtputf8=True``)."""
    if not settings.params.smtputf8_enable:
        return False
    autodetect = smtputf8_autodetect(settings, source)
    return wants_smtputf8(
        autodetect, addresses=addresses, header_utf8=header_utf8, explicit=explicit
    )


def wants_smtputf8(
    autodetect: bool, *, addresses: tuple[str, ...], header_utf8: bool, explicit: bool = False
) -> bool:
    """`smtputf8_requested()` once `smtputf8_autodetect()` is known (the notices learn it
    once per configuration): an explicit request, or autodetection finding UTF-8 in the
    header or in a local part of the envelope (RFC 6531 3.4, RFC 6532 3.7)."""
    if explicit:
        return True
    return autodetect and (header_utf8 or envelope_needs_smtputf8(addresses))


def a_label_address(address: str) -> str | None:
    """The address with its domain in A-labels; None when that cannot make it ASCII (a
    UTF-8 local part, or a domain IDNA refuses). ASCII addresses come back unchanged."""
    if address.isascii():
        return address
    local, at, _domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    return address_to_ascii(address)


def envelope_needs_smtputf8(addresses: Iterable[str]) -> bool:
    """RFC 6531 3.4: an envelope needs SMTPUTF8 when an address stays non-ASCII even with its
    domain in A-labels (a UTF-8 local part). Submission sets the request flag from this."""
    return any(a_label_address(a) is None for a in addresses)


class ContentScan:
    """Notes 8-bit content and UTF-8 in the header of a message fed to it in order."""

    __slots__ = (
        "_header_left",
        "_in_header",
        "_line",
        "_seen_field",
        "eight_bit",
        "header_utf8",
        "tls_required_no",
    )

    def __init__(self, header_limit: int) -> None:
        self.eight_bit = False
        self.header_utf8 = False
        # RFC 8689 4.3: a "TLS-Required: No" header field (Postfix's SOPT_REQUIRETLS_HEADER).
        self.tls_required_no = False
        self._in_header = True
        self._seen_field = False
        self._line = b""  # the part of a header line that has arrived so far
        self._header_left = header_limit

    def feed(self, data: bytes) -> None:
        if not self.eight_bit and not data.isascii():
            self.eight_bit = True
        if self._in_header:
            self._scan_header(data)

    def finish(self) -> ContentScan:
        """The content has ended: a last header line without its line break counts too."""
        if self._in_header and self._line:
            self._header_line(self._line)
        self._line = b""
        self._in_header = False
        return self

    def _scan_header(self, data: bytes) -> None:
        pos = 0
        while self._in_header and pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            piece = data[pos:end]
            pos = end
            self._header_left -= len(piece)
            if self._header_left < 0:
                # Beyond header_size_limit: Postfix would not keep it as header.
                self._in_header = False
                return
            if nl < 0:
                self._line += piece
                return
            line, self._line = self._line + piece, b""
            self._header_line(line)

    def _header_line(self, line: bytes) -> None:
        if line[:1] in (b" ", b"\t") and self._seen_field:
            pass  # a continuation line
        elif _FIELD.match(line):
            self._seen_field = True
            if line[:12].lower() == b"tls-required" and _TLS_REQUIRED_NO.match(line):
                self.tls_required_no = True
        else:  # the empty line, or the first body line of a message without one
            self._in_header = False
            return
        if not self.header_utf8 and not line.isascii():
            self.header_utf8 = True


def scan_stream(src: BinaryIO, header_limit: int) -> ContentScan:
    """Scan a seekable stream from where it is, and put it back there."""
    scan = ContentScan(header_limit)
    start = src.tell()
    try:
        while block := src.read(_CHUNK):
            scan.feed(block)
    finally:
        src.seek(start)
    return scan.finish()


def spool_stream(src: BinaryIO, dest: BinaryIO, header_limit: int) -> ContentScan:
    """Copy `src` to `dest` in bounded chunks, scanning it; `dest` is flushed, not rewound."""
    scan = ContentScan(header_limit)
    while block := src.read(_CHUNK):
        scan.feed(block)
        dest.write(block)
    dest.flush()
    return scan.finish()


@dataclass(frozen=True, slots=True)
class Declared:
    """What a new delivery request declares: its `encoding`, its SMTPUTF8 flag, and whether
    its header says "TLS-Required: No"."""

    encoding: str  # "7bit" | "8bit"
    smtputf8: bool
    tls_required_no: bool = False


def declare(
    settings: Settings,
    source: MailSource,
    scan: ContentScan,
    *,
    addresses: tuple[str, ...],
    explicit: bool = False,
) -> Declared:
    """The request's encoding and SMTPUTF8 flag from a finished `scan` and the envelope."""
    smtputf8 = smtputf8_requested(
        settings, source, addresses=addresses, header_utf8=scan.header_utf8, explicit=explicit
    )
    return Declared("8bit" if scan.eight_bit else "7bit", smtputf8, scan.tls_required_no)
