"""SCRAM-SHA-1 and SCRAM-SHA-256, with or without -PLUS channel binding, through `scramp`.

RFC 5802 (SCRAM, SCRAM-SHA-1), RFC 7677 (SCRAM-SHA-256). The message syntax, SASLprep,
PBKDF2 and the proofs are scramp's (a well-kept implementation, also used by pg8000); this
module adapts it to the `Mechanism` steps: client-first in the initial response, client-final
in answer to server-first, then the server-final is checked (mutual authentication) and
answered with an empty response (RFC 4954 4). Channel binding (RFC 5802 6): with -PLUS the
gs2 header is ``p=<type>``; without -PLUS but with binding data available the header is ``y``
(the client could bind, so a server that offered -PLUS detects a downgrade); with no binding
data it is ``n``. scramp supports ``tls-unique`` and ``tls-server-end-point`` but not
``tls-exporter``; policy.py never asks for it. SCRAM authorization identities (``a=``) are
not supported by scramp either, so send_cyrus_sasl_authzid does not apply to SCRAM.

scramp (with asn1crypto) and cryptography are imported on first use, by a SCRAM exchange or
a channel binding, not when this module is: most runs never authenticate with SCRAM.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

from mailcarrier.sasl.mechanism import ChannelBinding, Credentials, Mechanism, SaslError

if TYPE_CHECKING:
    import scramp

__all__ = ["SCRAM_BINDING_TYPES", "SCRAM_MECHANISMS", "Scram", "server_end_point"]

SCRAM_MECHANISMS: Final = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
)
# Binding types scramp can use, in our order of preference (RFC 5929 3 is SCRAM's default
# for TLS up to 1.2; tls-unique is undefined for TLS 1.3, where only end-point works here).
SCRAM_BINDING_TYPES: Final = ("tls-unique", "tls-server-end-point")


def server_end_point(der: bytes) -> ChannelBinding:
    """RFC 5929 4.1 ``tls-server-end-point``: the hash of the server certificate with the
    hash function of its signature algorithm, SHA-256 instead of MD5 or SHA-1."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SaslError(f"cannot read the server certificate for channel binding: {exc}") from None
    name = algorithm.name if algorithm is not None else "sha256"
    if name in ("md5", "sha1"):
        name = "sha256"
    try:
        digest = hashlib.new(name, der).digest()
    except ValueError:
        raise SaslError(f"no {name} digest for tls-server-end-point channel binding") from None
    return ChannelBinding("tls-server-end-point", digest)


class Scram(Mechanism):
    """One SCRAM exchange. `nonce` is for tests only (fixed client nonces of RFC vectors)."""

    expensive = True

    def __init__(
        self,
        name: str,
        credentials: Credentials,
        *,
        binding: ChannelBinding | None = None,
        nonce: str | None = None,
    ) -> None:
        name = name.upper()
        if name not in SCRAM_MECHANISMS:
            raise SaslError(f"unsupported SCRAM mechanism {name}")
        if name.endswith("-PLUS") and binding is None:
            raise SaslError(f"{name} needs TLS channel binding data")
        if binding is not None and binding.type not in SCRAM_BINDING_TYPES:
            raise SaslError(f"{name}: unsupported channel binding type {binding.type}")
        self.name = name
        self.binding = binding
        cb = (binding.type, binding.data) if binding is not None else None
        import scramp

        try:
            self._client = scramp.ScramClient(
                [name],
                credentials.username,
                credentials.password,
                channel_binding=cb,
                c_nonce=nonce,
            )
        except scramp.ScramException as exc:
            raise SaslError(f"{name}: {_reason(exc)}") from None
        self._stage = 0
        self._verified = False

    @property
    def gs2_flag(self) -> str:
        """The gs2 channel-binding flag this exchange sends: ``n``, ``y`` or ``p``."""
        if self.binding is None:
            return "n"
        return "p" if self.name.endswith("-PLUS") else "y"

    @property
    def server_verified(self) -> bool:
        return self._verified

    def start(self) -> bytes | None:
        self._stage = 1
        return str(self._client.get_client_first()).encode("utf-8")

    def step(self, challenge: bytes) -> bytes:
        import scramp

        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslError(f"{self.name}: server message is not UTF-8") from None
        try:
            if self._stage == 1:
                self._stage = 2
                self._client.set_server_first(text)
                return str(self._client.get_client_final()).encode("utf-8")
            if self._stage == 2:
                self._stage = 3
                # RFC 5802 5.1: the server signature proves the server knows the secret.
                self._client.set_server_final(text)
                self._verified = True
                return b""
        except scramp.ScramException as exc:
            raise SaslError(f"{self.name}: {_reason(exc)}") from None
        raise SaslError(f"{self.name}: unexpected server challenge after the exchange ended")


def _reason(exc: scramp.ScramException) -> str:
    # scramp's messages describe the protocol problem and never contain the password.
    return str(exc) or type(exc).__name__
