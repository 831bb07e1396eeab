"""SASL client mechanisms, sans-IO: PLAIN, LOGIN, CRAM-MD5, EXTERNAL, XOAUTH2, OAUTHBEARER.

A mechanism turns credentials into the bytes of an RFC 4954 AUTH exchange and nothing else:
`start()` gives the initial response (None when the mechanism waits for the server to speak
first), `step(challenge)` answers one decoded 334 challenge. Base64, line limits, round limits
and the network are the driver's job (transport/session.py `Session.authenticate`); choosing
a mechanism and the security options are policy.py's; SCRAM lives in scram.py. A mechanism
that cannot go on (a challenge it cannot parse, a server proof that does not verify) raises
`SaslError`, and the driver cancels the exchange with ``*`` (RFC 4954 4). Secrets never appear
in a repr, an exception message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

from mailcarrier.errors import MailcarrierError

__all__ = [
    "ChannelBinding",
    "CramMd5",
    "Credentials",
    "External",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SaslError",
    "XOAuth2",
]


class SaslError(MailcarrierError):
    """A SASL exchange cannot continue on our side. The message never contains a secret."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A ``username:password`` result of smtp_sasl_password_maps (the password may be a
    bearer token for XOAUTH2/OAUTHBEARER). `authzid` is sent only when
    send_cyrus_sasl_authzid is on."""

    username: str
    password: str = field(default="", repr=False)
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """TLS channel binding data (RFC 5056): ``tls-unique`` (RFC 5929 3),
    ``tls-server-end-point`` (RFC 5929 4) or ``tls-exporter`` (RFC 9266)."""

    type: str
    data: bytes = field(repr=False)


class Mechanism:
    """Base of every client mechanism. Subclasses set `name` and override the steps."""

    name: str = ""
    # True when a step may take noticeable CPU (SCRAM's PBKDF2): the driver runs it off
    # the event loop.
    expensive: bool = False

    def start(self) -> bytes | None:
        """The initial response (RFC 4954 4), or None to wait for a first challenge."""
        return None

    def step(self, challenge: bytes) -> bytes:
        """The response to one server challenge."""
        raise SaslError(f"{self.name}: unexpected server challenge")

    @property
    def server_verified(self) -> bool:
        """True when the server has proved it knows the secret (mutual authentication)."""
        return False


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


class Plain(Mechanism):
    """RFC 4616: ``[authzid] NUL authcid NUL passwd`` in the initial response."""

    name = "PLAIN"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._sent = False

    def _message(self) -> bytes:
        c = self._credentials
        for part in (c.authzid, c.username, c.password):
            # RFC 4616 2: the fields are UTF8SAFE, which excludes NUL.
            if "\0" in part:
                raise SaslError("PLAIN: a NUL character in the username or password")
        return b"\0".join((_utf8(c.authzid), _utf8(c.username), _utf8(c.password)))

    def start(self) -> bytes | None:
        self._sent = True
        return self._message()

    def step(self, challenge: bytes) -> bytes:
        # RFC 4954 4: a server may ignore the initial response and send an empty 334; only
        # then is the message sent again. A non-empty challenge is a protocol violation.
        if challenge:
            raise SaslError("PLAIN: non-empty server challenge")
        if self._sent:
            raise SaslError("PLAIN: server challenged again after the credentials")
        self._sent = True
        return self._message()


class Login(Mechanism):
    """The non-standard LOGIN mechanism (draft-murchison-sasl-login): username, then password,
    each in answer to a challenge whose text ("Username:", "Password:") is informational."""

    name = "LOGIN"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._answers = 0

    def step(self, challenge: bytes) -> bytes:
        self._answers += 1
        if self._answers == 1:
            return _utf8(self._credentials.username)
        if self._answers == 2:
            return _utf8(self._credentials.password)
        raise SaslError("LOGIN: more than two server challenges")


class CramMd5(Mechanism):
    """RFC 2195: the answer is ``username SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._answered = False

    def step(self, challenge: bytes) -> bytes:
        if self._answered:
            raise SaslError("CRAM-MD5: more than one server challenge")
        # RFC 2195 2: the challenge is a msg-id, "<...>"; an empty one would let anyone
        # replay our answer, so refuse it.
        if not challenge:
            raise SaslError("CRAM-MD5: empty server challenge")
        self._answered = True
        digest = hmac.new(_utf8(self._credentials.password), challenge, hashlib.md5).hexdigest()
        return _utf8(self._credentials.username) + b" " + digest.encode("ascii")


class External(Mechanism):
    """RFC 4422 appendix A: the TLS client certificate authenticates; the initial response
    is the authorization identity (empty: "derive it from my certificate")."""

    name = "EXTERNAL"

    def __init__(self, credentials: Credentials) -> None:
        self._authzid = credentials.authzid or credentials.username
        self._sent = False

    def start(self) -> bytes | None:
        self._sent = True
        return _utf8(self._authzid)

    def step(self, challenge: bytes) -> bytes:
        if challenge or self._sent:
            raise SaslError("EXTERNAL: unexpected server challenge")
        self._sent = True
        return _utf8(self._authzid)


class XOAuth2(Mechanism):
    """Google's XOAUTH2: ``user=U ^A auth=Bearer T ^A ^A``. On failure the server sends a
    334 with a JSON error and expects an empty response before its final 5xx reply."""

    name = "XOAUTH2"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._errors = 0

    def start(self) -> bytes | None:
        c = self._credentials
        return b"user=%s\x01auth=Bearer %s\x01\x01" % (_utf8(c.username), _utf8(c.password))

    def step(self, challenge: bytes) -> bytes:
        self._errors += 1
        if self._errors > 1:
            raise SaslError("XOAUTH2: more than one server error challenge")
        return b""


def _gs2_name(name: str) -> str:
    # RFC 5801 4 (used by RFC 7628 3.1): "," and "=" in the authzid are escaped.
    return name.replace("=", "=3D").replace(",", "=2C")


class OAuthBearer(Mechanism):
    """RFC 7628: ``n,a=USER, ^A auth=Bearer T ^A ^A``. On failure the server sends a 334 with
    a JSON error; the client answers with a single ^A (3.2.3) and gets the final reply."""

    name = "OAUTHBEARER"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._errors = 0
        self.error_status = ""  # the "status" of the server's JSON error, if any

    def start(self) -> bytes | None:
        c = self._credentials
        user = _gs2_name(c.username)
        header = f"n,a={user}," if user else "n,,"
        return _utf8(header) + b"\x01auth=Bearer " + _utf8(c.password) + b"\x01\x01"

    def step(self, challenge: bytes) -> bytes:
        self._errors += 1
        if self._errors > 1:
            raise SaslError("OAUTHBEARER: more than one server error challenge")
        try:
            error = json.loads(challenge.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            error = None
        if isinstance(error, dict):
            self.error_status = str(error.get("status", ""))[:100]
        return b"\x01"
