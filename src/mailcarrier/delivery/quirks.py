"""Per-server workarounds looked up by the server's IP address, as Postfix's smtp_helo() does.

* smtp_discard_ehlo_keyword_address_maps (lmtp_discard_lhlo_keyword_address_maps): a list found
  for the server's address replaces smtp_discard_ehlo_keywords. A table that cannot be read
  is Postfix's SMTP_ERR_DATA: a warning ("map lookup error") and the 4.3.0 deferral "local
  data error while talking to host[addr]"; the next server may still be tried. (Postfix
  looks the table up after EHLO; the list is needed to parse the EHLO reply here, so the
  lookup comes first and a failure drops the connection before the greeting is read.)
* smtp_pix_workarounds / smtp_pix_workaround_maps: when the server greeting looks like a
  Cisco PIX "smtp fixup" banner (nothing but the digits 2 and 0, asterisks and white space,
  e.g. ``220 ****************``), the workarounds found for the server's address (else
  smtp_pix_workarounds) are enabled and logged: ``disable_esmtp`` says HELO instead of EHLO;
  ``delay_dotcrlf`` sends the final ``.<CR><LF>`` on its own after
  smtp_pix_workaround_delay_time, but only for a message queued at least
  smtp_pix_workaround_threshold_time. A lookup problem here is ignored ("best effort", as in
  Postfix): the parameter's list applies.

setup.py asks `session_options()` before the session starts and `workarounds()` once the
greeting is read; the answer is a value (transport/session.py `Workarounds`) that the
session's hello keeps for the rest of the session. With network tables (pgsql:, ...) the
agent first calls `prefetch()`, which asks both tables for the server's address on the event
loop without blocking it and keeps the answers for this request (`Answers`); the
synchronous steps then find them there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from mailcarrier.config.settings import AgentSettings
from mailcarrier.delivery.generic import LOOKUP_ERRORS, data_error_verdict
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.protocol.reply import Reply
from mailcarrier.tables.maps import Maps, Match
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.session import NO_WORKAROUNDS, SessionOptions, Workarounds

__all__ = ["Answers", "PixWorkarounds", "ServerQuirks", "is_pix_greeting", "pix_workarounds"]

# What network tables answered for one request: (table parameter, server address) -> the
# match (None: not found), or the lookup error to report as the synchronous lookup would.
Answers = dict[tuple[str, str], Match | Exception | None]
_DISCARD: Final = "discard_ehlo_keyword_address_maps"
_PIX: Final = "pix_workaround_maps"

# The characters of a PIX-mangled greeting (Postfix: strspn(resp, "20 *\t\n")).
_PIX_CHARS: Final = frozenset("20 *\t\n")
DISABLE_ESMTP: Final = "disable_esmtp"
DELAY_DOTCRLF: Final = "delay_dotcrlf"
_ORDER: Final = (DISABLE_ESMTP, DELAY_DOTCRLF)


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", text) if w)


def is_pix_greeting(greeting: Reply) -> bool:
    """The whole greeting, reply codes included, is made of "2", "0", "*" and white space."""
    return all(ch in _PIX_CHARS for ch in "\n".join(greeting.lines))


@dataclass(frozen=True, slots=True)
class PixWorkarounds:
    disable_esmtp: bool = False
    delay_dotcrlf: bool = False

    @property
    def names(self) -> str:
        """Postfix's str_name_mask() text: the enabled names, space-separated."""
        on = {DISABLE_ESMTP: self.disable_esmtp, DELAY_DOTCRLF: self.delay_dotcrlf}
        return " ".join(name for name in _ORDER if on[name])


def pix_workarounds(
    words: tuple[str, ...], *, queued_for: float, threshold: float
) -> PixWorkarounds:
    """The workarounds a list names (unknown words ignored, any case), delay_dotcrlf only for
    a message that has been queued at least `threshold` seconds."""
    names = {w.lower() for w in words}
    return PixWorkarounds(
        disable_esmtp=DISABLE_ESMTP in names,
        delay_dotcrlf=DELAY_DOTCRLF in names and queued_for >= threshold,
    )


class ServerQuirks:
    """The address-keyed tables of one transport, opened once (on first use)."""

    def __init__(
        self,
        agent: AgentSettings,
        *,
        info: Callable[[str], None],
        warning: Callable[[str], None],
    ) -> None:
        self.agent = agent
        self.info = info
        self.warning = warning
        self._discard: Maps | None = None
        self._pix: Maps | None = None

    def _maps(self, which: str) -> Maps:
        if which == _DISCARD:
            if self._discard is None:
                self._discard = self.agent.open_maps(_DISCARD)
            return self._discard
        if self._pix is None:
            self._pix = self.agent.open_maps(_PIX)
        return self._pix

    async def prefetch(self, answers: Answers, peer: Peer) -> None:
        """Ask the network tables among both for `peer`'s address now, on the loop; a
        table that cannot be opened is left for the synchronous step to report."""
        for which in (_DISCARD, _PIX):
            if (which, peer.address) in answers:
                continue
            try:
                maps = self._maps(which)
            except LOOKUP_ERRORS:
                continue
            if not maps.network:
                continue
            try:
                answers[(which, peer.address)] = await maps.find_async(peer.address)
            except LOOKUP_ERRORS as exc:
                answers[(which, peer.address)] = exc

    def _find(self, which: str, peer: Peer, answers: Answers | None) -> Match | None:
        key = (which, peer.address)
        if answers is None or key not in answers:
            maps = self._maps(which)
            return maps.find(peer.address) if maps else None
        known = answers[key]
        if isinstance(known, Exception):
            raise known
        return known

    # --- EHLO keywords ----------------------------------------------------------------
    def session_options(
        self, base: SessionOptions, peer: Peer, queue_id: str, answers: Answers | None = None
    ) -> SessionOptions | Verdict:
        """`base` with the discard list found for the server's address, if any; the 4.3.0
        verdict when the table cannot answer."""
        name = self.agent.name(_DISCARD)
        try:
            found = self._find(_DISCARD, peer, answers)
        except LOOKUP_ERRORS:
            self.warning(f"{queue_id}: {name} map lookup error for {peer.address}")
            return data_error_verdict(peer.namaddr)
        if found is None:
            return base
        return replace(base, discard_keywords=_words(found.value))

    # --- PIX --------------------------------------------------------------------------
    def _pix_words(self, peer: Peer, answers: Answers | None) -> tuple[str, ...]:
        try:
            found = self._find(_PIX, peer, answers)
        except LOOKUP_ERRORS:
            found = None  # best effort only, as in Postfix
        if found is not None:
            return _words(found.value)
        return self.agent.params.pix_workarounds

    def workarounds(
        self,
        greeting: Reply,
        peer: Peer,
        *,
        queue_id: str,
        arrival_time: float,
        now: Callable[[], float],
        answers: Answers | None = None,
    ) -> Workarounds:
        """What the server at `peer` needs, judged from its (2xx) greeting: the PIX
        workarounds when the greeting looks like a PIX, logged as Postfix logs them."""
        if not is_pix_greeting(greeting):
            return NO_WORKAROUNDS
        words = self._pix_words(peer, answers)
        if not words:
            return NO_WORKAROUNDS
        p = self.agent.params
        found = pix_workarounds(
            words, queued_for=now() - arrival_time, threshold=p.pix_workaround_threshold_time
        )
        self.info(f"{queue_id}: enabling PIX workarounds: {found.names} for {peer.relay}")
        return Workarounds(
            # disable_esmtp is an SMTP matter: LMTP always says LHLO.
            disable_esmtp=found.disable_esmtp and not self.agent.is_lmtp,
            dot_delay=p.pix_workaround_delay_time if found.delay_dotcrlf else 0.0,
        )
