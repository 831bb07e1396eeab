"""TransportProfile (delivery/profile.py): its SASL password and TLS policy tables are opened
when it is made (smtp(8) opens them in pre_init), the smtp transport's when the agent is."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.profile import TransportProfile
from mailcarrier.log import MemoryLog
from mailcarrier.tables.maps import Maps
from tests.support.settings import make_settings


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The MAPS parameters opened, in order."""
    seen: list[str] = []
    real = Settings.open_maps

    def spy(self: Settings, name: str) -> Maps:
        seen.append(name)
        return real(self, name)  # type: ignore[arg-type]

    monkeypatch.setattr(Settings, "open_maps", spy)
    return seen


def test_the_agent_opens_the_smtp_tables_when_it_starts(tmp_path: Path, opened: list[str]) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("[relay.example]:587 u:p\n")
    settings = make_settings(
        {"smtp_sasl_auth_enable": "yes", "smtp_sasl_password_maps": f"texthash:{passwd}"}
    )
    DeliveryAgent(settings, log=MemoryLog())
    assert opened == ["smtp_tls_policy_maps", "smtp_tls_per_site", "smtp_sasl_password_maps"]


def test_no_password_table_without_sasl(opened: list[str]) -> None:
    TransportProfile(make_settings({}), "lmtp", log=MemoryLog())
    assert opened == ["lmtp_tls_policy_maps", "lmtp_tls_per_site"]


def test_a_table_that_cannot_be_opened_is_left_for_its_step(
    tmp_path: Path, opened: list[str]
) -> None:
    settings = make_settings(
        {
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": f"hash:{tmp_path / 'missing'}",
            "smtp_tls_policy_maps": f"cdb:{tmp_path / 'absent'}",
        }
    )
    DeliveryAgent(settings, log=MemoryLog())  # no exception: reported at delivery
    assert opened == ["smtp_tls_policy_maps", "smtp_tls_per_site", "smtp_sasl_password_maps"]
