"""smtp_requiretls_policy (Postfix 3.11) and RFC 8689's secure-MX rule: tls/requiretls.py."""

from __future__ import annotations

import dataclasses

import pytest

from mailcarrier.config.settings import AgentSettings
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.requiretls import (
    RequireTlsAction,
    mx_authenticated,
    parse_action,
    requiretls_action,
)
from tests.support.settings import make_settings

E, OPP, OS, D = (
    RequireTlsAction.ENFORCE,
    RequireTlsAction.OPPORTUNISTIC,
    RequireTlsAction.OPPORTUNISTIC_STARTTLS,
    RequireTlsAction.DISABLE,
)


@pytest.mark.parametrize(
    ("destination", "action"),
    [
        ("example.net", E),
        ("[mx.example.net]:587", E),
        ("[127.0.0.1]:2525", OPP),
        ("[ipv6:::1]", OPP),
        ("localhost", OPP),
        ("example.org", OPP),  # $mydomain
        ("sub.example.org:25", OPP),  # .$mydomain
        ("notexample.org", E),
    ],
)
async def test_postfix_default_policy(destination: str, action: RequireTlsAction) -> None:
    agent = AgentSettings(make_settings(mydomain="example.org"), "smtp")
    decision = await requiretls_action(agent, destination)
    assert (decision.action, decision.error) == (action, "")


async def test_lmtp_default_is_opportunistic_and_unix_sockets_look_up_myhostname() -> None:
    settings = make_settings(
        myhostname="mc.example", lmtp_requiretls_policy="inline:{{mc.example=disable}}, enforce"
    )
    agent = AgentSettings(settings, "lmtp")
    assert (await requiretls_action(agent, "unix:/run/lmtp")).action is D
    assert (await requiretls_action(agent, "inet:[127.0.0.1]:24")).action is E
    default = AgentSettings(make_settings(), "lmtp")
    assert (await requiretls_action(default, "unix:/run/lmtp")).action is OPP


async def test_first_answer_wins_and_parent_domains_match_fixed_tables() -> None:
    settings = make_settings(
        smtp_requiretls_policy="inline:{{.example.com=opportunistic+starttls}, "
        "{one.example=disable}}, opportunistic"
    )
    agent = AgentSettings(settings, "smtp")
    assert (await requiretls_action(agent, "mx.example.com")).action is OS
    assert (await requiretls_action(agent, "one.example")).action is D
    assert (await requiretls_action(agent, "two.example")).action is OPP


@pytest.mark.parametrize(
    ("value", "warning"),
    [
        ("enforced", 'smtp_requiretls_policy: unknown action "enforced"'),
        (
            "inline:{{x.example=maybe}}",
            'smtp_requiretls_policy: inline:{{x.example=maybe}}: "x.example": unknown action '
            '"maybe"',
        ),
    ],
)
async def test_configuration_errors(value: str, warning: str) -> None:
    agent = AgentSettings(make_settings(smtp_requiretls_policy=value), "smtp")
    decision = await requiretls_action(agent, "x.example")
    assert (decision.error, decision.warning) == ("REQUIRETLS policy configuration error", warning)


def test_parse_action() -> None:
    assert [parse_action(w) for w in ("ENFORCE", "opportunistic+starttls", "nope")] == [
        E,
        OS,
        None,
    ]


@pytest.mark.parametrize(
    ("mx_dnssec_valid", "sts", "expected"),
    [(True, False, True), (None, False, True), (False, False, False), (False, True, True)],
)
def test_mx_authenticated(mx_dnssec_valid: bool | None, sts: bool, expected: bool) -> None:
    """DNSSEC-validated MX, no MX at all (the name is the next hop's own), or MTA-STS
    (`mx_authenticated_by_sts`, set by the MTA-STS resolver once it exists)."""
    policy = dataclasses.replace(TlsPolicy(SecurityLevel.VERIFY), mx_authenticated_by_sts=sts)
    assert mx_authenticated(policy, mx_dnssec_valid) is expected


def test_the_default_policy_names_mydomain_in_a_labels() -> None:
    # Postfix 3.11's default: ${domain_to_ascii{$mydomain}} (config/expand.py).
    from mailcarrier.config.settings import Settings

    settings = Settings.defaults().with_overrides({"mydomain": "bücher.example"})
    policy = settings.params.smtp_requiretls_policy
    assert "{xn--bcher-kva.example=opportunistic}" in policy
    assert "{.xn--bcher-kva.example=opportunistic}" in policy
