"""A DKIM signing key for the TLSRPT report tests (RFC 8460 3: reports by mail are signed).

`dkim_key(directory)` writes a fresh 2048-bit RSA key as PEM to ``directory/dkim.pem`` and
returns its path and the TXT record of selector ``tlsrpt`` that publishes its public half,
for a loopback DNS zone; dkimpy then verifies the signed report against that record.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def dkim_key(directory: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path = directory / "dkim.pem"
    path.write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; s=tlsrpt; p=" + base64.b64encode(public)
