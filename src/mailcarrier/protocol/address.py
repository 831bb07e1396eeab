"""Envelope addresses on the wire: RFC 5321's Mailbox (with RFC 6531's UTF-8), Postfix's
quoting of the local part (smtp_quote_rfc821_envelope, quote_821_local(3)), and the check
that keeps an address from carrying anything but itself into a MAIL or RCPT command.

Addresses inside mailcarrier are in Postfix's internal form (the local part unquoted, e.g.
``a b@example.org``) or already in RFC 5321 form (``"a b"@example.org``); a local part that
is a complete RFC 5321 Quoted-string is taken as already quoted. `address_problem()` says
what is wrong with an address, or None: control characters, invalid Unicode, a missing local
part, or a domain that is neither a host name nor an address literal. Such an address is
refused before anything is sent (the request, the CLI, submission and the wire each turn
the problem into their own error). `wire_address()` renders a good address as it goes
between the angle brackets: a Dot-string as it is, anything else quoted; with quoting off
only an address that cannot end or split the path goes out. `orcpt_for()` is the DSN
original recipient (RFC 3461 ORCPT) of an address, as the queue records it and the client
sends it. Neighbours: commands.py renders
the commands, queue/addresses.py qualifies submitted addresses, delivery/request.py checks
the API's.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_ADDRESS",
    "address_problem",
    "is_quoted_string",
    "orcpt_for",
    "quote_address",
    "unquoted_problem",
    "wire_address",
]

# Postfix's line_length_limit-ish bound on one address; RFC 5321 4.5.3.1 says 256 octets for
# a path, which real mail exceeds now and then.
MAX_ADDRESS: Final = 1000

# C0 controls, DEL and the C1 controls: never inside an address, quoted or not (RFC 5321
# 4.1.2 qtextSMTP and quoted-pairSMTP are %d32-126; RFC 6531 adds UTF-8 text, not controls).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LINE_BREAK: Final = re.compile(r"[\r\n\0]")
# Postfix is_821_dot_string(), 8-bit clean: atext, with single dots between atoms.
# (Non-ASCII as a negated class: a \x80-\U0010ffff range took ~8 ms to compile at start.)
_ATOM: Final = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])+"
_DOT_STRING: Final = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# RFC 5321 Quoted-string, with RFC 6531's UTF-8 in qtext.
_QUOTED: Final = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\[\x20-\x7e])*"')
# RFC 5321 Domain (LDH labels; underscores and RFC 6531 U-labels accepted, as real mail has
# them) with an optional root dot, or an address literal (IPv4, IPv6:..., tag:dcontent).
_LABEL_CHAR: Final = r"(?:[A-Za-z0-9_]|[^\x00-\x7f])"
_LABEL: Final = rf"{_LABEL_CHAR}(?:(?:{_LABEL_CHAR}|-)*{_LABEL_CHAR})?"
_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?|\[[\x21-\x5a\x5e-\x7e]+\]")
# With quoting off, what must not be in an address: it would end the path early or split
# the command into parameters.
_UNQUOTED_UNSAFE: Final = re.compile(r'[\s<>"]')


def _split(address: str) -> tuple[str, str, str]:
    """(local part, "@" or "", domain). The domain follows the last @ outside a quoted
    local part: ``"a@b"@x`` has the local part ``"a@b"``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, "", ""
    return local, at, domain


def is_quoted_string(local: str) -> bool:
    """Whether `local` is a complete RFC 5321 Quoted-string (``"a b"``)."""
    return len(local) >= 2 and local[0] == '"' and _QUOTED.fullmatch(local) is not None


def address_problem(address: str, *, null_ok: bool = False) -> str | None:
    """What keeps `address` from being an envelope address, or None when it is one.

    The empty address is the null sender (`null_ok`). An address without @ is a bare local
    part (``postmaster``; LMTP servers take bare user names), which must be a Dot-string."""
    if not address:
        return None if null_ok else "is empty"
    if _LINE_BREAK.search(address):
        return "contains CR, LF or NUL"
    if _CONTROL.search(address):
        return "contains a control character"
    if not address.isascii():
        try:
            address.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, e.g. from surrogateescape
            return "is not valid Unicode"
    if len(address.encode("utf-8")) > MAX_ADDRESS:
        return f"is longer than {MAX_ADDRESS} bytes"
    local, at, domain = _split(address)
    if not local:
        return "has an empty local part"
    if not at:
        # RFC 5321 4.1.1.3 allows "Postmaster" alone; LMTP servers take bare user names.
        # Nothing that would need quoting: a bare local part is a name, not a puzzle.
        return None if _DOT_STRING.fullmatch(local) else "has no domain part"
    if _DOMAIN.fullmatch(domain) is None:
        return "has a bad domain part"
    return None


def quote_address(address: str, *, quote: bool = True) -> str:
    """The address as smtp_quote_rfc821_envelope writes it between the angle brackets.

    A local part that is not a Dot-string is made a Quoted-string, with a backslash before
    each ``"`` and ``\\`` (``a b@example.org`` -> ``"a b"@example.org``), as Postfix's
    quote_821_local() does (8-bit clean); one that is already a Quoted-string is left as
    it is. The null sender stays empty. No validity check: see `wire_address`."""
    if not address or not quote:
        return address
    local, at, domain = _split(address)
    if not local or _DOT_STRING.fullmatch(local) or is_quoted_string(local):
        return address
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"{at}{domain}'


def unquoted_problem(address: str) -> str | None:
    """With smtp_quote_rfc821_envelope = no the address goes out as it is: refuse what
    would end the path early or split the command (white space, angle brackets, quotes)."""
    if _UNQUOTED_UNSAFE.search(address):
        return "needs quoting, and smtp_quote_rfc821_envelope is off"
    return None


def wire_address(address: str, *, quote: bool = True, null_ok: bool = True) -> str:
    """The address between the angle brackets of MAIL FROM or RCPT TO; ValueError names
    what is wrong with one that cannot go out."""
    problem = address_problem(address, null_ok=null_ok)
    if problem is None and not quote:
        problem = unquoted_problem(address)
    if problem is not None:
        raise ValueError(problem)
    return quote_address(address, quote=quote)


def orcpt_for(dsn_orcpt: str, orig_address: str, *, utf8: bool = False) -> str:
    """RFC 3461 ORCPT as ``addr-type;address``: the one given, else derived from the original
    recipient as Postfix does (cleanup_addr.c when it queues mail, smtp_proto.c for a request
    without one): type ``utf-8`` (RFC 6533) when the address is not ASCII and `utf8` says
    SMTPUTF8 applies to the mail, else ``rfc822``; the local part quoted where RFC 5321
    needs it. commands.py encodes it for the wire (xtext, or RFC 6533's for ``utf-8``)."""
    if dsn_orcpt:
        return dsn_orcpt
    if not orig_address:
        return ""
    address = quote_address(orig_address)
    kind = "utf-8" if utf8 and not address.isascii() else "rfc822"
    return f"{kind};{address}"
