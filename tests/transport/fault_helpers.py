"""Shared script openings of the session-fault tests (test_faults_connect.py,
test_faults_disconnect.py, test_faults_transaction.py): the greeting and EHLO (or LHLO) of a
pipelining or lockstep server, the first pipelined batch, short names of the delivery statuses.
Wire bytes of a standard session and the delivery runner are helpers.py's; the scripted server
is scripted.py's."""

from __future__ import annotations

from mailcarrier import DeliveryStatus
from tests.transport.helpers import DATA, EHLO, GREETING, LOCKSTEP, PIPELINING, mail, rcpt
from tests.transport.scripted import Expect, Send, Step

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
RCPT1 = "b@example.net"
PIPELINED_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(PIPELINING)]
LOCKSTEP_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(LOCKSTEP)]
BATCH1 = mail() + rcpt(RCPT1) + DATA

LMTP_START: list[Step] = [
    Send(b"220 lmtp.example LMTP ready\r\n"),
    Expect(b"LHLO client.example\r\n"),
    Send(b"250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"),
]
