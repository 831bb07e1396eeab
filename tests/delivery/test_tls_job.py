"""SNI of a TLS job (delivery/tls_job.py): in A-labels, as the names DNS looked up."""

from __future__ import annotations

import pytest

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.delivery.tls_job import TlsClient
from mailcarrier.log import MemoryLog
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.transport.connection import Peer


@pytest.mark.parametrize(
    ("servername", "level", "expected"),
    [
        ("nexthop", SecurityLevel.ENCRYPT, "xn--fa-hia.de"),
        ("hostname", SecurityLevel.ENCRYPT, "mx.xn--bcher-kva.example"),
        ("smtp.faß.de", SecurityLevel.ENCRYPT, "smtp.xn--fa-hia.de"),
        ("", SecurityLevel.DANE, "mx.xn--bcher-kva.example"),
        ("", SecurityLevel.ENCRYPT, None),
        ("ab--c.bücher.example", SecurityLevel.ENCRYPT, None),  # IDNA refuses: no SNI
    ],
)
def test_servername_is_sent_in_a_labels(
    servername: str, level: SecurityLevel, expected: str | None
) -> None:
    agent = AgentSettings(Settings.defaults(), "smtp")
    job = TlsClient().job(
        agent, "faß.de:25", log=MemoryLog(), resolver=lambda: None, preactive_delay=0.0
    )
    peer = Peer("mx.bücher.example", "127.0.0.1", 25)
    assert job.servername(TlsPolicy(level, servername=servername), peer) == expected
