"""Postfix's key search orders: which keys to try, in which order, for addresses and domains.

For an address (generic(5), canonical(5), virtual(5), smtp_sasl_password_maps, ...):
``user+ext@domain``, ``user@domain``, then -- only when the domain is local --
``user+ext`` and ``user``, then ``@domain``. Every key but the first is a partial key that
only fixed-string tables see. For a domain (transport(5), TLS policy): the domain itself, then
each parent either as ``.parent`` (the default) or as ``parent`` (when the parameter is listed
in parent_domain_matches_subdomains). The search itself is in `maps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    text: str
    partial: bool  # partial keys are only looked up in fixed-string tables
    extension: str = ""  # the address extension left out of this key ("" if none)


def split_extension(localpart: str, delimiters: str) -> tuple[str, str]:
    """``user+ext`` -> (``user``, ``ext``) with any of `delimiters`; no split when empty."""
    if not delimiters or not localpart:
        return localpart, ""
    for index, char in enumerate(localpart):
        # A delimiter as the first character is part of the name (e.g. "+list").
        if index and char in delimiters:
            return localpart[:index], localpart[index + 1 :]
    return localpart, ""


def address_keys(address: str, *, recipient_delimiter: str = "", local: bool = False) -> list[Key]:
    user_ext, at, domain = address.rpartition("@")
    if not at:
        user_ext, domain, local = address, "", True
    user, ext = split_extension(user_ext, recipient_delimiter)
    keys = [Key(address, False)]
    if ext and domain:
        keys.append(Key(f"{user}@{domain}", True, ext))
    if local:
        if domain:
            keys.append(Key(user_ext, True))
        if ext:
            keys.append(Key(user, True, ext))
    if domain:
        keys.append(Key(f"@{domain}", True))
    return keys


def domain_keys(domain: str, *, parent_matches_subdomains: bool = False) -> list[Key]:
    name = domain.rstrip(".")
    keys = [Key(name, False)]
    labels = name.split(".")
    for index in range(1, len(labels)):
        parent = ".".join(labels[index:])
        keys.append(Key(parent if parent_matches_subdomains else "." + parent, True))
    return keys
