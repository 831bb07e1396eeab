"""LMTP delivery to a real Dovecot (dovecot-lmtpd): per-recipient replies and the maildir.

Dovecot answers RCPT for an unknown user with 550 5.1.1 and, after the final dot, one reply
per accepted recipient (RFC 2033), which is what aiosmtpd cannot do. Both of Dovecot's
listeners are used: the unix socket and 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.peers import dovecot
from tests.support.settings import HELO_NAME, make_settings

pytestmark = pytest.mark.dovecot

MESSAGE = b"Subject: lmtp test\nMessage-ID: <lmtp-test@example.org>\n\n.dot line\nbody\n"


@pytest.fixture
def dovecot_lmtp(short_tmp: Path) -> Iterator[dovecot.DovecotLmtp]:
    if not dovecot.available():
        pytest.skip("Dovecot LMTP not installed or not root")
    server = dovecot.DovecotLmtp(short_tmp, users=("known", "other")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("listener", ["unix", "inet"])
async def test_dovecot_per_recipient_results(
    dovecot_lmtp: dovecot.DovecotLmtp, listener: str
) -> None:
    nexthop = dovecot_lmtp.unix_nexthop if listener == "unix" else dovecot_lmtp.inet_nexthop
    result, log = await deliver_to(
        nexthop,
        MESSAGE,
        recipients=["known@example.net", "nobody-here@example.net", "other@example.net"],
        transport="lmtp",
        queue_id="4DOVECOT01",
        config=make_settings(lmtp_lhlo_name=HELO_NAME),
    )
    known, unknown, other = result.recipients
    assert (known.status, known.dsn) == (DeliveryStatus.SENT, "2.0.0")
    assert known.diagnostic.startswith("250 2.0.0 <known@example.net> ")
    assert known.diagnostic.endswith(" Saved")
    assert (other.status, other.dsn) == (DeliveryStatus.SENT, "2.0.0")
    assert other.diagnostic.startswith("250 2.0.0 <other@example.net> ")
    assert (unknown.status, unknown.dsn) == (DeliveryStatus.BOUNCED, "5.1.1")
    where = dovecot_lmtp.socket_path if listener == "unix" else "127.0.0.1"
    assert unknown.diagnostic.startswith("host ")
    assert f"[{where}] said: 550 5.1.1 <nobody-here@example.net> " in unknown.diagnostic
    assert unknown.diagnostic.endswith("(in reply to RCPT TO command)")
    if listener == "unix":
        assert known.relay.endswith(f"[{dovecot_lmtp.socket_path}]")
    else:
        assert known.relay == f"127.0.0.1[127.0.0.1]:{dovecot_lmtp.port}"
    assert len(log.lines) == 3

    for user in ("known", "other"):
        (stored,) = dovecot_lmtp.delivered(user)
        # Dovecot prepends Return-Path and Delivered-To; the message follows unchanged.
        assert b"Return-Path: <a@example.org>\n" in stored
        assert stored.endswith(
            b"Subject: lmtp test\nMessage-ID: <lmtp-test@example.org>\n\n.dot line\nbody\n"
        )
    assert not (dovecot_lmtp.root / "mail" / "nobody-here").exists()
