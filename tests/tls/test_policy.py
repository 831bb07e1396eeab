"""Policy resolution (tls/policy.py) and security levels (tls/levels.py)."""

from __future__ import annotations

import pytest

from mailcarrier.tls.levels import SecurityLevel, parse_level
from mailcarrier.tls.policy import nexthop_domain, parse_policy_entry, resolve_policy
from tests.support.settings import make_settings


def _agent(**params: str):  # type: ignore[no-untyped-def]
    return make_settings(params).for_transport("smtp")


def test_level_properties() -> None:
    assert not SecurityLevel.MAY.mandatory and SecurityLevel.ENCRYPT.mandatory
    assert SecurityLevel.VERIFY.must_trust and not SecurityLevel.FINGERPRINT.must_trust
    assert SecurityLevel.DANE.must_match and not SecurityLevel.ENCRYPT.must_match
    assert parse_level("DANE-only") is SecurityLevel.DANE_ONLY and parse_level("x") is None


@pytest.mark.parametrize(
    ("params", "level"),
    [
        ({}, SecurityLevel.NONE),
        ({"smtp_use_tls": "yes"}, SecurityLevel.MAY),
        ({"smtp_enforce_tls": "yes"}, SecurityLevel.VERIFY),
        ({"smtp_enforce_tls": "yes", "smtp_tls_enforce_peername": "no"}, SecurityLevel.ENCRYPT),
        ({"smtp_tls_security_level": "may", "smtp_enforce_tls": "yes"}, SecurityLevel.MAY),
    ],
)
def test_obsolete_switches(params: dict[str, str], level: SecurityLevel) -> None:
    assert resolve_policy(_agent(**params), "example.com").level is level


@pytest.mark.parametrize(
    ("table", "global_params", "level"),
    [
        ("{ example.com=NONE }", {"smtp_enforce_tls": "yes"}, SecurityLevel.NONE),
        ("{ example.com=MAY }", {"smtp_enforce_tls": "yes"}, SecurityLevel.VERIFY),
        ("{ example.com=MAY }", {}, SecurityLevel.MAY),
        ("{ example.com=MUST_NOPEERMATCH }", {}, SecurityLevel.ENCRYPT),
        ("{ mx.example.com=MUST }", {}, SecurityLevel.VERIFY),
    ],
)
def test_per_site(table: str, global_params: dict[str, str], level: SecurityLevel) -> None:
    agent = _agent(smtp_tls_per_site="inline:" + table, **global_params)
    assert resolve_policy(agent, "example.com", "mx.example.com").level is level


def test_policy_maps_keys_and_attributes() -> None:
    table = (
        "inline:{ {[mx.example.com]:587 = encrypt protocols=>=TLSv1.2:!TLSv1.3 ciphers=high},"
        " {.example.org = secure match=nexthop:.example.org connection_reuse=yes},"
        " {fp.example = fingerprint match=AA:BB|CC:DD} }"
    )
    agent = _agent(smtp_tls_policy_maps=table, smtp_tls_security_level="may")
    p = resolve_policy(agent, "[mx.example.com]:587")
    assert (p.level, p.protocols, p.ciphers) == (
        SecurityLevel.ENCRYPT,
        (">=TLSv1.2", "!TLSv1.3"),
        "high",
    )
    p = resolve_policy(agent, "a.b.example.org")
    assert p.level is SecurityLevel.SECURE and p.matches == ("nexthop", ".example.org")
    assert p.connection_reuse
    assert resolve_policy(agent, "example.org").level is SecurityLevel.MAY  # only subdomains
    assert resolve_policy(agent, "fp.example").matches == ("AA:BB", "CC:DD")
    assert resolve_policy(agent, "other.example").level is SecurityLevel.MAY


def test_mandatory_levels_use_mandatory_parameters() -> None:
    agent = _agent(
        smtp_tls_security_level="encrypt",
        smtp_tls_mandatory_protocols=">=TLSv1.2",
        smtp_tls_protocols="TLSv1",
        smtp_tls_mandatory_ciphers="high",
    )
    p = resolve_policy(agent, "example.com")
    assert (p.protocols, p.ciphers) == ((">=TLSv1.2",), "high")


def test_bad_entries() -> None:
    assert parse_policy_entry("sometimes")[2]
    assert parse_policy_entry("verify colour=blue")[2]
    agent = _agent(smtp_tls_policy_maps="inline:{ {x.example = encrypt connection_reuse=maybe} }")
    assert resolve_policy(agent, "x.example").error


def test_nexthop_domain() -> None:
    assert nexthop_domain("[MX.Example.com]:587") == "mx.example.com"
    assert nexthop_domain("example.com:25") == "example.com"
    assert nexthop_domain("Example.COM.") == "example.com"


_POLICY_TABLE = (
    "inline:{ {[mx.example.com]:587 = encrypt protocols=>=TLSv1.2}, {example.com = may},"
    " {.example.org = secure match=nexthop}, {bad.example = verify nonsense=1},"
    " {[10.0.0.1] = none} }"
)


@pytest.mark.parametrize(
    "destination",
    ["[mx.example.com]:587", "[mx.example.com]", "example.com", "example.com:25",
     "a.b.example.org", "example.org", "bad.example", "[10.0.0.1]:25", "other.test"],
)  # fmt: skip
async def test_async_resolution_is_the_synchronous_one(destination: str) -> None:
    """resolve_policy_async() (table answers parsed once per configuration, the rest found
    once) gives what resolve_policy() gives, the same policy object each time."""
    from mailcarrier.tls.policy import resolve_policy_async

    agent = _agent(smtp_tls_policy_maps=_POLICY_TABLE, smtp_tls_security_level="may")
    found = await resolve_policy_async(agent, destination, "mx.example.com")
    assert found == resolve_policy(agent, destination, "mx.example.com")
    assert found.source == resolve_policy(agent, destination).source
    assert await resolve_policy_async(agent, destination) is found  # parsed once
    # A reload is a new Settings object: its answers are parsed again, alike.
    again = _agent(smtp_tls_policy_maps=_POLICY_TABLE, smtp_tls_security_level="may")
    fresh = await resolve_policy_async(again, destination)
    assert fresh == found


def test_policy_without_tables_is_found_once() -> None:
    agent = _agent(smtp_tls_security_level="encrypt")
    first = resolve_policy(agent, "example.com")
    assert resolve_policy(agent, "[other.example]:587") is first
    assert first.level is SecurityLevel.ENCRYPT and first.source == "smtp_tls_security_level"
