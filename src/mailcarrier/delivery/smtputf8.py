"""SMTPUTF8 (RFC 6531) and IDNA for the envelope: when a transaction needs SMTPUTF8, and the
A-label (RFC 5890) form of an envelope for a server that does not announce it.

A request flagged `smtputf8` (the sender asked for it, or autodetect.py found a UTF-8 local
part or UTF-8 in the header of a class of mail that smtputf8_autodetect_classes lists)
requires a server that announces SMTPUTF8, as Postfix's SMTPUTF8_FLAG_REQUESTED does: without
one it gets the 5.6.7 verdict of Postfix 3.11 (try the next server, then bounce). An unflagged
request goes to any server: without SMTPUTF8, non-ASCII domains are converted to A-labels
(idn.py: UTS #46 non-transitional, the conversion DNS lookups use too) and a UTF-8
local part goes as it is, as Postfix sends unflagged mail. Neighbours: outcome.py builds the
envelope; transaction.py acts on the verdict.
"""

from __future__ import annotations

from dataclasses import replace

from mailcarrier.delivery.autodetect import a_label_address, envelope_needs_smtputf8
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.idn import address_to_ascii
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.status import DeliveryStatus
from mailcarrier.transport.records import Envelope

__all__ = [
    "a_label_address",
    "envelope_needs_smtputf8",
    "smtputf8_envelope",
    "smtputf8_verdict",
]


def _a_label_domain(address: str) -> str:
    """The address with its domain in A-labels when IDNA allows; the local part as it is."""
    converted = address_to_ascii(address)
    return address if converted is None else converted


def smtputf8_verdict(namaddr: str) -> Verdict:
    """RFC 6531 3.4 and Postfix 3.11: no server that supports SMTPUTF8 was found (5.6.7)."""
    return Verdict(
        DeliveryStatus.BOUNCED,
        "5.6.7",
        "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. "
        f"The last attempted server was {namaddr}",
    )


def _downgraded(envelope: Envelope, ascii_only: bool) -> Envelope:
    """The envelope without SMTPUTF8: domains in A-labels where IDNA allows, local parts as
    they are (what Postfix sends when SMTPUTF8 was not requested: "as before")."""
    if ascii_only:
        return envelope if not envelope.smtputf8 else replace(envelope, smtputf8=False)
    return replace(
        envelope,
        sender=_a_label_domain(envelope.sender),
        recipients=tuple(
            replace(r, address=_a_label_domain(r.address)) for r in envelope.recipients
        ),
        smtputf8=False,
    )


def smtputf8_envelope(
    envelope: Envelope,
    requested: bool,
    caps: Capabilities,
    namaddr: str,
    *,
    enabled: bool = True,
) -> Envelope | Verdict:
    """The envelope to send to a server with `caps`, or the verdict when it cannot take it.

    With SMTPUTF8 announced, MAIL carries SMTPUTF8 when the request asks for it or an address
    is non-ASCII (RFC 6531 3.4). Without it, a requested SMTPUTF8 cannot be honoured (5.6.7);
    an unrequested one is not required, as in Postfix (DELIVERY_REQUIRES_SMTPUTF8 needs the
    request flag): non-ASCII domains go in A-labels (RFC 6531 3.7.3 permits that downgrade)
    and a UTF-8 local part goes as it is. A request is unflagged when smtputf8_autodetect_classes
    does not list the class of mail (delivery/autodetect.py), which is how Postfix keeps mail
    flows that predate SMTPUTF8 working.

    With smtputf8_enable=no (`enabled` False) SMTPUTF8 is never requested and never
    required, as in Postfix (SMTPUTF8_README: mail is handled "as before"): no 5.6.7 bounce;
    domains still go out in A-labels where IDNA allows, and a UTF-8 local part goes as it is.
    """
    addresses = (envelope.sender, *(r.address for r in envelope.recipients))
    ascii_only = all(a.isascii() for a in addresses)
    if not enabled:
        return _downgraded(envelope, ascii_only)
    if caps.smtputf8:
        return replace(envelope, smtputf8=requested or not ascii_only)
    if requested:
        return smtputf8_verdict(namaddr)
    return _downgraded(envelope, ascii_only)
