"""SASL authentication (RFC 4954) over a `Channel`: the AUTH exchange and its limits.

`authenticate()` drives one AUTH exchange with a sasl/ mechanism: the initial response on
the AUTH line when it fits, each 334 challenge decoded and answered, ``*`` to cancel what
cannot be answered. Network trouble raises `TransportError`; everything the server says,
hostile or not, ends as an `AuthOutcome`. Which mechanism and credentials to use, and what
an outcome means for delivery, is delivery/auth_step.py's business. `Session.authenticate`
is the entry point; this module holds the exchange itself, over the session's channel.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from typing import Final

from mailcarrier.protocol.commands import Auth, AuthResponse
from mailcarrier.protocol.reply import Reply
from mailcarrier.sasl.mechanism import Mechanism, SaslError
from mailcarrier.transport.channel import Channel

__all__ = [
    "AUTH_LINE_LIMIT",
    "MAX_AUTH_CHALLENGE",
    "MAX_AUTH_ROUNDS",
    "AuthOutcome",
    "authenticate",
]

# RFC 4954 4 and RFC 5321 4.5.3.1.4: the AUTH line, initial response included, fits in 512
# octets; a longer initial response waits for the server's first (empty) 334.
AUTH_LINE_LIMIT: Final = 512
# Postfix gives up after 100 challenges ("authentication protocol loop").
MAX_AUTH_ROUNDS: Final = 100
# Base64 characters of one 334 challenge (RFC 4954 4 suggests 12288 octets for a line).
MAX_AUTH_CHALLENGE: Final = 12288


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """How one AUTH exchange ended. `reply` is the server's last reply (235, 4xx, 5xx, or the
    reply to our ``*`` cancel); `problem` says why we ended the exchange ourselves (a
    malformed or endless challenge, a mechanism error): "" when the server ended it."""

    reply: Reply | None
    problem: str = ""
    rounds: int = 0

    @property
    def ok(self) -> bool:
        return not self.problem and self.reply is not None and self.reply.code // 100 == 2


async def authenticate(
    channel: Channel,
    mechanism: Mechanism,
    *,
    max_rounds: int = MAX_AUTH_ROUNDS,
    max_challenge: int = MAX_AUTH_CHALLENGE,
) -> AuthOutcome:
    """One AUTH exchange driven by a sasl/ mechanism. Network trouble raises
    `TransportError`; everything the server says, hostile or not, is an `AuthOutcome`."""
    try:
        initial = mechanism.start()
    except SaslError as exc:
        return AuthOutcome(None, str(exc))
    response = None if initial is None else base64.b64encode(initial).decode("ascii")
    # RFC 4954 4: an empty initial response is sent as "=".
    first = "=" if response == "" else response
    deferred: str | None = None
    if first is not None and len(mechanism.name) + len(first) + 8 > AUTH_LINE_LIMIT:
        first, deferred = None, first
    channel.send(Auth(mechanism.name, first))
    rounds = 0
    while True:
        reply = await channel.reply()
        if reply.code != 334:
            return AuthOutcome(reply, rounds=rounds)
        rounds += 1
        if rounds > max_rounds:
            return await _cancel(channel, "authentication protocol loop", rounds)
        text = reply.messages[0].strip() if reply.messages else ""
        if len(reply.lines) != 1 or len(text) > max_challenge:
            return await _cancel(channel, "malformed or oversized server challenge", rounds)
        if deferred is not None:
            # The postponed initial response answers an empty first challenge only.
            if text:
                return await _cancel(
                    channel, f"non-empty initial {mechanism.name} challenge", rounds
                )
            answer, deferred = deferred, None
        else:
            try:
                challenge = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return await _cancel(channel, "malformed base64 in server challenge", rounds)
            try:
                if mechanism.expensive:
                    data = await asyncio.to_thread(mechanism.step, challenge)
                else:
                    data = mechanism.step(challenge)
            except SaslError as exc:
                return await _cancel(channel, str(exc), rounds)
            answer = base64.b64encode(data).decode("ascii")
        channel.send(AuthResponse(answer))


async def _cancel(channel: Channel, problem: str, rounds: int) -> AuthOutcome:
    """RFC 4954 4: ``*`` cancels the exchange; the server answers 501."""
    channel.send(AuthResponse("*"))
    reply = await channel.reply()
    if reply.code == 334:
        # Still challenging after a cancel: nothing more on this session can be trusted.
        channel.lose()
    return AuthOutcome(reply, problem, rounds)
