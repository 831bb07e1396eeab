"""Postfix's TLS log lines for the SMTP client, as pure functions of values.

``Verified TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher
TLS_AES_256_GCM_SHA384 (256/256 bits)`` (the first word is verify.Trust),
``certificate verification failed for mx.example.com[192.0.2.1]:25: untrusted issuer /CN=X``,
``Host offered STARTTLS: [mx.example.com]`` (``smtp_tls_note_starttls_offer``), and the
certificate details logged at ``smtp_tls_loglevel`` 1 and above. The delivery step decides
which to log; log.py's sinks write them.
"""

from __future__ import annotations

__all__ = [
    "established_line",
    "offered_line",
    "peer_certificate_line",
    "verification_failed_line",
]


def established_line(
    trust: str, relay: str, version: str, cipher: str, bits: int, alg_bits: int
) -> str:
    return (
        f"{trust} TLS connection established to {relay}: {version} with cipher {cipher} "
        f"({bits}/{alg_bits} bits)"
    )


def verification_failed_line(relay: str, problem: str, purpose: str = "") -> str:
    """Postfix tls_log_verify_error(): `purpose` ("server", "CA") prefixes the OpenSSL
    errors reported against one certificate (expiry, ``num=N:text``)."""
    prefix = f"{purpose} " if purpose else ""
    return f"{prefix}certificate verification failed for {relay}: {problem}"


def offered_line(hostname: str) -> str:
    return f"Host offered STARTTLS: [{hostname}]"


def peer_certificate_line(
    relay: str, subject_cn: str, issuer_cn: str, fingerprint: str, pkey_fingerprint: str
) -> str:
    """The loglevel >= 1 summary of the server certificate."""
    return (
        f"{relay}: subject_CN={subject_cn}, issuer_CN={issuer_cn}, "
        f"fingerprint={fingerprint}, pkey_fingerprint={pkey_fingerprint}"
    )
