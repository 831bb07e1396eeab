"""Tests of mailcarrier.transport.options: each stage's time limit is a Postfix parameter.

The stage -> parameter table is the engine's (Postfix keeps xfer_timeouts in smtp_proto.c);
`SessionOptions` resolves it once from configuration, for SMTP and for the LMTP mirrors.
"""

from __future__ import annotations

import pytest

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.stages import Stage
from mailcarrier.transport.options import DEFAULT_TIMEOUT, STAGE_TIMEOUTS, SessionOptions

# The smtp_*_timeout parameters of smtp(8) (lmtp_* mirrors them; helo -> lmtp_lhlo_timeout).
POSTFIX_TIMEOUTS = {
    "connect_timeout",
    "helo_timeout",
    "starttls_timeout",
    "xforward_timeout",
    "mail_timeout",
    "rcpt_timeout",
    "data_init_timeout",
    "data_xfer_timeout",
    "data_done_timeout",
    "rset_timeout",
    "quit_timeout",
}


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.name)
def test_every_stage_has_a_timeout(stage: Stage) -> None:
    assert STAGE_TIMEOUTS[stage] in POSTFIX_TIMEOUTS


@pytest.mark.parametrize(
    ("stage", "timeout"),
    [
        (Stage.CONNECT, "connect_timeout"),
        (Stage.GREETING, "helo_timeout"),
        (Stage.EHLO, "helo_timeout"),
        (Stage.HELO, "helo_timeout"),
        (Stage.LHLO, "helo_timeout"),
        (Stage.STARTTLS, "starttls_timeout"),
        (Stage.XFORWARD, "xforward_timeout"),
        (Stage.MAIL, "mail_timeout"),
        (Stage.RCPT, "rcpt_timeout"),
        (Stage.DATA, "data_init_timeout"),
        (Stage.BODY, "data_xfer_timeout"),
        (Stage.DOT, "data_done_timeout"),
        (Stage.RSET, "rset_timeout"),
        (Stage.QUIT, "quit_timeout"),
    ],
)
def test_time_limits_are_postfix_parameters(stage: Stage, timeout: str) -> None:
    assert STAGE_TIMEOUTS[stage] == timeout


@pytest.mark.parametrize("transport", ["smtp", "lmtp"])
def test_every_named_parameter_is_read_from_configuration(transport: str) -> None:
    settings = Settings.defaults().with_overrides(
        {"smtp_rcpt_timeout": "17s", "lmtp_rcpt_timeout": "17s", "lmtp_lhlo_timeout": "19s"}
    )
    agent = AgentSettings(settings, transport)
    options = SessionOptions.from_settings(agent)
    for stage, name in STAGE_TIMEOUTS.items():
        assert options.timeout(stage) == getattr(agent.params, name), stage
    assert options.timeout(Stage.RCPT) == 17
    if transport == "lmtp":
        assert options.timeout(Stage.LHLO) == options.timeout(Stage.GREETING) == 19


def test_a_stage_whose_parameter_is_not_given_gets_the_default() -> None:
    options = SessionOptions(timeouts={"rcpt_timeout": 5.0})
    assert options.timeout(Stage.RCPT) == 5.0
    assert options.timeout(Stage.MAIL) == DEFAULT_TIMEOUT
