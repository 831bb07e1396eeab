"""SMTP/LMTP commands as values, and their exact wire form.

Each command is a frozen dataclass that knows its `Stage` and renders itself with `wire()`.
MAIL and RCPT parameters (SIZE, BODY, SMTPUTF8, REQUIRETLS, RET, ENVID, AUTH, NOTIFY, ORCPT) are
included only when the caller asks for them; the session decides that from what the server
announced.
RFC 3461 xtext lives here, RFC 5321 addresses and their quoting in address.py. Any CR, LF or
NUL in a value, and any address that is not one (address.py), is a `LocalProtocolError`
before a byte is produced: no command or parameter injection through the envelope.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.address import quote_address, wire_address
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import fast_init

__all__ = [
    "XFORWARD_UNAVAILABLE",
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "DataEnd",
    "Ehlo",
    "Helo",
    "Lhlo",
    "MailFrom",
    "Noop",
    "Quit",
    "RcptTo",
    "Rset",
    "StartTls",
    "Xforward",
    "quote_address",
    "uxtext_encode",
    "xtext_decode",
    "xtext_encode",
]

_FORBIDDEN: Final = re.compile(r"[\r\n\0]")
_XTEXT_RE: Final = re.compile(r"\+([0-9A-Fa-f]{2})")


def _check(what: str, value: str) -> None:
    if not value:
        return
    if _FORBIDDEN.search(value):
        raise LocalProtocolError(f"{what} contains CR, LF or NUL: {value!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates, e.g. from surrogateescape
            raise LocalProtocolError(f"{what} is not valid Unicode: {value!r}") from exc


# What xtext (RFC 3461 4) and utf-8-addr-xtext (RFC 6533) must encode; most values (an
# ORCPT of "rfc822;user@example.org") hold none of it and go out as they are.
_XTEXT_SPECIAL: Final = re.compile(r"[^\x21-\x2a\x2c-\x3c\x3e-\x7e]")
_UXTEXT_SPECIAL: Final = re.compile(r"[^\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]")


def xtext_encode(text: str) -> str:
    """RFC 3461 4: '+' '=' and characters outside 33..126 become +HH (UTF-8 bytes)."""
    if _XTEXT_SPECIAL.search(text) is None:
        return text
    out: list[str] = []
    for ch in text:
        o = ord(ch)
        if 33 <= o <= 126 and ch not in "+=":
            out.append(ch)
        else:
            out.extend(f"+{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def uxtext_encode(text: str) -> str:
    """RFC 6533 utf-8-addr-xtext, as Postfix's uxtext_quote() for a ``utf-8`` ORCPT: '\\',
    '+', '=' and characters outside 33..126 become \\x{HEX} (the code point, not bytes)."""
    if _UXTEXT_SPECIAL.search(text) is None:
        return text
    out: list[str] = []
    for ch in text:
        o = ord(ch)
        if 33 <= o <= 126 and ch not in "\\+=":
            out.append(ch)
        else:
            out.append(f"\\x{{{o:02X}}}")
    return "".join(out)


def xtext_decode(text: str) -> str:
    """Inverse of `xtext_encode`; malformed escapes are kept literally."""
    raw = _XTEXT_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


# Addresses already checked and quoted for the wire (smtp_quote_rfc821_envelope on) are
# remembered: the same sender, and often the same recipients, go out with message after
# message. A pure function of the address; a refused address raises and is not remembered.
_WIRE_ADDRESSES_LIMIT: Final = 4096
_quoted_wire_address: Final = functools.lru_cache(maxsize=_WIRE_ADDRESSES_LIMIT)(wire_address)


def _wire_address(what: str, address: str, quote: bool, *, null_ok: bool = False) -> str:
    """The address as it goes between the angle brackets (address.py), remembered when
    quoting; anything that could carry more than the address is a `LocalProtocolError`."""
    try:
        if quote and address:  # "" is the null sender only for MAIL: not remembered
            # One argument: the cache key is the string itself (null_ok only concerns "").
            return _quoted_wire_address(address)
        return wire_address(address, quote=quote, null_ok=null_ok)
    except ValueError as exc:
        raise LocalProtocolError(f"{what} {exc}: {address!r}") from None


@dataclass(frozen=True, slots=True)
class Command:
    """Base of all commands: a stage (for deadlines and diagnostics) and a wire form.

    Deliberately not an `abc.ABC`: the client state machine and the session dispatch on
    command types with isinstance() several times per reply, and ABCMeta's instance check
    costs several times a plain class's on that hot path. Every concrete command overrides
    both members; the base versions only say so when one does not.
    """

    @property
    def stage(self) -> Stage:
        raise TypeError(f"{type(self).__name__} does not define its stage")

    def wire(self) -> bytes:
        raise TypeError(f"{type(self).__name__} has no wire form")


@dataclass(frozen=True, slots=True)
class _Hello(Command):
    name: str

    verb = ""

    def wire(self) -> bytes:
        _check("hello name", self.name)
        return f"{self.verb} {self.name}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Ehlo(_Hello):
    verb = "EHLO"

    stage = Stage.EHLO


@dataclass(frozen=True, slots=True)
class Helo(_Hello):
    verb = "HELO"

    stage = Stage.HELO


@dataclass(frozen=True, slots=True)
class Lhlo(_Hello):
    verb = "LHLO"

    stage = Stage.LHLO


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    stage = Stage.STARTTLS

    def wire(self) -> bytes:
        return b"STARTTLS\r\n"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    mechanism: str
    initial_response: str | None = None  # base64 text; "=" for an empty one (RFC 4954)

    stage = Stage.AUTH

    def wire(self) -> bytes:
        _check("AUTH mechanism", self.mechanism)
        if self.initial_response is None:
            return f"AUTH {self.mechanism}\r\n".encode()
        _check("AUTH response", self.initial_response)
        return f"AUTH {self.mechanism} {self.initial_response}\r\n".encode()


@dataclass(frozen=True, slots=True)
class AuthResponse(Command):
    """A client response to a 334 challenge (base64 text, or ``*`` to cancel)."""

    response: str

    stage = Stage.AUTH

    def wire(self) -> bytes:
        _check("AUTH response", self.response)
        return f"{self.response}\r\n".encode()


# Postfix XFORWARD_README: the value that stands for "not known".
XFORWARD_UNAVAILABLE: Final = "[UNAVAILABLE]"
_XFORWARD_NAME: Final = re.compile(r"[A-Z]+")


@dataclass(frozen=True, slots=True)
class Xforward(Command):
    """``XFORWARD NAME=value ...`` (Postfix XFORWARD_README): original client attributes for
    the server's logs and access controls. Values are xtext (RFC 3461 4), except the
    placeholder ``[UNAVAILABLE]``, which goes as it is."""

    attributes: tuple[tuple[str, str], ...]

    stage = Stage.XFORWARD

    def wire(self) -> bytes:
        if not self.attributes:
            raise LocalProtocolError("XFORWARD needs at least one attribute")
        parts = ["XFORWARD"]
        for name, value in self.attributes:
            if not _XFORWARD_NAME.fullmatch(name):
                raise LocalProtocolError(f"bad XFORWARD attribute name: {name!r}")
            _check(f"XFORWARD {name}", value)
            shown = value if value == XFORWARD_UNAVAILABLE else xtext_encode(value)
            parts.append(f"{name}={shown}")
        return (" ".join(parts) + "\r\n").encode("ascii")


@fast_init
@dataclass(frozen=True, slots=True)
class MailFrom(Command):
    sender: str
    size: int | None = None
    body: str = ""  # "" | "8BITMIME" | "7BIT"
    smtputf8: bool = False
    ret: str = ""  # "" | "FULL" | "HDRS"
    envid: str = ""
    auth: str | None = None  # AUTH=<...> (RFC 4954 5); "" renders AUTH=<>
    quote: bool = True
    requiretls: bool = False  # RFC 8689 REQUIRETLS

    stage = Stage.MAIL

    def wire(self) -> bytes:
        if self.body:
            _check("BODY", self.body)
        if self.ret:
            _check("RET", self.ret)
        if self.envid:
            _check("ENVID", self.envid)
        sender = _wire_address("sender address", self.sender, self.quote, null_ok=True)
        parts = [f"MAIL FROM:<{sender}>"]
        if self.size is not None:
            parts.append(f"SIZE={self.size}")
        if self.body:
            parts.append(f"BODY={self.body}")
        # Postfix's order (smtp_proto.c), so that a next hop sees what smtp(8) sends.
        if self.envid:
            parts.append(f"ENVID={xtext_encode(self.envid)}")
        if self.ret:
            parts.append(f"RET={self.ret}")
        if self.smtputf8:
            parts.append("SMTPUTF8")
        if self.requiretls:
            parts.append("REQUIRETLS")
        if self.auth is not None:
            _check("AUTH= value", self.auth)
            parts.append(f"AUTH=<{xtext_encode(self.auth)}>" if self.auth else "AUTH=<>")
        return (" ".join(parts) + "\r\n").encode("utf-8")


@fast_init
@dataclass(frozen=True, slots=True)
class RcptTo(Command):
    address: str
    notify: str = ""  # RFC 3461 NOTIFY value, e.g. "SUCCESS,FAILURE"
    orcpt: str = ""  # "addr-type;address", xtext-encoded on the wire (RFC 6533's for utf-8)
    quote: bool = True
    index: int = 0  # position of the recipient in the delivery request

    stage = Stage.RCPT

    def wire(self) -> bytes:
        if self.notify:
            _check("NOTIFY", self.notify)
        if self.orcpt:
            _check("ORCPT", self.orcpt)
        parts = [f"RCPT TO:<{_wire_address('recipient address', self.address, self.quote)}>"]
        # ORCPT before NOTIFY, as smtp(8) sends them.
        if self.orcpt:
            # RFC 6533: a "utf-8" address type has its own encoding (as Postfix's client).
            utf8 = self.orcpt[:6].lower() == "utf-8;"
            parts.append(f"ORCPT={uxtext_encode(self.orcpt) if utf8 else xtext_encode(self.orcpt)}")
        if self.notify:
            parts.append(f"NOTIFY={self.notify}")
        return (" ".join(parts) + "\r\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Data(Command):
    stage = Stage.DATA

    def wire(self) -> bytes:
        return b"DATA\r\n"


@dataclass(frozen=True, slots=True)
class DataEnd(Command):
    """The final ``.`` after the content (the content itself is sent by the transport)."""

    stage = Stage.DOT

    def wire(self) -> bytes:
        return b".\r\n"


@dataclass(frozen=True, slots=True)
class Bdat(Command):
    """``BDAT <size> [LAST]`` (RFC 3030 2): a chunk of exactly `size` octets follows the
    command line at once (sent through `send_content`), with no dot-stuffing and no final
    dot; LAST ends the message."""

    size: int
    last: bool = False

    stage = Stage.BDAT

    def wire(self) -> bytes:
        if self.size < 0:
            raise LocalProtocolError(f"negative BDAT chunk size: {self.size}")
        return f"BDAT {self.size}{' LAST' if self.last else ''}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class Rset(Command):
    stage = Stage.RSET

    def wire(self) -> bytes:
        return b"RSET\r\n"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    stage = Stage.NOOP

    def wire(self) -> bytes:
        return b"NOOP\r\n"


@dataclass(frozen=True, slots=True)
class Quit(Command):
    stage = Stage.QUIT

    def wire(self) -> bytes:
        return b"QUIT\r\n"
