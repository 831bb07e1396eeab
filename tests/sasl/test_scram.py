"""SCRAM against the RFC test vectors (RFC 5802 5, RFC 7677 3) and against an independent
server (tests/support/peers/scram_server.py, hashlib/hmac only), with and without channel
binding."""

from __future__ import annotations

import base64

import pytest
import trustme

from mailcarrier.sasl.mechanism import ChannelBinding, Credentials, SaslError
from mailcarrier.sasl.scram import Scram, server_end_point
from tests.support.peers.scram_server import ScramServer


def test_rfc5802_sha1_vector() -> None:
    mech = Scram("SCRAM-SHA-1", Credentials("user", "pencil"), nonce="fyko+d2lbbFgONRv9qkxdawL")
    assert mech.start() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    final = mech.step(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    assert final == (
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    assert not mech.server_verified
    assert mech.step(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=") == b""
    assert mech.server_verified


def test_rfc7677_sha256_vector() -> None:
    mech = Scram("SCRAM-SHA-256", Credentials("user", "pencil"), nonce="rOprNGfwEbeRWgbNEkqO")
    assert mech.start() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = mech.step(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    assert final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert mech.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") == b""
    assert mech.server_verified


def _run(mech: Scram, server: ScramServer) -> bytes | None:
    first = mech.start()
    assert first is not None
    client_final = mech.step(server.first(first))
    return server.final(client_final)


@pytest.mark.parametrize(
    ("name", "hash_name"), [("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")]
)
def test_against_independent_server(name: str, hash_name: str) -> None:
    server = ScramServer(hash_name, "alice", "correct horse")
    mech = Scram(name, Credentials("alice", "correct horse"))
    server_final = _run(mech, server)
    assert server_final is not None, server.error
    assert mech.step(server_final) == b""
    assert mech.server_verified


def test_wrong_password_rejected_by_independent_server() -> None:
    server = ScramServer("sha256", "alice", "right")
    assert _run(Scram("SCRAM-SHA-256", Credentials("alice", "wrong")), server) is None
    assert server.error == "invalid proof"


def test_plus_binds_channel_data() -> None:
    data = b"\x01" * 12
    server = ScramServer(
        "sha256", "alice", "pw", plus_offered=True, binding_type="tls-unique", binding_data=data
    )
    mech = Scram(
        "SCRAM-SHA-256-PLUS", Credentials("alice", "pw"), binding=ChannelBinding("tls-unique", data)
    )
    assert mech.gs2_flag == "p"
    server_final = _run(mech, server)
    assert server_final is not None, server.error
    mech.step(server_final)
    assert mech.server_verified


def test_plus_with_other_binding_data_fails() -> None:
    server = ScramServer(
        "sha256",
        "alice",
        "pw",
        plus_offered=True,
        binding_type="tls-unique",
        binding_data=b"A" * 12,
    )
    mech = Scram(
        "SCRAM-SHA-256-PLUS",
        Credentials("alice", "pw"),
        binding=ChannelBinding("tls-unique", b"B" * 12),  # a man in the middle's channel
    )
    assert _run(mech, server) is None
    assert server.error == "channel binding mismatch"


def test_y_flag_detects_downgrade() -> None:
    # Client could bind (y) but the server had offered -PLUS: a stripped -PLUS is detected.
    mech = Scram(
        "SCRAM-SHA-256", Credentials("alice", "pw"), binding=ChannelBinding("tls-unique", b"x")
    )
    assert mech.gs2_flag == "y"
    first = mech.start()
    assert first is not None and first.startswith(b"y,,")
    server = ScramServer("sha256", "alice", "pw", plus_offered=True)
    assert (
        _run(
            Scram(
                "SCRAM-SHA-256",
                Credentials("alice", "pw"),
                binding=ChannelBinding("tls-unique", b"x"),
            ),
            server,
        )
        is None
    )
    assert server.error == "downgrade"


def test_bad_server_signature_raises() -> None:
    server = ScramServer("sha256", "alice", "pw")
    mech = Scram("SCRAM-SHA-256", Credentials("alice", "pw"))
    assert _run(mech, server) is not None
    forged = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(SaslError, match="signature"):
        mech.step(forged)
    assert not mech.server_verified


@pytest.mark.parametrize(
    "server_first",
    [
        b"garbage",
        b"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",  # nonce does not extend ours
        b"\xff\xfe",
        b"e=other-error",
    ],
)
def test_hostile_server_first(server_first: bytes) -> None:
    mech = Scram("SCRAM-SHA-256", Credentials("alice", "pw"), nonce="abcdefghijkl")
    mech.start()
    with pytest.raises(SaslError):
        mech.step(server_first)


def test_absurd_iteration_count_refused() -> None:
    mech = Scram("SCRAM-SHA-256", Credentials("alice", "pw"), nonce="abcdefghijkl")
    mech.start()
    with pytest.raises(SaslError):
        mech.step(b"r=abcdefghijklXYZ,s=QSXCR+Q6sek8bf92,i=999999999")


def test_plus_requires_binding_and_known_type() -> None:
    with pytest.raises(SaslError):
        Scram("SCRAM-SHA-256-PLUS", Credentials("a", "b"))
    with pytest.raises(SaslError):
        Scram(
            "SCRAM-SHA-256-PLUS",
            Credentials("a", "b"),
            binding=ChannelBinding("tls-exporter", b"x"),
        )
    with pytest.raises(SaslError):
        Scram("SCRAM-MD5", Credentials("a", "b"))


def test_step_after_end_raises() -> None:
    server = ScramServer("sha1", "a", "b")
    mech = Scram("SCRAM-SHA-1", Credentials("a", "b"))
    final = _run(mech, server)
    assert final is not None
    mech.step(final)
    with pytest.raises(SaslError):
        mech.step(b"more")


def test_server_end_point_hash() -> None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ca = trustme.CA()
    cert = ca.issue_cert("mail.example")
    der = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    binding = server_end_point(der)
    assert binding.type == "tls-server-end-point"
    # trustme signs with SHA-256: RFC 5929 4.1 says hash with the signature's hash.
    assert binding.data == hashlib.sha256(der).digest()
    with pytest.raises(SaslError):
        server_end_point(b"not a certificate")
