"""The simple mechanisms byte for byte: RFC 4616 PLAIN, LOGIN, RFC 2195 CRAM-MD5 (its own
example), EXTERNAL, XOAUTH2 and RFC 7628 OAUTHBEARER (its example's message layout)."""

from __future__ import annotations

import pytest

from mailcarrier.sasl.mechanism import (
    CramMd5,
    Credentials,
    External,
    Login,
    OAuthBearer,
    Plain,
    SaslError,
    XOAuth2,
)


def test_plain_initial_response() -> None:
    assert Plain(Credentials("tim", "tanstaaftanstaaf")).start() == b"\0tim\0tanstaaftanstaaf"


def test_plain_with_authzid() -> None:
    creds = Credentials("tim", "secret", authzid="tim")
    assert Plain(creds).start() == b"tim\0tim\0secret"


def test_plain_answers_empty_challenge_once_when_not_sent() -> None:
    mech = Plain(Credentials("u", "p"))
    assert mech.step(b"") == b"\0u\0p"
    with pytest.raises(SaslError):
        mech.step(b"")


def test_plain_refuses_nonempty_challenge_and_nul() -> None:
    with pytest.raises(SaslError):
        Plain(Credentials("u", "p")).step(b"x")
    with pytest.raises(SaslError):
        Plain(Credentials("u\0v", "p")).start()


def test_plain_error_message_has_no_secret() -> None:
    with pytest.raises(SaslError) as info:
        Plain(Credentials("u", "sec\0ret")).start()
    assert "sec" not in str(info.value)


def test_credentials_repr_hides_password() -> None:
    assert "hunter2" not in repr(Credentials("u", "hunter2"))


def test_login_two_steps() -> None:
    mech = Login(Credentials("user", "pass"))
    assert mech.start() is None
    assert mech.step(b"Username:") == b"user"
    assert mech.step(b"Password:") == b"pass"
    with pytest.raises(SaslError):
        mech.step(b"again")


def test_cram_md5_rfc2195_example() -> None:
    # RFC 2195 section 2 example.
    mech = CramMd5(Credentials("tim", "tanstaaftanstaaf"))
    assert mech.start() is None
    answer = mech.step(b"<1896.697170952@postoffice.reston.mci.net>")
    assert answer == b"tim b913a602c7eda7a495b4e6e7334d3890"
    with pytest.raises(SaslError):
        mech.step(b"<again>")


def test_cram_md5_refuses_empty_challenge() -> None:
    with pytest.raises(SaslError):
        CramMd5(Credentials("tim", "x")).step(b"")


def test_external_sends_authzid_or_empty() -> None:
    assert External(Credentials("")).start() == b""
    assert External(Credentials("alice")).start() == b"alice"
    with pytest.raises(SaslError):
        External(Credentials("")).step(b"x")


def test_xoauth2_message_and_error_challenge() -> None:
    mech = XOAuth2(
        Credentials("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    )
    assert mech.start() == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
        b"\x01\x01"
    )
    # On failure the server sends a JSON error challenge; the client answers empty.
    assert mech.step(b'{"status":"400"}') == b""
    with pytest.raises(SaslError):
        mech.step(b"{}")


def test_oauthbearer_rfc7628_layout() -> None:
    # RFC 7628 4.1: n,a=user@example.com,^Ahost=...^Aauth=Bearer <token>^A^A (we send no
    # host/port, which are optional).
    mech = OAuthBearer(
        Credentials("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")
    )
    assert mech.start() == (
        b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    assert mech.step(b'{"status":"invalid_token","schemes":"bearer"}') == b"\x01"
    assert mech.error_status == "invalid_token"
    with pytest.raises(SaslError):
        mech.step(b"{}")


def test_oauthbearer_escapes_gs2_name() -> None:
    start = OAuthBearer(Credentials("a,b=c", "t")).start()
    assert start is not None
    assert start.startswith(b"n,a=a=2Cb=3Dc,\x01")
