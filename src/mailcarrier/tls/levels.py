"""TLS security levels of the Postfix SMTP client, and what each one promises.

`SecurityLevel` names the levels of ``smtp_tls_security_level`` and the policy table, in
Postfix's order of strength, with the three questions the client asks of a level: is TLS
mandatory (no plaintext envelope or content ever), must the certificate chain be trusted,
must the certificate match (a name, a fingerprint or a TLSA record)? The decision of what
to do when a server falls short lives in delivery/tls_step.py; parsing of the policy
sources in policy.py.
"""

from __future__ import annotations

import enum

__all__ = ["SecurityLevel", "parse_level"]


class SecurityLevel(enum.Enum):
    """Postfix's TLS_LEV_* values, weakest first."""

    NONE = "none"
    MAY = "may"
    ENCRYPT = "encrypt"
    FINGERPRINT = "fingerprint"
    DANE = "dane"
    DANE_ONLY = "dane-only"
    VERIFY = "verify"
    SECURE = "secure"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def mandatory(self) -> bool:
        """TLS is required: no plaintext fallback, ever (Postfix TLS_REQUIRED())."""
        return self.rank >= SecurityLevel.ENCRYPT.rank

    @property
    def must_trust(self) -> bool:
        """The chain must lead to a trusted CA (Postfix TLS_MUST_TRUST())."""
        return self in (SecurityLevel.VERIFY, SecurityLevel.SECURE)

    @property
    def must_match(self) -> bool:
        """The certificate must match names, fingerprints or TLSA (TLS_MUST_MATCH())."""
        return self in (
            SecurityLevel.FINGERPRINT,
            SecurityLevel.DANE,
            SecurityLevel.DANE_ONLY,
            SecurityLevel.VERIFY,
            SecurityLevel.SECURE,
        )

    @property
    def is_dane(self) -> bool:
        return self in (SecurityLevel.DANE, SecurityLevel.DANE_ONLY)


_ORDER: tuple[SecurityLevel, ...] = tuple(SecurityLevel)


def parse_level(text: str) -> SecurityLevel | None:
    """A level name as main.cf or a policy table spells it (case-insensitive); None if unknown."""
    try:
        return SecurityLevel(text.strip().lower())
    except ValueError:
        return None
