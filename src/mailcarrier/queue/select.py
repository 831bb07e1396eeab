"""Which queued messages a ``queue`` command acts on: `Selection`, from ``--domain``,
``--sender``, ``--older-than`` and ``--reason``.

Each kind of selection may be given more than once (any of its values matches); different
kinds must all match (AND). ``--domain`` and ``--reason`` are about recipients: a message
is selected when one of its pending recipients (no final verdict yet) is in one of the
domains and has a deferral reason the expression finds. Domains are written as in
access(5): ``example.com`` is that domain, ``.example.com`` its subdomains; ``--sender``
takes those too, or ``user@example.com`` (the whole address), ``user@`` (the local part)
and ``<>`` (the null sender); all compared without regard to case. ``--older-than`` takes
a Postfix time (``90s``, ``30m``, ``2h``, ``1d``, ``1w``; a bare number is seconds) and
selects messages that arrived longer ago than that. ``--reason`` is a Python regular
expression searched for in the reason of the recipient's last deferral. A value that does
not parse is a `UsageError` naming the option (one line, exit 64). Neighbours: admin.py
applies selections; shape.py folds domains the same way for ``queue shape``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailcarrier.config.convert import parse_time
from mailcarrier.errors import UsageError
from mailcarrier.queue.spool import QueueMessage

__all__ = ["Selection", "parse_selection"]


@dataclass(frozen=True, slots=True)
class Selection:
    domains: tuple[str, ...] = ()  # lower case; ".example.com" for subdomains
    senders: tuple[str, ...] = ()  # lower case; "" for the null sender
    older_than: float | None = None  # seconds
    reasons: tuple[re.Pattern[str], ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing asked: every message matches."""
        return not (self.domains or self.senders or self.reasons) and self.older_than is None

    def matches(self, message: QueueMessage, now: float) -> bool:
        env = message.envelope
        if self.older_than is not None and now - env.arrival_time <= self.older_than:
            return False
        if self.senders and not any(_sender_matches(env.sender, s) for s in self.senders):
            return False
        if not (self.domains or self.reasons):
            return True
        return any(self._recipient_matches(message, i) for i in message.pending())

    def _recipient_matches(self, message: QueueMessage, index: int) -> bool:
        address = message.envelope.recipients[index].address
        domain = address.rpartition("@")[2]
        if self.domains and not any(_domain_matches(domain, d) for d in self.domains):
            return False
        if self.reasons:
            state = message.state.states.get(index)
            reason = state.diagnostic if state is not None else ""
            return any(p.search(reason) for p in self.reasons)
        return True


def _domain_matches(domain: str, wanted: str) -> bool:
    domain = domain.lower().rstrip(".")
    if wanted.startswith("."):
        return domain.endswith(wanted)
    return domain == wanted


def _sender_matches(sender: str, wanted: str) -> bool:
    sender = sender.lower()
    if wanted == "":
        return sender == ""
    if "@" not in wanted:
        return bool(sender) and _domain_matches(sender.rpartition("@")[2], wanted)
    if wanted.startswith("@"):
        return _domain_matches(sender.rpartition("@")[2], wanted[1:])
    if wanted.endswith("@"):
        return sender.rpartition("@")[0] + "@" == wanted
    return sender == wanted


def parse_selection(
    domains: Sequence[str] = (),
    senders: Sequence[str] = (),
    older_than: str | None = None,
    reasons: Sequence[str] = (),
) -> Selection:
    """The options as given; `UsageError` for one that does not parse."""
    return Selection(
        domains=tuple(_domain(d) for d in domains),
        senders=tuple(_sender(s) for s in senders),
        older_than=None if older_than is None else _duration(older_than),
        reasons=tuple(_regex(r) for r in reasons),
    )


def _domain(text: str) -> str:
    value = text.strip().lower().rstrip(".")
    if not value.lstrip(".") or "@" in value or any(c.isspace() for c in value):
        raise UsageError(f"bad --domain {text!r}: expected a domain, or .domain for subdomains")
    return value


def _sender(text: str) -> str:
    value = text.strip().lower()
    if value in ("<>", ""):
        return ""
    if value == "@" or any(c.isspace() for c in value) or value.count("@") > 1:
        raise UsageError(
            f"bad --sender {text!r}: expected user@domain, @domain, domain, user@ or <>"
        )
    return value.rstrip(".") if "@" not in value else value


def _duration(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError:
        raise UsageError(
            f"bad --older-than {text!r}: expected a number and a unit (s, m, h, d, w), e.g. 30m"
        ) from None


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"bad --reason {text!r}: {exc}") from None
