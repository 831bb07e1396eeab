"""smtp_sasl_password_maps lookups, as Postfix's smtp_sasl_passwd_lookup() does them.

The keys, in order (the first table hit wins; every table is asked for one key before the
next key is tried):

1. the envelope sender, when `smtp_sender_dependent_authentication` is on, the transport is
   SMTP (not LMTP) and the sender is not null, with the address search order of
   mail_addr_find (``user+ext@domain``, ``user@domain``, ``@domain``);
2. the remote server's host name (an MX host, or the host of ``[host]:port``), as is;
3. the next-hop destination exactly as written (``domain``, ``domain:port``, ``[host]``,
   ``[host]:port``), which is how SASL_README's ``[mail.isp.example]:587`` entries match.

A result is ``username:password``, split at the first colon (the password may contain
colons; a missing one is an empty password). `reuse_identity` gives the SASL part of a
connection-cache key so that sessions authenticated as different users, or (with
sender-dependent authentication) opened for different senders, are never shared; it contains
a digest of the password, never the password. `lookup_credentials_async` is the same search
for callers on an event loop: network tables (pgsql:, ...) are asked without blocking it.
Lookup only: mechanisms are in mechanism.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailcarrier.sasl.mechanism import Credentials
from mailcarrier.tables.maps import Maps

__all__ = [
    "PasswordMatch",
    "lookup_credentials",
    "lookup_credentials_async",
    "parse_credentials",
    "reuse_identity",
]


@dataclass(frozen=True, slots=True)
class PasswordMatch:
    credentials: Credentials
    key: str  # the lookup key that matched
    kind: str  # "sender" | "host" | "destination"
    table: str  # type:name of the table


def parse_credentials(value: str, *, send_authzid: bool = False) -> Credentials:
    """``username:password`` -> Credentials (Postfix splits at the first colon)."""
    username, _, password = value.strip().partition(":")
    return Credentials(username, password, username if send_authzid else "")


def lookup_credentials(
    maps: Maps,
    *,
    host: str,
    destination: str,
    sender: str = "",
    sender_dependent: bool = False,
    lmtp: bool = False,
    recipient_delimiter: str = "",
    send_authzid: bool = False,
) -> PasswordMatch | None:
    """The credentials for this server, or None: then Postfix does not authenticate at all.

    Table errors propagate (`mailcarrier.tables.TableError`): the caller defers.
    """
    if sender_dependent and sender and not lmtp:
        found = maps.find_address(sender, recipient_delimiter=recipient_delimiter)
        if found is not None:
            creds = parse_credentials(found.value, send_authzid=send_authzid)
            return PasswordMatch(creds, found.key, "sender", found.table)
    for kind, key in (("host", host), ("destination", destination)):
        if not key:
            continue
        hit = maps.find(key)
        if hit is not None:
            creds = parse_credentials(hit.value, send_authzid=send_authzid)
            return PasswordMatch(creds, key, kind, hit.table)
    return None


async def lookup_credentials_async(
    maps: Maps,
    *,
    host: str,
    destination: str,
    sender: str = "",
    sender_dependent: bool = False,
    lmtp: bool = False,
    recipient_delimiter: str = "",
    send_authzid: bool = False,
) -> PasswordMatch | None:
    """`lookup_credentials` with `Maps.find_address_async` / `find_async`."""
    if sender_dependent and sender and not lmtp:
        found = await maps.find_address_async(sender, recipient_delimiter=recipient_delimiter)
        if found is not None:
            creds = parse_credentials(found.value, send_authzid=send_authzid)
            return PasswordMatch(creds, found.key, "sender", found.table)
    for kind, key in (("host", host), ("destination", destination)):
        if not key:
            continue
        hit = await maps.find_async(key)
        if hit is not None:
            creds = parse_credentials(hit.value, send_authzid=send_authzid)
            return PasswordMatch(creds, key, kind, hit.table)
    return None


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace(";", "%3B")


def reuse_identity(
    credentials: Credentials | None, *, sender: str = "", sender_dependent: bool = False
) -> str:
    """The SASL part of a connection-reuse key (Postfix smtp_key.c: SASL username and
    password, plus the sender when sender-dependent authentication is on).

    Unauthenticated sessions get ``sasl=none``; a password appears only as a digest.
    """
    parts: list[str] = []
    if sender_dependent:
        parts.append("sender=" + _escape(sender or "<>"))
    if credentials is None:
        parts.append("sasl=none")
    else:
        secret = "\0".join((credentials.username, credentials.password, credentials.authzid))
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        parts.append(f"sasl={_escape(credentials.username)}:{digest}")
    return ";".join(parts)
