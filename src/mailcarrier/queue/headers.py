"""Values that the queue writes into message headers and header-like fields, made safe.

Whatever mailcarrier itself puts in a header (the From:, Date: and Message-Id: that
submission adds; every header, DSN field and text line of the notices and transcripts it
queues) may carry text from outside: a reply from a server, an address, a host name from
DNS or main.cf, the ``sendmail -F`` full name. None of it may hold a CR, LF or other control
character, which could end the field and start a new header or MIME part.

`field_text()` is for values quoted as they are (RFC 3464 fields, notice lines, the To: and
Subject: of notices): control characters become ``?``, as Postfix's bounce(8) masks them
(printable.py; valid UTF-8 stays). `full_name()` and `from_value()` do what Postfix's
cleanup(8) does with a full name (cleanup_message.c, clean_ascii_cntrl_space.c,
ascii_header_text.c): control characters become spaces, runs of spaces one space, leading and
trailing spaces go; an ASCII name is written as a phrase, quoted (email.utils.quote) when it
holds one of RFC 5322's specials or Postfix's extra ``%`` and ``!``; a name with non-ASCII
text is RFC 2047-encoded in UTF-8 (email.header, folded into encoded words of at most 75
characters). Callers: submit.py, notices.py, transcripts.py.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from typing import Final

from mailcarrier.printable import printable

__all__ = ["boundary_text", "field_text", "from_value", "full_name"]

# What cleanup turns into a space: control characters (C0, DEL, C1), the Unicode line and
# paragraph separators. Bytes that were not UTF-8 (lone surrogates) become U+FFFD, as a
# decoder with errors="replace" would make them.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_SPACES: Final = re.compile(" {2,}")
# Postfix quotes a full name holding one of these: "%!" and RFC 822's specials.
_QUOTE: Final = re.compile(r'[%!()<>@,;:\\".\[\]]')
# RFC 2046 5.1.1 bchars, less the space.
_NOT_BCHAR: Final = re.compile(r"[^0-9A-Za-z'()+_,\-./:=?]")


def field_text(value: str) -> str:
    """`value` for a header or a header-like field (or a line of a notice): no control
    characters, no line breaks."""
    return printable(value)


def boundary_text(value: str) -> str:
    """`value` for a MIME boundary: characters outside RFC 2046's bchars become ``?``."""
    return _NOT_BCHAR.sub("?", value)


def full_name(raw: str) -> str:
    """A ``sendmail -F`` full name cleaned as Postfix's cleanup cleans it ("" when nothing
    is left)."""
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", raw))
    return _SPACES.sub(" ", text).strip(" ")


def from_value(address: str, name: str) -> str:
    """The value of a From: header for `address` with the full name `name` (raw: it is
    cleaned here). Without a name: ``<address>``."""
    phrase = full_name(name)
    if not phrase:
        return f"<{address}>"
    # An ASCII name that looks like an RFC 2047 encoded word is encoded as well, so that
    # a reader shows it as typed rather than decoding it.
    if phrase.isascii() and "=?" not in phrase:
        if _QUOTE.search(phrase):
            phrase = f'"{email.utils.quote(phrase)}"'
        return f"{phrase} <{address}>"
    header = email.header.Header(phrase, "utf-8", header_name="From")
    return f"{header.encode(linesep=chr(10))} <{address}>"
