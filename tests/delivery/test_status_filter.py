"""smtp_delivery_status_filter (delivery/status_filter.py) with a real regexp table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.delivery.status_filter import StatusFilter
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.status import DeliveryStatus
from mailcarrier.tables.maps import open_maps

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
RULES = r"""
/^5(\.\d+\.\d+) (.*Mailbox full.*)$/  4$1 $2
/^2\.0\.0 (.*) Ok: queued as (\S+)$/  2.0.0 $1 accepted as $2
/^4\.\d+\.\d+ .*flip to success/      2.0.0 no
/^5\.\d+\.\d+ .*garbage/              not a status
/^4\.4\.1 .*/                         5.4.1 gave up on this one
"""


@pytest.fixture
def status_filter(tmp_path: Path) -> tuple[StatusFilter, list[str]]:
    table = tmp_path / "status_filter"
    table.write_text(RULES)
    warnings: list[str] = []
    maps = open_maps(f"regexp:{table}")
    return StatusFilter(maps, "smtp_delivery_status_filter", warnings.append), warnings


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (
            Verdict(BOUNCED, "5.2.2", "host h[a] said: 552 5.2.2 Mailbox full"),
            Verdict(DEFERRED, "4.2.2", "host h[a] said: 552 5.2.2 Mailbox full"),
        ),
        (
            Verdict(SENT, "2.0.0", "250 2.0.0 Ok: queued as 4Zx9"),
            Verdict(SENT, "2.0.0", "250 2.0.0 accepted as 4Zx9"),
        ),
        (
            Verdict(DEFERRED, "4.4.1", "connect to h[a]:25: Connection refused"),
            Verdict(BOUNCED, "5.4.1", "gave up on this one"),
        ),
        (
            Verdict(BOUNCED, "5.1.1", "host h[a] said: 550 no such user"),
            Verdict(BOUNCED, "5.1.1", "host h[a] said: 550 no such user"),
        ),
    ],
)
def test_filter_replaces_code_and_text(
    status_filter: tuple[StatusFilter, list[str]], verdict: Verdict, expected: Verdict
) -> None:
    apply, warnings = status_filter
    assert apply(verdict) == expected
    assert warnings == []


def test_class_change_between_success_and_failure_is_refused(
    status_filter: tuple[StatusFilter, list[str]],
) -> None:
    apply, warnings = status_filter
    verdict = Verdict(DEFERRED, "4.3.0", "please flip to success")
    assert apply(verdict) == verdict
    assert warnings == [
        "smtp_delivery_status_filter: status code class change is not allowed: 4.3.0 -> 2.0.0"
    ]


def test_malformed_result_is_ignored_with_a_warning(
    status_filter: tuple[StatusFilter, list[str]],
) -> None:
    apply, warnings = status_filter
    verdict = Verdict(BOUNCED, "5.0.0", "garbage")
    assert apply(verdict) == verdict
    assert warnings == ["smtp_delivery_status_filter: bad status code: not a status"]
