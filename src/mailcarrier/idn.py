"""Internationalized domain names: the one conversion to A-labels that all of mailcarrier uses.

It sits at the bottom of the layers (it uses nothing of mailcarrier), so that main.cf's
``${domain_to_ascii{...}}`` and ``${domain_to_utf8{...}}`` (config/expand.py, Postfix 3.11's
mac_midna) convert exactly as the envelope, DNS and TLS names do.

`domain_to_ascii("faß.de")` is ``xn--fa-hia.de``: UTS #46 processing, non-transitional (IDNA
2008: "ß" stays a letter of its own, where IDNA 2003 made it "ss"), with case mapping and
without the STD3 ASCII rules, as Postfix's midna_domain_to_ascii() asks ICU for it; the
result must pass Postfix's valid_hostname(). The envelope (delivery/smtputf8.py), DNS lookups
(routing/), TLS name matching (tls/names.py) and SNI all convert through here, so a name is
sent, looked up and matched as the same A-labels. Python's own "idna" codec (IDNA 2003) is
never used. `valid_hostname()` lives here too, since the result is checked with it;
routing/dnslookup.py re-exports it for the checks of DNS replies.

The ``idna`` package is imported on the first non-ASCII name, not with this module: importing
it costs tens of milliseconds that a command which never meets such a name should not pay.
ASCII names are returned as they are (Postfix converts only names that are not all ASCII).
Labels that are ASCII inside a non-ASCII name keep "_" (``_25._tcp`` prefixes, SRV names):
UTS #46 without the STD3 rules allows it, the ``idna`` package's label check does not. The
Unicode labels get that package's IDNA 2008 checks (hyphens, joiners, bidi), a little
stricter than ICU's defaults.
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["address_to_ascii", "domain_to_ascii", "domain_to_utf8", "valid_hostname"]

_LABEL_RE: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")


def valid_hostname(name: str, *, wildcard: bool = False) -> bool:
    """Postfix valid_hostname(): labels of letters, digits, "-" and "_" (not at either end),
    at most 63 octets each and 255 in all, and not all-numeric (that would be an address)."""
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    if wildcard and labels[0] == "*":
        labels = labels[1:]
    if not labels:
        return False
    for label in labels:
        if len(label) > 63 or not _LABEL_RE.fullmatch(label):
            return False
    return not all(label.isdigit() for label in labels)


# Postfix's midna_domain cache holds 256 conversions; so does this one.
@functools.lru_cache(maxsize=256)
def _convert(name: str) -> str | None:
    import idna

    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    trailing_dot = mapped.endswith(".")
    out: list[str] = []
    for label in mapped.removesuffix(".").split("."):
        if label.isascii() and not label.lower().startswith("xn--"):
            # UTS #46 4.1 (CheckHyphens, which ICU applies): no "--" in the 3rd and 4th place.
            if label[2:4] == "--":
                return None
            out.append(label)
            continue
        try:
            out.append(idna.alabel(label).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    result = ".".join(out)
    if not valid_hostname(result):
        return None
    return result + "." if trailing_dot else result


def domain_to_ascii(name: str) -> str | None:
    """The A-label form of `name`; the name itself when it is ASCII; None when it cannot be
    converted (a disallowed character, an over-long label, a bad A-label, ...)."""
    if name.isascii():
        return name
    return _convert(name)


def domain_to_utf8(name: str) -> str | None:
    """The U-label form of an ASCII `name` (its A-labels decoded, with UTS #46's case
    mapping), as Postfix's midna_domain_to_utf8(); a name that is not ASCII as it is; None
    when an A-label does not decode or the result is not a valid name."""
    if not name.isascii():
        return name
    import idna

    trailing_dot = name.endswith(".")
    out: list[str] = []
    for label in name.removesuffix(".").lower().split("."):
        if not label.startswith("xn--"):
            out.append(label)
            continue
        try:
            out.append(idna.ulabel(label))
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    result = ".".join(out)
    # The name must come back to valid A-labels (a decoded label that UTS #46 rejects, a
    # plain label with characters a host name may not have: not a domain name).
    back = domain_to_ascii(result)
    if back is None or not valid_hostname(back):
        return None
    return result + "." if trailing_dot else result


def address_to_ascii(address: str) -> str | None:
    """`address` with its domain in A-labels and its local part as it is; None when the
    domain cannot be converted. An address without "@" is returned unchanged."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    ace = _convert(domain)
    return None if ace is None else f"{local}@{ace}"
