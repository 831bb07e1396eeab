"""Policy resolution (tls/policy.py) and security levels (tls/levels.py)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("destination", "asked"),
    [
        ("example.com", ["example.com", ".com"]),
        ("example.com.", ["example.com.", "example.com", ".com"]),
        ("Example.COM:25", ["example.com:25", "example.com", ".com"]),
        ("mx.example.net", ["mx.example.net", ".example.net", ".net"]),
        ("[mx.example.com]:587", ["[mx.example.com]:587", "[mx.example.com]"]),
        ("[10.0.0.2]", ["[10.0.0.2]"]),
    ],
)
async def test_each_policy_key_is_asked_once(
    monkeypatch: pytest.MonkeyPatch, destination: str, asked: list[str]
) -> None:
    """The exact next hop, then the domain and its parents, each key once: a domain that
    was an exact key is not asked again (a network table would be queried twice)."""
    from mailcarrier.tables.simple import InlineTable
    from mailcarrier.tls.policy import resolve_policy_async

    keys: list[str] = []
    lookup = InlineTable.lookup

    def spy(self: InlineTable, key: str) -> str | None:
        keys.append(key)
        return lookup(self, key)

    monkeypatch.setattr(InlineTable, "lookup", spy)
    agent = _agent(smtp_tls_policy_maps="inline:{ other.test=encrypt }")
    assert resolve_policy(agent, destination).level is SecurityLevel.NONE
    assert keys == asked
    keys.clear()
    assert (await resolve_policy_async(agent, destination)).level is SecurityLevel.NONE
    assert keys == asked


_LABELS = st.sampled_from(["example", "com", "mx", "a", "b", "org", "EXAMPLE", ""])
_DESTINATIONS = st.builds(
    lambda labels, dot, port, bracket: (f"[{labels}]" if bracket else labels + dot) + port,
    st.lists(_LABELS, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["", "."]),
    st.sampled_from(["", ":25", ":587"]),
    st.booleans(),
)
_ENTRIES = st.lists(
    st.sampled_from(
        ["example.com", ".com", "example", "mx.example.com", ".example.com", "[mx.example]",
         "[mx.example]:587", "a.b", ".b", "example.com:25", "mx.example.org", ".org", "."]
    ),
    max_size=5,
    unique=True,
)  # fmt: skip


@pytest.fixture(scope="module")
def parents_pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A pattern table that would answer every parent-domain key: never asked with one."""
    path = tmp_path_factory.mktemp("policy") / "parents"
    path.write_text("/^\\./ encrypt\n")
    return f"regexp:{path}"


@settings(deadline=None)
@given(destination=_DESTINATIONS, entries=_ENTRIES)
def test_policy_search_is_exact_keys_then_the_domain_search(
    parents_pattern: str, destination: str, entries: list[str]
) -> None:
    """The search order as two searches of tables/maps.py: `find` of each exact next-hop
    key, then `find_domain` of the next-hop domain (which starts with the domain itself)
    unless the next hop is a [literal]. The policy found is that search's first answer."""
    from mailcarrier.tls.policy import _policy_keys, resolve_policy_async

    levels = ["encrypt", "may", "none", "verify", "secure"]
    body = ", ".join(f"{{{key} = {levels[n % 5]}}}" for n, key in enumerate(entries))
    table = f"inline:{{ {body} }}" if entries else "inline:{ }"
    agent = _agent(
        smtp_tls_policy_maps=f"{table}, {parents_pattern}", smtp_tls_security_level="dane"
    )
    maps = agent.open_maps("tls_policy_maps")
    found = next(
        (match for key in _policy_keys(destination) if (match := maps.find(key)) is not None),
        None,
    )
    if found is None and not destination.strip().startswith("["):
        found = maps.find_domain(nexthop_domain(destination))
    expected = SecurityLevel.DANE if found is None else parse_level(found.value)
    policy = resolve_policy(agent, destination)
    assert policy.level is expected
    assert asyncio.run(resolve_policy_async(agent, destination)) is policy
