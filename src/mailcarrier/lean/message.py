"""The lean path's message: addresses, the header section, the Date: header and the envelope.

Each function does what the general path does for the inputs it takes, and returns None
for the others (the general path then runs): `address()` is queue/addresses.py
`parse_address` for plain ASCII addresses (dot-atoms of letters, digits, ``_``, ``+`` and
``-``, host-name domains); `read_header()` is queue/submit.py `_read_headers` for ASCII
header sections; `header_recipients()` is ``sendmail -t``'s reading of To:, Cc: and Bcc:
(email.utils.getaddresses) for lists of plain addresses, ``<address>`` and ``Name
<address>``; `format_date()` is email.utils.formatdate(localtime=True); `envelope()` is
queue/qfile.py `render_envelope` for such an envelope. tests/lean/ pins each to its model.
It imports nothing of mailcarrier.
"""

from __future__ import annotations

import time

from mailcarrier.lean.mainconf import is_host_name

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "MAGIC",
    "Header",
    "address",
    "envelope",
    "format_date",
    "header_recipients",
    "read_header",
]

MAGIC = b"MAILCARRIER-QUEUE 1\n"  # queue/qfile.py
SIZE_WIDTH = 20
_ATOM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-")
_PHRASE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ")
# A header field name (queue/submit.py _FIELD): printable ASCII but the colon.
_FIELD_NAME = bytes(c for c in range(0x21, 0x7F) if c != 0x3A)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_ADDRESS = 1000


def address(text: str, myorigin: str, *, allow_null: bool = False) -> tuple[str, str] | None:
    """(as given, as queued) of a plain address, qualified with `myorigin`; None otherwise."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text:
        return ("", "") if allow_null else None
    local, at, domain = text.partition("@")
    if not at:
        domain = myorigin
    qualified = f"{local}@{domain}"
    if len(qualified) > MAX_ADDRESS or not is_host_name(domain) or not _dot_atom(local):
        return None
    return text, qualified


def _dot_atom(local: str) -> bool:
    return all(atom and _ATOM_CHARS.issuperset(atom) for atom in local.split("."))


def is_field(line: bytes) -> bool:
    """queue/submit.py `_FIELD.match(line)`: a header field name, blanks, a colon."""
    name, colon, _ = line.partition(b":")
    name = name.rstrip(b" \t")
    return bool(colon and name) and not name.translate(None, _FIELD_NAME)


class Header:
    """The header section as read: its lines, the line that starts the body ("" when none),
    and every byte read (given back to the general path when it takes over)."""

    __slots__ = ("first_body_line", "lines", "read")

    def __init__(self, lines: list[bytes], first_body_line: bytes, read: bytes) -> None:
        self.lines = lines
        self.first_body_line = first_body_line
        self.read = read


def read_header(src: BinaryIO, limit: int) -> tuple[Header, bool]:
    """The header section, and whether the lean path takes it: False for what
    `_read_headers` refuses (too long, a malformed line) and for non-ASCII lines."""
    lines: list[bytes] = []
    taken: list[bytes] = []
    total = 0
    while True:
        line = src.readline(limit + 2)
        taken.append(line)
        if not line:
            return Header(lines, b"", b"".join(taken)), True
        total += len(line)
        if total > limit or not line.isascii():
            return Header(lines, line, b"".join(taken)), False
        if line in (b"\n", b"\r\n"):
            return Header(lines, line, b"".join(taken)), True
        if line[:1] in (b" ", b"\t") and lines:
            lines.append(line)
            continue
        if is_field(line):
            lines.append(line)
            continue
        return Header(lines, line, b"".join(taken)), not lines


def fields(lines: list[bytes]) -> list[tuple[str, str, int, int]]:
    """queue/submit.py `_fields`: (lower-case name, unfolded value, first line, count)."""
    out: list[tuple[str, str, int, int]] = []
    for i, raw in enumerate(lines):
        line = raw.decode("ascii")
        if line[:1] in (" ", "\t") and out:
            name, value, first, count = out[-1]
            out[-1] = (name, value + line.rstrip("\r\n"), first, count + 1)
            continue
        name, _, value = line.partition(":")
        out.append((name.strip().lower(), value.rstrip("\r\n"), i, 1))
    return out


def header_recipients(found: list[tuple[str, str, int, int]]) -> list[str] | None:
    """The addresses ``sendmail -t`` takes from the header (Resent- fields when there are
    any), or None when one of the lists is not of the plain kinds (see the module text)."""
    resent = any(name.startswith("resent-") for name, *_ in found)
    wanted = ("resent-to", "resent-cc", "resent-bcc") if resent else ("to", "cc", "bcc")
    out: list[str] = []
    for name, value, *_ in found:
        if name not in wanted or not value.strip(" \t"):
            continue
        for element in value.split(","):
            one = _list_element(element.strip(" \t"))
            if one is None:
                return None
            out.append(one)
    return out


def _list_element(element: str) -> str | None:
    """The address of ``a@b``, ``<a@b>`` or ``Some Name <a@b>``; None for anything else."""
    phrase, angle, rest = element.partition("<")
    if not angle:
        text = element
    elif rest.endswith(">") and _plain_phrase(phrase):
        text = rest[:-1]
    else:
        return None
    local, at, domain = text.partition("@")
    if not (_dot_atom(local) and at and is_host_name(domain)):
        return None
    return text


def _plain_phrase(phrase: str) -> bool:
    """No phrase, or words of letters and digits separated by single spaces."""
    if not phrase:
        return True
    if not _PHRASE_CHARS.issuperset(phrase):
        return False
    words = phrase.split(" ")
    return phrase.endswith(" ") and bool(words[0]) and all(words[:-1]) and not words[-1]


def format_date(when: float) -> str:
    """email.utils.formatdate(when, localtime=True): RFC 5322 date-time in local time."""
    seconds = int(when)
    micros = round((when - seconds) * 1e6)
    if micros >= 1_000_000:  # datetime.fromtimestamp rounds to the microsecond
        seconds += 1
    local = time.localtime(seconds)
    offset = local.tm_gmtoff
    sign = "-" if offset < 0 else "+"
    hours, rest = divmod(abs(offset), 3600)
    minutes, secs = divmod(rest, 60)
    zone = f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")
    return (
        f"{_DAYS[local.tm_wday]}, {local.tm_mday:02d} {_MONTHS[local.tm_mon - 1]} "
        f"{local.tm_year:04d} {local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {zone}"
    )


def envelope(queue_id: str, now: float, sender: str, recipients: list[tuple[str, str]]) -> bytes:
    """queue/qfile.py `render_envelope` of a submitted message: (given, queued) recipients,
    7bit, no DSN options; every text is one `_enc` leaves as it is (see `address`)."""
    lines = [
        f"id {queue_id}",
        f"time {now!r}",
        "class mail",
        f"sender ={sender}",
        "envid =",
        "ret =",
        "body 7bit 0",
    ]
    lines.extend(f"rcpt 0 =rfc822;{queued} ={given} ={queued}" for given, queued in recipients)
    lines.append(f"size {0:0{SIZE_WIDTH}d}")
    lines.append("content")
    return MAGIC + ("\n".join(lines) + "\n").encode("ascii")
