"""The values a `Session` works with: the envelope it sends (`Envelope`), a refused session
(`HandshakeFailure`) and the raw outcome of a mail transaction (`TransactionResult`: replies
and at most one transport error, never a verdict; delivery/outcome.py decides what they
mean for each recipient). transport/session.py re-exports them. `mail_command`,
`rcpt_commands` and `xforward_commands` make an envelope's commands for one server, with
the parameters it announced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mailcarrier.content.mime import ContentError
from mailcarrier.errors import TransportError
from mailcarrier.protocol.commands import MailFrom, RcptTo, Xforward
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.protocol.reply import Reply
from mailcarrier.stages import Stage
from mailcarrier.status import fast_init

__all__ = [
    "Envelope",
    "HandshakeFailure",
    "TransactionResult",
    "mail_command",
    "rcpt_commands",
    "xforward_commands",
]

# Postfix smtp_proto.c: the first of its two XFORWARD commands carries these attributes.
_XFORWARD_FIRST: Final = frozenset({"NAME", "ADDR", "PORT"})


@fast_init
@dataclass(frozen=True, slots=True)
class Envelope:
    """A mail transaction's envelope, already reduced to what goes on the wire."""

    sender: str
    recipients: tuple[RcptTo, ...]
    size: int | None = None  # sent as SIZE= when the server announced SIZE
    body: str = ""  # BODY= value when the server announced 8BITMIME
    smtputf8: bool = False
    # RFC 8689 REQUIRETLS on MAIL FROM (the caller checked that the server announced it
    # after STARTTLS: delivery/requiretls_step.py).
    requiretls: bool = False
    ret: str = ""  # DSN RET= when the server announced DSN
    envid: str = ""
    # XFORWARD attributes (name, value) in Postfix's order; sent when the server announced
    # XFORWARD, only those it listed. Empty: no XFORWARD.
    xforward: tuple[tuple[str, str], ...] = ()
    # AUTH= on MAIL (RFC 4954 5) when the server announced AUTH; "" is AUTH=<>.
    auth: str | None = None
    # RFC 3030: send the content in BDAT chunks instead of DATA (the caller checked that the
    # server announced CHUNKING; the content must then not be dot-stuffed).
    bdat: bool = False
    # An address probe (Postfix's trace-only request): the RCPTs are followed by RSET, not
    # by DATA or BDAT; no content is sent.
    probe: bool = False
    # smtp_address_verify_target = data: a probe sends DATA instead of RSET, and after 354
    # the session is dropped without a word (the server waits for content).
    probe_data: bool = False


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """The server refused the session (greeting or EHLO/HELO/LHLO)."""

    stage: Stage
    reply: Reply


@dataclass(slots=True)
class TransactionResult:
    """Raw outcome of one mail transaction, indexed like `Envelope.recipients`."""

    mail: Reply | None = None
    xforward: list[Reply] = field(default_factory=list)  # one per XFORWARD command sent
    rcpt: list[Reply | None] = field(default_factory=list)
    data: Reply | None = None
    # SMTP: one reply for all accepted recipients; LMTP: one per accepted recipient.
    dot: list[Reply | None] = field(default_factory=list)
    error: TransportError | None = None
    # The content could not be sent as it is (content/mime.py); the session was abandoned.
    content_error: ContentError | None = None
    content_sent: bool = False
    started: float = 0.0
    # The content went as BDAT chunks (RFC 3030): `dot` holds the replies to BDAT LAST, or
    # to the first refused chunk.
    bdat: bool = False
    # The reply to a RSET that checked a reused session (see `transaction(reset_first=)`).
    rset: Reply | None = None
    # The reply to the RSET that ends an address probe (`Envelope.probe`) after its RCPTs
    # (Postfix's "final RSET command"); it decides no recipient's verdict.
    final_rset: Reply | None = None

    @property
    def accepted(self) -> list[int]:
        return [i for i, r in enumerate(self.rcpt) if r is not None and r.is_success]

    @property
    def has_accepted(self) -> bool:
        """Whether any recipient was accepted (`bool(accepted)`, without the list)."""
        for r in self.rcpt:  # noqa: SIM110 - a loop, not any() over a generator: hot path
            if r is not None and r.is_success:
                return True
        return False

    @property
    def reset_failed(self) -> bool:
        """The RSET check of a reused session failed (refused, or the connection was dead):
        nothing of the transaction counts, and the session must be dropped."""
        if self.rset is not None:
            return not self.rset.is_success
        # The check goes before MAIL: a RSET that failed once MAIL was answered is a
        # probe's final one, and the transaction it ends counts.
        return self.error is not None and self.error.stage is Stage.RSET and self.mail is None


def mail_command(envelope: Envelope, caps: Capabilities, quote: bool) -> MailFrom:
    """MAIL FROM with the parameters the server announced (`quote`:
    smtp_quote_rfc821_envelope)."""
    return MailFrom(
        envelope.sender,
        size=envelope.size if caps.size and envelope.size is not None else None,
        body=envelope.body if caps.eightbitmime else "",
        smtputf8=envelope.smtputf8 and caps.smtputf8,
        ret=envelope.ret if caps.dsn else "",
        envid=envelope.envid if caps.dsn else "",
        auth=envelope.auth if caps.auth else None,
        quote=quote,
        requiretls=envelope.requiretls,
    )


def rcpt_commands(
    envelope: Envelope, caps: Capabilities, quote: bool
) -> tuple[list[RcptTo], dict[int, int]]:
    """The RCPT commands (NOTIFY and ORCPT when the server announced DSN), and the position
    of each in the envelope by its id(): replies are matched to the command in flight.

    An envelope's own RcptTo is used as it is when it already says what would go out (the
    usual case); the same object twice in one envelope would make two commands in flight
    indistinguishable, so then each gets its own copy.
    """
    dsn = caps.dsn
    given = envelope.recipients
    rcpts = [
        r if r.quote == quote and (dsn or not (r.notify or r.orcpt)) else _rcpt(r, dsn, quote)
        for r in given
    ]
    position = {id(cmd): i for i, cmd in enumerate(rcpts)}
    if len(position) < len(rcpts):
        rcpts = [_rcpt(r, dsn, quote) for r in given]
        position = {id(cmd): i for i, cmd in enumerate(rcpts)}
    return rcpts, position


def _rcpt(rcpt: RcptTo, dsn: bool, quote: bool) -> RcptTo:
    return RcptTo(
        rcpt.address,
        notify=rcpt.notify if dsn else "",
        orcpt=rcpt.orcpt if dsn else "",
        quote=quote,
        index=rcpt.index,
    )


def xforward_commands(envelope: Envelope, caps: Capabilities) -> list[Xforward]:
    """Postfix sends the attributes the server listed in two commands, to keep each line
    short: NAME, ADDR and PORT first, then PROTO, HELO, IDENT and SOURCE."""
    if not envelope.xforward:
        return []
    listed = set(caps.xforward)
    wanted = [(n, v) for n, v in envelope.xforward if n in listed]
    first = tuple((n, v) for n, v in wanted if n in _XFORWARD_FIRST)
    second = tuple((n, v) for n, v in wanted if n not in _XFORWARD_FIRST)
    return [Xforward(group) for group in (first, second) if group]
