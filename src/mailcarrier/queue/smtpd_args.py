"""The arguments of MAIL FROM and RCPT TO as an SMTP server reads them (``sendmail -bs``).

`parse_path("FROM", text)` splits ``FROM:<address> KEY=VALUE...`` into the address and its
ESMTP parameters; `mail_options` and `rcpt_options` check the parameters Postfix's smtpd(8)
takes in stand-alone mode (SIZE, BODY, RET, ENVID, SMTPUTF8, AUTH; NOTIFY, ORCPT) and
decode xtext (RFC 3461 4). Each problem is a `Refusal`: the reply, in Postfix's words. Pure
functions; the session is smtpd.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import UsageError
from mailcarrier.notify import Notify
from mailcarrier.protocol.commands import xtext_decode
from mailcarrier.queue.submit import RecipientDSN

__all__ = ["MailOptions", "Refusal", "mail_options", "parse_path", "rcpt_options"]

_XTEXT: Final = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_ENVID: Final = re.compile(r"[!-~]{0,100}")


class Refusal(Exception):
    """A command that cannot be taken; `reply` is the whole reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class MailOptions:
    size: int = 0
    body: str = ""  # "", "7BIT" or "8BITMIME"
    ret: str = ""
    envid: str = ""
    smtputf8: bool = False


def parse_path(keyword: str, text: str, syntax: str) -> tuple[str, list[str]]:
    """``KEYWORD:<address> params``: the address (without its brackets) and the parameter
    words. A space after the colon and an address without brackets are taken, as Postfix
    takes them by default (strict_rfc821_envelopes = no)."""
    head = text[: len(keyword) + 1]
    if head.upper() != f"{keyword}:":
        raise Refusal(syntax)
    rest = text[len(keyword) + 1 :].lstrip(" ")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        if end < 0:
            raise Refusal(syntax)
        address, params = rest[1:end], rest[end + 1 :]
        if params and not params.startswith(" "):
            raise Refusal(syntax)
    else:
        address, _, params = rest.partition(" ")
        if not address:
            raise Refusal(syntax)
    return address, params.split()


def _closing_bracket(text: str) -> int:
    """Where the ">" closing the path at text[0] is (quoted local parts may hold one)."""
    quoted = escaped = False
    for i, char in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    return -1


def _xtext(value: str, what: str) -> str:
    if not _XTEXT.fullmatch(value):
        raise Refusal(f"501 5.5.4 Error: Bad {what} parameter syntax")
    return xtext_decode(value)


def mail_options(words: list[str], *, size_limit: int, smtputf8_enable: bool) -> MailOptions:
    """The ESMTP parameters of MAIL FROM (RFC 1870 SIZE, RFC 6152 BODY, RFC 3461 RET and
    ENVID, RFC 6531 SMTPUTF8, RFC 4954 AUTH, which is ignored without authentication)."""
    size, body, ret, envid, utf8 = 0, "", "", "", False
    for word in words:
        name, sep, value = word.partition("=")
        key = name.upper()
        if key == "SIZE" and sep:
            if not value.isdigit() or len(value) > 18:
                raise Refusal("501 5.5.4 Bad message size syntax")
            size = int(value)
            if size_limit and size > size_limit:
                raise Refusal("552 5.3.4 Message size exceeds fixed limit")
        elif key == "BODY" and sep and value.upper() in ("7BIT", "8BITMIME"):
            body = value.upper()
        elif key == "BODY":
            raise Refusal("501 5.5.4 Unsupported BODY parameter")
        elif key == "RET" and sep:
            if value.upper() not in ("FULL", "HDRS"):
                raise Refusal("501 5.5.4 Bad RET parameter syntax")
            ret = value.upper()
        elif key == "ENVID" and sep:
            envid = _xtext(value, "ENVID")
            if not _ENVID.fullmatch(envid):
                raise Refusal("501 5.5.4 Bad ENVID parameter syntax")
        elif key == "SMTPUTF8" and not sep and smtputf8_enable:
            utf8 = True
        elif key == "AUTH" and sep:
            continue
        else:
            raise Refusal(f"555 5.5.4 Unsupported option: {word}")
    return MailOptions(size, body, ret, envid, utf8)


def rcpt_options(words: list[str]) -> RecipientDSN:
    """The ESMTP parameters of RCPT TO (RFC 3461 NOTIFY and ORCPT)."""
    notify, orcpt = Notify.NONE, ""
    for word in words:
        name, sep, value = word.partition("=")
        key = name.upper()
        if key == "NOTIFY" and sep:
            try:
                notify = Notify.parse(value)
            except UsageError:
                raise Refusal("501 5.5.4 Error: Bad NOTIFY parameter syntax") from None
        elif key == "ORCPT" and sep:
            kind, semi, address = value.partition(";")
            decoded = _xtext(address, "ORCPT") if semi else ""
            if not kind or not decoded or not decoded.isprintable():
                raise Refusal("501 5.5.4 Error: Bad ORCPT parameter syntax")
            orcpt = f"{kind};{decoded}"
        else:
            raise Refusal(f"555 5.5.4 Unsupported option: {word}")
    return RecipientDSN(notify, orcpt)
