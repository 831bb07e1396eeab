"""The per-transport settings a `Session` needs (`SessionOptions`), read once from
configuration: hello name and EHLO/HELO choice, QUIT handling, envelope quoting, EHLO keywords
to ignore, the smtp_reply_filter, and each stage's time limit (Postfix's ``*_timeout``
parameters, named for each stage by `STAGE_TIMEOUTS`) with how it applies (per call or per
request: deadlines.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mailcarrier.config.settings import AgentSettings
from mailcarrier.protocol.reply import LineFilter
from mailcarrier.protocol.stages import Stage
from mailcarrier.tables.maps import Maps

__all__ = ["DEFAULT_TIMEOUT", "STAGE_TIMEOUTS", "SessionOptions"]

# A stage whose time limit the options do not name.
DEFAULT_TIMEOUT = 300.0

# The time limit of each stage: the ``smtp_``-relative name of the parameter that bounds it
# (``helo_timeout`` -> smtp_helo_timeout, lmtp_lhlo_timeout for LMTP). The engine's table,
# as Postfix keeps its xfer_timeouts array in smtp_proto.c, apart from the stage names.
STAGE_TIMEOUTS: Final[dict[Stage, str]] = {
    Stage.CONNECT: "connect_timeout",
    Stage.GREETING: "helo_timeout",
    Stage.EHLO: "helo_timeout",
    Stage.HELO: "helo_timeout",
    Stage.LHLO: "helo_timeout",
    Stage.STARTTLS: "starttls_timeout",
    Stage.AUTH: "helo_timeout",
    Stage.XFORWARD: "xforward_timeout",
    Stage.MAIL: "mail_timeout",
    Stage.RCPT: "rcpt_timeout",
    Stage.DATA: "data_init_timeout",
    Stage.BODY: "data_xfer_timeout",
    Stage.DOT: "data_done_timeout",
    Stage.BDAT: "data_done_timeout",
    Stage.RSET: "rset_timeout",
    Stage.QUIT: "quit_timeout",
    Stage.NOOP: "rset_timeout",
}


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The per-transport settings a session needs, read once from configuration."""

    lmtp: bool = False
    helo_name: str = "localhost"
    always_send_ehlo: bool = True
    never_send_ehlo: bool = False
    skip_quit_response: bool = True
    quote_envelope: bool = True
    discard_keywords: tuple[str, ...] = ()
    timeouts: dict[str, float] = field(default_factory=dict)
    # smtp_reply_filter: rewrites each server reply line before it is parsed.
    reply_filter: LineFilter | None = None
    # smtp_per_request_deadline: a stage's limit is for the whole reply (deadlines.py),
    # and smtp_min_data_rate earns the content its time.
    per_request_deadline: bool = False
    min_data_rate: int = 500
    # Each stage's limit, resolved from `timeouts` once (a read looks it up every time).
    _by_stage: dict[Stage, float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        timeouts = self.timeouts
        by_stage = self._by_stage
        for stage in Stage:
            by_stage[stage] = timeouts.get(STAGE_TIMEOUTS[stage], DEFAULT_TIMEOUT)

    def timeout(self, stage: Stage) -> float:
        return self._by_stage[stage]

    @classmethod
    def from_settings(cls, agent: AgentSettings) -> SessionOptions:
        p = agent.params
        timeouts = {
            "connect_timeout": p.connect_timeout,
            "helo_timeout": p.helo_timeout,
            "mail_timeout": p.mail_timeout,
            "rcpt_timeout": p.rcpt_timeout,
            "data_init_timeout": p.data_init_timeout,
            "data_xfer_timeout": p.data_xfer_timeout,
            "data_done_timeout": p.data_done_timeout,
            "rset_timeout": p.rset_timeout,
            "quit_timeout": p.quit_timeout,
            "starttls_timeout": p.starttls_timeout,
            "xforward_timeout": p.xforward_timeout,
        }
        return cls(
            lmtp=agent.is_lmtp,
            helo_name=p.helo_name,
            always_send_ehlo=p.always_send_ehlo,
            never_send_ehlo=p.never_send_ehlo,
            skip_quit_response=p.skip_quit_response,
            quote_envelope=p.quote_rfc821_envelope,
            discard_keywords=p.discard_ehlo_keywords,
            timeouts=timeouts,
            reply_filter=_line_filter(agent.open_maps("reply_filter")),
            per_request_deadline=p.per_request_deadline,
            min_data_rate=p.min_data_rate,
        )


def _line_filter(maps: Maps) -> LineFilter | None:
    """smtp_reply_filter (postconf(5)): the table's result replaces the reply line it matched;
    the search string is the line as received, without its CRLF."""
    if not maps:
        return None

    def apply(line: str) -> str:
        found = maps.find(line)
        return line if found is None else found.value

    return apply
