"""routing/mtasts.py: discovery of the ``_mta-sts`` TXT record through the loopback DNS server
(CNAMEs followed, no parent-domain walk, malformed sets and DNS failures in one line)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dnslib import RR

from mailcarrier.routing.mtasts import Discovery, discover
from mailcarrier.tls.sts import StsRecord
from tests.support.dns import NO_CHASE, LoopbackDns, ZoneResolver, serve_zone

ZONE = """
_mta-sts.good.test.      300 IN TXT "v=STSv1; id=abc123"
_mta-sts.good.test.      300 IN TXT "v=spf1 -all"
_mta-sts.split.test.     300 IN TXT "v=STSv1; " "id=two;"
_mta-sts.two.test.       300 IN TXT "v=STSv1; id=1"
_mta-sts.two.test.       300 IN TXT "v=STSv1; id=2"
_mta-sts.bad.test.       300 IN TXT "v=STSv1; id=no_underscores"
_mta-sts.alias.test.     300 IN CNAME _mta-sts.good.test.
_mta-sts.dangling.test.  300 IN CNAME policy.elsewhere.test.
policy.elsewhere.test.   300 IN TXT "v=STSv1; id=far"
_mta-sts.parent.test.    300 IN TXT "v=STSv1; id=parent"
sub.parent.test.         300 IN A 192.0.2.1
"""


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    zone = ZoneResolver(records=RR.fromZone(ZONE))
    with serve_zone(zone) as port:
        yield LoopbackDns(port, zone)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("good.test", Discovery(StsRecord("abc123"))),
        ("split.test", Discovery(StsRecord("two"))),
        ("alias.test", Discovery(StsRecord("abc123"))),
        ("nothing.test", Discovery()),
        ("sub.parent.test", Discovery()),  # no walk up to parent.test
        ("two.test", Discovery(problem="_mta-sts.two.test: 2 STSv1 records")),
        (
            "bad.test",
            Discovery(
                problem='_mta-sts.bad.test: malformed id "no_underscores" in record '
                '"v=STSv1; id=no_underscores"'
            ),
        ),
    ],
)
async def test_discover(dns: LoopbackDns, domain: str, expected: Discovery) -> None:
    assert await discover(dns.resolver(), domain) == expected


async def test_an_alias_the_server_does_not_chase_is_followed(
    dns: LoopbackDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.support.dns.NO_CHASE", NO_CHASE | {"_mta-sts.dangling.test."})
    assert await discover(dns.resolver(), "dangling.test") == Discovery(StsRecord("far"))


async def test_a_dns_failure_is_temporary(dns: LoopbackDns) -> None:
    found = await discover(dns.resolver(timeout=0.5), "x.timeout.test")
    assert found == Discovery(
        problem="TXT lookup for _mta-sts.x.timeout.test: timeout", temporary=True
    )
