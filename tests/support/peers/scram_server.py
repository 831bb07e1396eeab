"""An independent RFC 5802 SCRAM server for tests, from hashlib/hmac primitives only.

It shares no code with scramp (the library the client uses): it parses the client messages
itself, derives the keys with hashlib.pbkdf2_hmac, verifies the client proof, checks the
channel binding (the gs2 header and, for ``p=``, the binding data the *server* side of the TLS
connection computes), refuses a ``y`` flag when it offered -PLUS (downgrade detection,
RFC 5802 6) and returns the server signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass


def _attrs(message: str) -> dict[str, str]:
    out = {}
    for part in message.split(","):
        key, eq, value = part.partition("=")
        if not eq or len(key) != 1:
            raise ValueError(f"bad attribute {part!r}")
        out[key] = value
    return out


@dataclass
class ScramServer:
    hash_name: str  # "sha1" | "sha256"
    username: str
    password: str
    iterations: int = 4096
    salt: bytes = b""
    server_nonce: str = ""
    plus_offered: bool = False
    binding_data: bytes | None = None  # what the server's side of TLS says the binding is
    binding_type: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        self.salt = self.salt or secrets.token_bytes(16)
        self.server_nonce = self.server_nonce or secrets.token_urlsafe(18)

    def _h(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def _hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hash_name).digest()

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode()
        flag, authzid, bare = text.split(",", 2)
        self.gs2_header = f"{flag},{authzid},"
        self.flag = flag
        attrs = _attrs(bare)
        if attrs["n"] != self.username:
            raise ValueError("unknown user")
        self.client_first_bare = bare
        self.nonce = attrs["r"] + self.server_nonce
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={self.iterations}"
        return self.server_first.encode()

    def final(self, client_final: bytes) -> bytes | None:
        """The server-final message, or None (and `error`) when authentication fails."""
        text = client_final.decode()
        without_proof, _, proof_part = text.rpartition(",")
        attrs = _attrs(text)
        if not proof_part.startswith("p=") or attrs["r"] != self.nonce:
            self.error = "bad message"
            return None
        if self.flag == "y" and self.plus_offered:
            self.error = "downgrade"
            return None
        cbind_input = self.gs2_header.encode()
        if self.flag.startswith("p="):
            if self.flag[2:] != self.binding_type or self.binding_data is None:
                self.error = "unsupported binding"
                return None
            cbind_input += self.binding_data
        if base64.b64decode(attrs["c"]) != cbind_input:
            self.error = "channel binding mismatch"
            return None
        salted = hashlib.pbkdf2_hmac(
            self.hash_name, self.password.encode(), self.salt, self.iterations
        )
        client_key = self._hmac(salted, b"Client Key")
        stored_key = self._h(client_key)
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = base64.b64decode(attrs["p"])
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(self._h(recovered), stored_key):
            self.error = "invalid proof"
            return None
        server_key = self._hmac(salted, b"Server Key")
        verifier = base64.b64encode(self._hmac(server_key, auth_message)).decode()
        return f"v={verifier}".encode()
