"""EHLO/LHLO response parsing (RFC 5321 4.1.1.1): the server's service extensions.

`Capabilities.parse(reply)` reads the keyword lines of a 250 reply, case-insensitively, into
a frozen value: SIZE (with its limit), PIPELINING, 8BITMIME, DSN, ENHANCEDSTATUSCODES,
STARTTLS, AUTH (with mechanisms; the old ``AUTH=`` form too), XFORWARD (attributes), SMTPUTF8,
CHUNKING, and any other keyword. Keywords the operator asked to discard
(`smtp_discard_ehlo_keywords`) are removed here, before anything else sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from mailcarrier.protocol.reply import Reply

__all__ = ["Capabilities", "discard_notice"]

_MAX_KEYWORDS: Final = 100
# The keywords Postfix knows how to discard, in the order its "discarding EHLO keywords"
# line names them; "silent-discard" in the list suppresses that line.
_KNOWN: Final = (
    "8BITMIME",
    "AUTH",
    "ETRN",
    "PIPELINING",
    "SIZE",
    "VERB",
    "VRFY",
    "XCLIENT",
    "XFORWARD",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
    "REQUIRETLS",
)
SILENT_DISCARD: Final = "SILENT-DISCARD"
# Capabilities' flags and the keyword each stands for.
_FLAGS: Final = (
    ("pipelining", "PIPELINING"),
    ("eightbitmime", "8BITMIME"),
    ("dsn", "DSN"),
    ("enhancedstatuscodes", "ENHANCEDSTATUSCODES"),
    ("starttls", "STARTTLS"),
    ("smtputf8", "SMTPUTF8"),
    ("chunking", "CHUNKING"),
    ("size", "SIZE"),
    ("auth", "AUTH"),
)


def discard_notice(discard: Iterable[str]) -> str:
    """Postfix's "discarding EHLO keywords: ..." text for a discard list ("" for none, or
    when the list holds ``silent-discard``)."""
    words = {d.upper() for d in discard}
    if SILENT_DISCARD in words:
        return ""
    known = [k for k in _KNOWN if k in words]
    return "discarding EHLO keywords: " + " ".join(known) if known else ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server announced. `keywords` maps upper-case keyword -> parameter words."""

    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # RFC 1870: 0 means "announced without a limit"; None means SIZE not announced.
    size_limit: int | None = None
    greeting_name: str = ""
    # Whether each keyword the client acts on was announced: read for every message, so
    # kept as plain values, made from `keywords` when the value is made.
    pipelining: bool = field(init=False, repr=False, compare=False)
    eightbitmime: bool = field(init=False, repr=False, compare=False)
    dsn: bool = field(init=False, repr=False, compare=False)
    enhancedstatuscodes: bool = field(init=False, repr=False, compare=False)
    starttls: bool = field(init=False, repr=False, compare=False)
    smtputf8: bool = field(init=False, repr=False, compare=False)
    chunking: bool = field(init=False, repr=False, compare=False)
    size: bool = field(init=False, repr=False, compare=False)
    auth: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keywords = self.keywords
        for name, keyword in _FLAGS:
            object.__setattr__(self, name, keyword in keywords)

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return self.keywords.get("AUTH", ())

    @property
    def xforward(self) -> tuple[str, ...]:
        return self.keywords.get("XFORWARD", ())

    @classmethod
    def parse(cls, reply: Reply, discard: Iterable[str] = ()) -> Capabilities:
        drop = {d.upper() for d in discard}
        keywords: dict[str, tuple[str, ...]] = {}
        messages = reply.messages
        greeting_name = messages[0].split(" ", 1)[0] if messages else ""
        for text in messages[1:]:
            words = text.split()
            if not words:
                continue
            keyword = words[0].upper()
            params = tuple(w.upper() for w in words[1:])
            # RFC 4954 predecessor: "AUTH=LOGIN PLAIN" from old servers.
            if keyword.startswith("AUTH="):
                params = (keyword[5:], *params) if keyword[5:] else params
                keyword = "AUTH"
            if keyword in drop or len(keywords) >= _MAX_KEYWORDS:
                continue
            if keyword == "AUTH" and "AUTH" in keywords:
                params = tuple(dict.fromkeys((*keywords["AUTH"], *params)))
            keywords[keyword] = params
        size_limit: int | None = None
        if "SIZE" in keywords:
            size_limit = 0
            size_words = keywords["SIZE"]
            # ASCII digits only (str.isdigit() also accepts "²", which int() refuses).
            word = size_words[0] if size_words else ""
            if word.isascii() and word.isdigit() and len(word) <= 19:
                size_limit = int(word)
        return cls(keywords, size_limit, greeting_name)

    def without(self, discard: Iterable[str]) -> Capabilities:
        drop = {d.upper() for d in discard}
        kept = {k: v for k, v in self.keywords.items() if k not in drop}
        return Capabilities(kept, self.size_limit if "SIZE" in kept else None, self.greeting_name)
