"""Text from outside made safe to print: Postfix's printable(), and JSON-safe strings.

`printable(text)` replaces what must not reach a log line, a terminal or a header value with
``?``, as Postfix's printable() (util/printable.c) does to every log message at its output
(msg_output.c): ASCII control characters (CR, LF, TAB, ESC, NUL, ...) and DEL always; with
`utf8` (Postfix: ``smtputf8_enable = yes``) valid UTF-8 text is kept, otherwise every
non-ASCII byte is replaced too. Text here is `str`: bytes that were not valid UTF-8 arrive
as lone surrogates (``surrogateescape`` decoding of argv, file names and main.cf), and each
is one invalid byte, so one ``?``. Stricter than Postfix on purpose: the C1 controls
(U+0080..U+009F, among them NEL) and the Unicode line and paragraph separators (U+2028,
U+2029) are valid UTF-8 that Postfix keeps, but log readers in several languages split lines
on them, so they are replaced too.

`json_safe(value)` makes a JSON-bound value encodable by any strict parser: lone surrogates
(which JSON can only carry as invalid ``\\udcxx`` escapes) become U+FFFD, as a UTF-8 decoder
with ``errors="replace"`` would have made them; everything else JSON escapes itself.

This module imports nothing of the package (it sits below config/ and tables/); the log sinks
(log.py), the queue's header writers (queue/headers.py) and the JSON outputs use it.
"""

from __future__ import annotations

import re
from typing import Final, TypeVar, cast

__all__ = ["REPLACEMENT", "json_safe", "printable"]

REPLACEMENT: Final = "?"
# C0 controls, DEL, C1 controls, LINE SEPARATOR, PARAGRAPH SEPARATOR, lone surrogates.
_UNPRINTABLE_UTF8: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNPRINTABLE_ASCII: Final = re.compile("[^\x20-\x7e]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
T = TypeVar("T")


def _bytes_of(char: str) -> int:
    """How many bytes a character stood for: a lone surrogate is one undecodable byte."""
    return 1 if "\ud800" <= char <= "\udfff" else len(char.encode("utf-8"))


def printable(text: str, *, utf8: bool = True, replacement: str = REPLACEMENT) -> str:
    """`text` with every non-printable character replaced (see the module text).

    Without `utf8` each byte of a non-ASCII character is replaced, as Postfix replaces
    bytes: ``"é"`` becomes ``"??"``.
    """
    if text.isascii() and text.isprintable():  # the common case, in C
        return text
    if utf8:
        return _UNPRINTABLE_UTF8.sub(replacement, text)
    return _UNPRINTABLE_ASCII.sub(lambda m: replacement * _bytes_of(m.group()), text)


def json_safe(value: T) -> T:
    """`value` (str, list, tuple, dict, or a scalar) with lone surrogates in every string,
    keys included, replaced by U+FFFD."""
    if isinstance(value, str):
        return cast("T", _SURROGATE.sub("\ufffd", value)) if not value.isascii() else value
    if isinstance(value, dict):
        return cast("T", {json_safe(k): json_safe(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return cast("T", type(value)(json_safe(v) for v in value))
    return value
