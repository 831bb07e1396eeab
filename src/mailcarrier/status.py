"""Delivery status values: what happened to each recipient, as data.

A `RecipientStatus` is the one verdict a delivery attempt gives a recipient (sent, deferred
or bounced, with an RFC 3463 enhanced status code, the diagnostic text and the relay); a
`DeliveryResult` holds one per recipient of a request. These are plain values: the protocol
layer reports replies, `delivery/trouble.py` turns them into statuses, `log.py` prints them in
Postfix's format and `cli.py` turns them into JSON and an exit code. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from mailcarrier.printable import json_safe

__all__ = [
    "ACTION_FORWARDED",
    "EX_CONFIG",
    "EX_DATAERR",
    "EX_OK",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "Counts",
    "Delays",
    "DeliveryResult",
    "DeliveryStatus",
    "HopStatus",
    "RecipientStatus",
    "TlsSession",
    "default_dsn",
    "fast_init",
    "is_valid_dsn",
    "remote_mta",
    "server_reply",
]

_T = TypeVar("_T")

# sysexits(3)
EX_OK: Final = 0
EX_USAGE: Final = 64
EX_DATAERR: Final = 65
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_TEMPFAIL: Final = 75
EX_CONFIG: Final = 78

# Not an RFC 3464 action: a success whose DSN request went on with the message (never printed).
ACTION_FORWARDED: Final = "forwarded"

# RFC 3463: class "." subject "." detail; class 2, 4 or 5; subject 1-3 digits; detail 1-3 digits.
_DSN_RE: Final = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def is_valid_dsn(text: str) -> bool:
    """True when `text` is exactly an RFC 3463 status code such as ``5.1.1``."""
    return _DSN_RE.fullmatch(text) is not None


def default_dsn(code: int) -> str:
    """The enhanced code Postfix assumes when a server sends none: X.0.0 from the reply class."""
    first = code // 100
    return f"{first}.0.0" if first in (2, 4, 5) else "5.5.0"


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"


_FACTORY: Final = _Factory()


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass a quicker `__init__`, for the values made for every
    message (statuses, envelopes, commands, protocol events).

    The generated `__init__` of a frozen dataclass sets each field through
    ``object.__setattr__``; this one calls the slot's own setter, which is what that ends up
    doing, in about 60% of the time. Same signature, defaults, default factories and
    `__post_init__` call; the instances stay immutable (`__setattr__` still refuses), and
    equality, hashing, repr, `dataclasses.replace()` and pickling are the dataclass's own.
    A class with init=False, keyword-only or InitVar fields is returned unchanged.
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a slotted dataclass, not {cls!r}")
    params: list[str] = []
    body: list[str] = []
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    for f in dataclasses.fields(cls):
        if not f.init or f.kw_only:
            return cls
        owner = next(k for k in cls.__mro__ if f.name in k.__dict__)
        namespace[f"_set_{f.name}"] = owner.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            body.append(f"if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"_set_{f.name}(self, {f.name})")
    names = [p.partition("=")[0] for p in params]
    if list(inspect.signature(cls.__init__).parameters)[1:] != names:
        return cls  # InitVar pseudo-fields, or anything else this does not reproduce
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "".join(
        f"    {line}\n" for line in body or ["pass"]
    )
    exec(source, namespace)  # as dataclasses itself makes __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


class DeliveryStatus(enum.StrEnum):
    """The final verdict for a recipient in one delivery attempt."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


@fast_init
@dataclass(frozen=True, slots=True)
class Delays:
    """Postfix's ``delays=a/b/c/d``: before the queue manager, in the queue manager,
    connection set-up (DNS, connect, greeting, EHLO, TLS), and transmission."""

    before_qmgr: float = 0.0
    in_qmgr: float = 0.0
    conn_setup: float = 0.0
    transmission: float = 0.0

    @property
    def total(self) -> float:
        return self.before_qmgr + self.in_qmgr + self.conn_setup + self.transmission

    def as_list(self) -> list[float]:
        return [
            round(self.before_qmgr, 6),
            round(self.in_qmgr, 6),
            round(self.conn_setup, 6),
            round(self.transmission, 6),
        ]


@dataclass(frozen=True, slots=True)
class TlsSession:
    """The TLS session a verdict was given over, as Postfix's "TLS connection established"
    line names it: trust (``Verified``, ``Trusted``, ``Untrusted``, ``Anonymous``),
    protocol version, cipher and its secret bits."""

    trust: str
    protocol: str
    cipher: str
    bits: int


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient's verdict. `relay` is ``host[addr]:port`` or ``none``; `diagnostic` is the
    remote reply or the local reason, exactly as it appears in parentheses in the log line."""

    address: str
    status: DeliveryStatus
    dsn: str
    diagnostic: str
    relay: str = "none"
    delays: Delays = field(default_factory=Delays)
    conn_use: int = 0  # 0: no connection was reached
    orig_address: str = ""
    # The RFC 3464 action. For a success: "relayed" when the next hop did not announce DSN
    # (a NOTIFY=SUCCESS notice is ours to send), "delivered" for final delivery (LMTP with
    # lmtp_assume_final), or ACTION_FORWARDED when the next hop took the DSN request along
    # with the message (no local success notice: the notice is the next hop's to send).
    action: str = ""
    # Postfix 3.11's TLS feature status (tls/features.py): "may", "may:none", "!encrypt",
    # "dane?"; empty when no TLS policy was applied (no session). Logged as "tls=...".
    tls: str = ""
    # A bounce that soft_bounce turned into this deferral: logged ``status=SOFTBOUNCE``, as
    # Postfix's bounce_append() logs it (the JSON status stays "deferred").
    soft_bounced: bool = False
    # The TLS session of the verdict, for the event record (events.py); None without one.
    # Not part of equality: it describes the connection, not the verdict.
    tls_session: TlsSession | None = field(default=None, compare=False, repr=False)

    @property
    def delay(self) -> float:
        return self.delays.total

    def to_json(self) -> dict[str, object]:
        """The JSON object of `deliver --json`; strings are JSON-safe (printable.py).
        ``tls`` (the tls= log field: which TLS policy applied, e.g. ``sts``, ``dane``,
        ``may``) is there only when a TLS policy was applied."""
        value: dict[str, object] = {
            "address": self.address,
            "status": self.status.value,
            "dsn": self.dsn,
            "relay": self.relay,
            "diagnostic": self.diagnostic,
            "delay": round(self.delay, 6),
            "delays": self.delays.as_list(),
            "conn_use": self.conn_use,
        }
        if self.tls:
            value["tls"] = self.tls
        return json_safe(value)


@dataclass(frozen=True, slots=True)
class HopStatus:
    """A site-level failure the agent reports with its result (Postfix's hop status): the
    next hop could not be reached or would not talk (connect, greeting, HELO, TLS, SASL, a
    lost or timed-out session) and recipients were deferred for it. The queue manager takes
    negative concurrency feedback, and suspends the destination, only from these; a 4xx to
    one recipient, to MAIL or to the content is not one."""

    dsn: str
    reason: str


# What an agent did besides marking recipients, for metrics (observe/): an event and its
# labels, e.g. ("connection", "opened"), ("tls", "may", "verified"), ("dns", "MX", "ok"),
# and how many times. Agent-wide, since the agent's previous result: results delivered
# concurrently share them out, and their sum is exact. delivery/tally.py names the events.
Counts = tuple[tuple[tuple[str, ...], int], ...]


@fast_init
@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one delivery request: one `RecipientStatus` per recipient, in order,
    and the hop status when the site itself failed."""

    queue_id: str
    recipients: tuple[RecipientStatus, ...]
    hop_status: HopStatus | None = None
    # Fleet mode: the destination was at a fleet limit (or the shared state server away)
    # before every recipient was marked: try it again in this many seconds. `recipients`
    # then holds only those marked; the others are neither deferred nor feedback.
    busy: float | None = None
    counts: Counts = ()
    # ... and it was busy because the shared state server could not be asked (`run --once`
    # leaves such mail queued rather than waiting for Redis to come back).
    fleet_unavailable: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "queue_id": json_safe(self.queue_id),
            "recipients": [r.to_json() for r in self.recipients],
        }

    @property
    def exit_code(self) -> int:
        """sysexits: 0 all sent; 75 any deferred; 69 any bounced and none deferred."""
        states = {r.status for r in self.recipients}
        if DeliveryStatus.DEFERRED in states:
            return EX_TEMPFAIL
        if DeliveryStatus.BOUNCED in states:
            return EX_UNAVAILABLE
        return EX_OK

    def by_status(self, status: DeliveryStatus) -> list[RecipientStatus]:
        return [r for r in self.recipients if r.status is status]


def remote_mta(relay: str) -> str:
    """The server's host name in a relay (``host[addr]:port`` -> ``host``); "" for ``none``:
    RFC 3464's Remote-MTA, Postfix's DSN mta_mname."""
    if not relay or relay == "none":
        return ""
    host = relay.split("[", 1)[0]
    return host or relay


def server_reply(diagnostic: str) -> str | None:
    """The server's reply inside a diagnostic (``host h[a] said: <reply> (in reply to ...)``),
    or None when no server said it (a local reason): RFC 3464's Diagnostic-Code ``smtp;``,
    Postfix's DSN diag_text."""
    _, said, rest = diagnostic.partition(" said: ")
    if not said:
        return None
    return rest.rsplit(" (in reply to ", 1)[0]
