"""Envelope address checks and qualification for submission and notices.

`check_address("user@example.com", what="recipient")` returns the address as it goes into the
queue or raises DataError with one clear line. An address without a domain is qualified with
`myorigin` as Postfix's cleanup does (``postmaster`` -> ``postmaster@$myorigin``); angle
brackets are removed. The syntax accepted is RFC 5321's Mailbox (dot-atom or quoted-string
local part; domain name or address literal), with UTF-8 allowed for SMTPUTF8. No control
character is accepted, not even inside a quoted local part (RFC 5321 4.1.2: qtextSMTP and
quoted-pairSMTP are printable US-ASCII), nor bytes that were not UTF-8: an address goes into
headers of notices and into log lines. What passes is also an address the SMTP client can
send (protocol/address.py). `mailcarrier deliver` checks its -f and -r arguments here too,
as sendmail does.
"""

from __future__ import annotations

import re
from typing import Final

from mailcarrier.errors import DataError
from mailcarrier.printable import printable
from mailcarrier.protocol.address import address_problem

__all__ = ["check_address", "is_ascii", "parse_address", "qualify"]

# Any non-ASCII character (UTF-8 addresses, RFC 6531). Written as a negated class, not as
# the range \u0080-\U0010ffff inside each class: compiling such ranges took 16 ms at every
# start of the program (re's charset optimiser walks them), this takes under 1 ms.
_NON_ASCII: Final = r"[^\x00-\x7f]"
_ATEXT: Final = rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-]|{_NON_ASCII})"
_LOCAL: Final = rf'(?:{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[^"\\\r\n]|\\[^\r\n])*")'
_LDH: Final = rf"(?:[A-Za-z0-9_]|{_NON_ASCII})"
_LDH_HYPHEN: Final = rf"(?:[A-Za-z0-9_\-]|{_NON_ASCII})"
_LABEL: Final = rf"{_LDH}(?:{_LDH_HYPHEN}*{_LDH})?"
_DOMAIN: Final = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[^\[\]\\\s]+\])"
_MAILBOX: Final = re.compile(rf"{_LOCAL}@{_DOMAIN}")
_LOCAL_ONLY: Final = re.compile(_LOCAL)
MAX_ADDRESS: Final = 1000


def qualify(address: str, myorigin: str) -> str:
    """Append ``@myorigin`` to an address without a domain ("" stays the null sender)."""
    if not address or "@" in address.rsplit('"', 1)[-1]:
        return address
    return f"{address}@{myorigin}"


def parse_address(
    address: str, *, what: str, myorigin: str, allow_null: bool = False
) -> tuple[str, str]:
    """Validate and qualify one envelope address: (the address as given, without angle
    brackets or surrounding white space; the address as it goes into the queue). The first
    is what Postfix's cleanup records as the original recipient (``orig_to=``)."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text:
        if allow_null:
            return "", ""
        raise DataError(f"empty {what} address")
    if printable(text) != text or len(text) > MAX_ADDRESS:
        raise DataError(f"bad {what} address syntax: {address!r}")
    qualified = text
    if "@" not in text.rsplit('"', 1)[-1]:
        if not _LOCAL_ONLY.fullmatch(text):
            raise DataError(f"bad {what} address syntax: {_shown(text)}")
        qualified = qualify(text, myorigin)
    if not _MAILBOX.fullmatch(qualified) or address_problem(qualified) is not None:
        raise DataError(f"bad {what} address syntax: {_shown(qualified)}")
    return text, qualified


def check_address(address: str, *, what: str, myorigin: str, allow_null: bool = False) -> str:
    """Validate and qualify one envelope address; DataError names what is wrong."""
    return parse_address(address, what=what, myorigin=myorigin, allow_null=allow_null)[1]


def _shown(text: str) -> str:
    """How an error names a bad address: ``<text>``, or Python's quoting of it when it
    holds characters a terminal or a log reader would act on."""
    return f"<{text}>" if text.isprintable() else repr(text)


def is_ascii(text: str) -> bool:
    return text.isascii()
