"""Tests of mailcarrier.protocol.client: the sans-IO ClientConnection, joined to scripted server
bytes with no socket.

Whole transcripts (SMTP lock-step and pipelined, LMTP, HELO fallback, STARTTLS, AUTH, course
correction, end of file) assert the exact client bytes, including how commands are batched,
and the events produced from the server's replies; each is fed whole, one byte at a time and
(hypothesis) in random splits. Protocol violations by the server are `RemoteProtocolError`
and leave the connection in ERROR, refusing all further work; caller misuse is
`LocalProtocolError`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcarrier.errors import LocalProtocolError, RemoteProtocolError
from mailcarrier.protocol.client import (
    NEED_DATA,
    ClientConnection,
    CommandReply,
    ConnectionClosed,
    Greeting,
    RecipientReply,
    State,
)
from mailcarrier.protocol.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    DataEnd,
    Ehlo,
    Helo,
    Lhlo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTls,
    Xforward,
)
from mailcarrier.protocol.ehlo import Capabilities
from tests.protocol.helpers import (
    CHUNKERS,
    Batch,
    Chunker,
    Content,
    Eof,
    Recv,
    Send,
    Step,
    assert_refuses_everything,
    bytewise,
    connection_in,
    drain,
    feed,
    random_splits,
    run,
    summarize,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GREETING = b"220 mx.example.org ESMTP Postfix\r\n"
MAIL = MailFrom("sender@example.org")
RCPT_B = RcptTo("b@example.net", index=0)
RCPT_C = RcptTo("c@example.net", index=1)
RCPT_D = RcptTo("d@example.net", index=2)
BODY = b"Subject: test\r\n\r\n..a stuffed line\r\nbody\r\n"


def greeted(text: bytes = GREETING) -> Recv:
    return Recv(text, (("greeting", text.decode().rstrip("\r\n")),), state=State.HELLO)


# --- transcripts ------------------------------------------------------------------------------
SMTP_LOCKSTEP: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n", State.HELLO),
    Recv(
        b"250-mx.example.org\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
        (
            (
                Ehlo("client.example.org"),
                "250-mx.example.org 250-SIZE 10240000 250-8BITMIME 250 ENHANCEDSTATUSCODES",
            ),
        ),
        State.READY,
    ),
    Send(
        MailFrom("sender@example.org", size=42, body="8BITMIME"),
        b"MAIL FROM:<sender@example.org> SIZE=42 BODY=8BITMIME\r\n",
        State.MAIL,
    ),
    Recv(
        b"250 2.1.0 Ok\r\n",
        ((MailFrom("sender@example.org", size=42, body="8BITMIME"), "250 2.1.0 Ok"),),
        State.MAIL,
    ),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n", State.RCPT),
    Recv(b"250 2.1.5 Ok\r\n", ((RCPT_B, "250 2.1.5 Ok"),), State.RCPT),
    Send(RCPT_C, b"RCPT TO:<c@example.net>\r\n", State.RCPT),
    Recv(
        b"550 5.1.1 <c@example.net>: Recipient address rejected\r\n",
        ((RCPT_C, "550 5.1.1 <c@example.net>: Recipient address rejected"),),
        State.RCPT,
    ),
    Send(Data(), b"DATA\r\n", State.DATA),
    Recv(
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
        ((Data(), "354 End data with <CR><LF>.<CR><LF>"),),
        State.CONTENT,
    ),
    Content(BODY[:10], State.CONTENT),
    Content(BODY[10:], State.CONTENT),
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(
        b"250 2.0.0 Ok: queued as 4Zx9\r\n",
        ((DataEnd(), "250 2.0.0 Ok: queued as 4Zx9"),),
        State.READY,
    ),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
    Recv(b"221 2.0.0 Bye\r\n", ((Quit(), "221 2.0.0 Bye"),), State.CLOSED),
    Eof((("closed", (), False),)),
]

EHLO_PIPELINING = Recv(
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 DSN\r\n",
    (
        (
            Ehlo("client.example.org"),
            "250-mx.example.org 250-PIPELINING 250-SIZE 250-8BITMIME 250 DSN",
        ),
    ),
    State.READY,
)

SMTP_PIPELINED: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    # RFC 2920: MAIL, every RCPT and DATA in one write, before any reply is read.
    Batch(
        (MAIL, RCPT_B, RCPT_C, RCPT_D, Data()),
        b"MAIL FROM:<sender@example.org>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\n"
        b"RCPT TO:<d@example.net>\r\n"
        b"DATA\r\n",
        State.DATA,
    ),
    # The replies, matched in FIFO order, arrive in one segment.
    Recv(
        b"250 2.1.0 Ok\r\n"
        b"250 2.1.5 Ok\r\n"
        b"550-5.1.1 <c@example.net>: Recipient address rejected:\r\n"
        b"550 5.1.1 User unknown in virtual mailbox table\r\n"
        b"452 4.2.2 <d@example.net>: Mailbox full\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
        (
            (MAIL, "250 2.1.0 Ok"),
            (RCPT_B, "250 2.1.5 Ok"),
            (
                RCPT_C,
                "550-5.1.1 <c@example.net>: Recipient address rejected: "
                "550 5.1.1 User unknown in virtual mailbox table",
            ),
            (RCPT_D, "452 4.2.2 <d@example.net>: Mailbox full"),
            (Data(), "354 End data with <CR><LF>.<CR><LF>"),
        ),
        State.CONTENT,
    ),
    Content(BODY),
    # The final dot and QUIT may go together (the connection is not reused).
    Batch((DataEnd(), Quit()), b".\r\nQUIT\r\n", State.CLOSED),
    Recv(
        b"250 2.0.0 Ok: queued as 4Zx9\r\n221 2.0.0 Bye\r\n",
        ((DataEnd(), "250 2.0.0 Ok: queued as 4Zx9"), (Quit(), "221 2.0.0 Bye")),
        State.CLOSED,
    ),
    Eof((("closed", (), False),)),
]

XFWD_1 = Xforward((("NAME", "client.example"), ("ADDR", "192.0.2.7")))
XFWD_2 = Xforward((("PROTO", "ESMTP"), ("IDENT", "4Zx9")))

# Postfix XFORWARD_README: XFORWARD before MAIL (pipelined with it); a refusal changes nothing.
SMTP_PIPELINED_XFORWARD: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch(
        (XFWD_1, XFWD_2, MAIL, RCPT_B, Data()),
        b"XFORWARD NAME=client.example ADDR=192.0.2.7\r\n"
        b"XFORWARD PROTO=ESMTP IDENT=4Zx9\r\n"
        b"MAIL FROM:<sender@example.org>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"DATA\r\n",
        State.DATA,
    ),
    Recv(
        b"250 2.0.0 Ok\r\n550 5.5.1 no XFORWARD for you\r\n250 2.1.0 Ok\r\n"
        b"250 2.1.5 Ok\r\n354 go\r\n",
        (
            (XFWD_1, "250 2.0.0 Ok"),
            (XFWD_2, "550 5.5.1 no XFORWARD for you"),
            (MAIL, "250 2.1.0 Ok"),
            (RCPT_B, "250 2.1.5 Ok"),
            (Data(), "354 go"),
        ),
        State.CONTENT,
    ),
    Content(BODY),
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(b"250 2.0.0 Ok\r\n", ((DataEnd(), "250 2.0.0 Ok"),), State.READY),
]

# RFC 3030: after the RCPT replies, BDAT chunks pipelined (no dot-stuffing, no final dot);
# one reply per chunk; the reply to BDAT LAST ends the transaction.
SMTP_BDAT: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch((MAIL, RCPT_B), b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
    Recv(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
        ((MAIL, "250 2.1.0 Ok"), (RCPT_B, "250 2.1.5 Ok")),
        State.RCPT,
    ),
    Send(Bdat(6), b"BDAT 6\r\n", State.CHUNK),
    Content(b".x\r\nyz", State.CHUNK),
    Send(Bdat(3, last=True), b"BDAT 3 LAST\r\n", State.DOT),
    Content(b"\r\n.", State.DOT),
    Recv(
        b"250 2.0.0 6 octets received\r\n250 2.0.0 Ok: 9 octets queued\r\n",
        (
            (Bdat(6), "250 2.0.0 6 octets received"),
            (Bdat(3, last=True), "250 2.0.0 Ok: 9 octets queued"),
        ),
        State.READY,
    ),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
]

# RFC 3030 2: a refused chunk fails the transaction; the LAST reply still arrives, and the
# connection then needs RSET before it is used again.
SMTP_BDAT_CHUNK_REFUSED: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch((MAIL, RCPT_B), b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
    Recv(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n",
        ((MAIL, "250 2.1.0 Ok"), (RCPT_B, "250 2.1.5 Ok")),
    ),
    Send(Bdat(1), b"BDAT 1\r\n", State.CHUNK),
    Content(b"x"),
    Send(Bdat(0, last=True), b"BDAT 0 LAST\r\n", State.DOT),
    Recv(
        b"552 5.3.4 too big\r\n503 5.5.1 no transaction\r\n",
        (
            (Bdat(1), "552 5.3.4 too big"),
            (Bdat(0, last=True), "503 5.5.1 no transaction"),
        ),
        State.ABORTED,
    ),
    Send(Rset(), b"RSET\r\n", State.READY),
]

# Lock-step: a refused chunk before LAST was sent: no more BDAT (RFC 3030 2), RSET.
SMTP_BDAT_LOCKSTEP_REFUSED: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    Recv(b"250 mx\r\n", ((Ehlo("client.example.org"), "250 mx"),), State.READY),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 Ok\r\n", ((MAIL, "250 Ok"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"250 Ok\r\n", ((RCPT_B, "250 Ok"),)),
    Send(Bdat(2), b"BDAT 2\r\n"),
    Content(b"ab"),
    Recv(b"451 4.3.0 disk full\r\n", ((Bdat(2), "451 4.3.0 disk full"),), State.ABORTED),
    Send(Rset(), b"RSET\r\n", State.READY),
]

SMTP_PIPELINED_TWO_TRANSACTIONS: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch(
        (MAIL, RCPT_B, Data()),
        b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
    ),
    Recv(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n",
        ((MAIL, "250 2.1.0 Ok"), (RCPT_B, "250 2.1.5 Ok"), (Data(), "354 go")),
        State.CONTENT,
    ),
    Content(b"x\r\n"),
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(b"250 2.0.0 queued\r\n", ((DataEnd(), "250 2.0.0 queued"),), State.READY),
    # A reused connection: the next transaction starts at once, no RSET needed.
    Batch(
        (MailFrom(""), RCPT_C, Data()),
        b"MAIL FROM:<>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n",
    ),
    Recv(
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n",
        ((MailFrom(""), "250 2.1.0 Ok"), (RCPT_C, "250 2.1.5 Ok"), (Data(), "354 go")),
        State.CONTENT,
    ),
    Send(DataEnd(), b".\r\n"),
    Recv(b"451 4.3.0 try later\r\n", ((DataEnd(), "451 4.3.0 try later"),), State.READY),
    Send(Quit(), b"QUIT\r\n"),
    Recv(b"221 Bye\r\n", ((Quit(), "221 Bye"),), State.CLOSED),
]

SMTP_PIPELINED_MAIL_REJECTED: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch(
        (MAIL, RCPT_B, Data()),
        b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
    ),
    Recv(
        b"553 5.7.1 <sender@example.org>: Sender address rejected\r\n"
        b"503 5.5.1 Error: need MAIL command\r\n"
        b"503 5.5.1 Error: need RCPT command\r\n",
        (
            (MAIL, "553 5.7.1 <sender@example.org>: Sender address rejected"),
            (RCPT_B, "503 5.5.1 Error: need MAIL command"),
            (Data(), "503 5.5.1 Error: need RCPT command"),
        ),
        State.ABORTED,
    ),
    # Course correction: RSET, then the connection can be used again.
    Send(Rset(), b"RSET\r\n", State.READY),
    Recv(b"250 2.0.0 Ok\r\n", ((Rset(), "250 2.0.0 Ok"),), State.READY),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n", State.MAIL),
    Recv(b"250 2.1.0 Ok\r\n", ((MAIL, "250 2.1.0 Ok"),), State.MAIL),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
    Recv(b"221 Bye\r\n", ((Quit(), "221 Bye"),), State.CLOSED),
]

SMTP_PIPELINED_ALL_RCPTS_REJECTED_BUT_354: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch(
        (MAIL, RCPT_B, Data()),
        b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
    ),
    # A broken server says 354 although no recipient was accepted (RFC 2920 3.1): the
    # client ends the empty message at once.
    Recv(
        b"250 Ok\r\n550 No\r\n354 go ahead\r\n",
        ((MAIL, "250 Ok"), (RCPT_B, "550 No"), (Data(), "354 go ahead")),
        State.CONTENT,
    ),
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(
        b"554 5.5.1 no valid recipients\r\n",
        ((DataEnd(), "554 5.5.1 no valid recipients"),),
        State.READY,
    ),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
]

SMTP_LOCKSTEP_COURSE_CORRECTION: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    Recv(
        b"250 mx.example.org\r\n",
        ((Ehlo("client.example.org"), "250 mx.example.org"),),
        State.READY,
    ),
    # MAIL rejected: RSET.
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"451 4.3.0 try later\r\n", ((MAIL, "451 4.3.0 try later"),), State.MAIL),
    Send(Rset(), b"RSET\r\n", State.READY),
    Recv(b"250 Ok\r\n", ((Rset(), "250 Ok"),), State.READY),
    # All RCPTs rejected: RSET.
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 Ok\r\n", ((MAIL, "250 Ok"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"550 No\r\n", ((RCPT_B, "550 No"),), State.RCPT),
    Send(Rset(), b"RSET\r\n", State.READY),
    Recv(b"250 Ok\r\n", ((Rset(), "250 Ok"),), State.READY),
    # DATA rejected: ABORTED, then RSET.
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 Ok\r\n", ((MAIL, "250 Ok"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"250 Ok\r\n", ((RCPT_B, "250 Ok"),)),
    Send(Data(), b"DATA\r\n", State.DATA),
    Recv(b"451 4.3.0 not now\r\n", ((Data(), "451 4.3.0 not now"),), State.ABORTED),
    Send(Rset(), b"RSET\r\n", State.READY),
    Recv(b"250 Ok\r\n", ((Rset(), "250 Ok"),), State.READY),
    Send(Noop(), b"NOOP\r\n", State.READY),
    Recv(b"250 Ok\r\n", ((Noop(), "250 Ok"),), State.READY),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
]

LMTP: list[Step] = [
    greeted(b"220 lmtp.example.org LMTP ready\r\n"),
    Send(Lhlo("client.example.org"), b"LHLO client.example.org\r\n", State.HELLO),
    Recv(
        b"250-lmtp.example.org\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n",
        (
            (
                Lhlo("client.example.org"),
                "250-lmtp.example.org 250-PIPELINING 250-ENHANCEDSTATUSCODES 250 8BITMIME",
            ),
        ),
        State.READY,
    ),
    Batch(
        (MAIL, RCPT_B, RCPT_C, RCPT_D, Data()),
        b"MAIL FROM:<sender@example.org>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\n"
        b"RCPT TO:<d@example.net>\r\n"
        b"DATA\r\n",
    ),
    Recv(
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <c@example.net> User doesn't exist\r\n"
        b"250 2.1.5 OK\r\n354 OK\r\n",
        (
            (MAIL, "250 2.1.0 OK"),
            (RCPT_B, "250 2.1.5 OK"),
            (RCPT_C, "550 5.1.1 <c@example.net> User doesn't exist"),
            (RCPT_D, "250 2.1.5 OK"),
            (Data(), "354 OK"),
        ),
        State.CONTENT,
    ),
    Content(BODY),
    # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(
        b"250 2.0.0 <b@example.net> Saved\r\n",
        (("rcpt", RCPT_B, "250 2.0.0 <b@example.net> Saved"),),
        State.DOT,
    ),
    Recv(
        b"452 4.2.2 <d@example.net> Quota exceeded\r\n",
        (("rcpt", RCPT_D, "452 4.2.2 <d@example.net> Quota exceeded"),),
        State.READY,
    ),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
    Recv(b"221 2.0.0 Bye\r\n", ((Quit(), "221 2.0.0 Bye"),)),
    Eof((("closed", (), False),)),
]

# LMTP with CHUNKING: one reply per accepted recipient after BDAT LAST.
LMTP_BDAT: list[Step] = [
    greeted(b"220 lmtp LMTP\r\n"),
    Send(Lhlo("c"), b"LHLO c\r\n"),
    Recv(b"250-lmtp\r\n250 CHUNKING\r\n", ((Lhlo("c"), "250-lmtp 250 CHUNKING"),)),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 OK\r\n", ((MAIL, "250 OK"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"250 OK\r\n", ((RCPT_B, "250 OK"),)),
    Send(RCPT_C, b"RCPT TO:<c@example.net>\r\n"),
    Recv(b"250 OK\r\n", ((RCPT_C, "250 OK"),)),
    Send(Bdat(2, last=True), b"BDAT 2 LAST\r\n", State.DOT),
    Content(b"hi"),
    Recv(
        b"250 2.0.0 b Saved\r\n452 4.2.2 c Quota\r\n",
        (("rcpt", RCPT_B, "250 2.0.0 b Saved"), ("rcpt", RCPT_C, "452 4.2.2 c Quota")),
        State.READY,
    ),
]

# A refused chunk: BDAT LAST then gets one reply, not one per recipient.
LMTP_BDAT_CHUNK_REFUSED: list[Step] = [
    greeted(b"220 lmtp LMTP\r\n"),
    Send(Lhlo("c"), b"LHLO c\r\n"),
    Recv(b"250-lmtp\r\n250 CHUNKING\r\n", ((Lhlo("c"), "250-lmtp 250 CHUNKING"),)),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 OK\r\n", ((MAIL, "250 OK"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"250 OK\r\n", ((RCPT_B, "250 OK"),)),
    Send(RCPT_C, b"RCPT TO:<c@example.net>\r\n"),
    Recv(b"250 OK\r\n", ((RCPT_C, "250 OK"),)),
    Send(Bdat(1), b"BDAT 1\r\n", State.CHUNK),
    Content(b"x"),
    Send(Bdat(0, last=True), b"BDAT 0 LAST\r\n", State.DOT),
    Recv(
        b"452 4.3.1 no room\r\n503 5.5.1 no transaction\r\n",
        ((Bdat(1), "452 4.3.1 no room"), (Bdat(0, last=True), "503 5.5.1 no transaction")),
        State.ABORTED,
    ),
]

LMTP_NO_RECIPIENT_ACCEPTED_BUT_354: list[Step] = [
    greeted(b"220 lmtp LMTP\r\n"),
    Send(Lhlo("c"), b"LHLO c\r\n"),
    Recv(b"250 lmtp\r\n", ((Lhlo("c"), "250 lmtp"),), State.READY),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 OK\r\n", ((MAIL, "250 OK"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"550 no\r\n", ((RCPT_B, "550 no"),)),
    Send(Data(), b"DATA\r\n"),
    Recv(b"354 go\r\n", ((Data(), "354 go"),), State.CONTENT),
    # Nothing accepted: exactly one reply is expected, reported as a CommandReply.
    Send(DataEnd(), b".\r\n"),
    Recv(b"503 5.5.1 No recipients\r\n", ((DataEnd(), "503 5.5.1 No recipients"),), State.READY),
]

HELO_FALLBACK: list[Step] = [
    greeted(b"220 old.example.org ESMTP\r\n"),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n", State.HELLO),
    Recv(
        b"502 5.5.2 Error: command not recognized\r\n",
        ((Ehlo("client.example.org"), "502 5.5.2 Error: command not recognized"),),
        State.HELLO,
    ),
    Send(Helo("client.example.org"), b"HELO client.example.org\r\n", State.HELLO),
    Recv(
        b"250 old.example.org\r\n",
        ((Helo("client.example.org"), "250 old.example.org"),),
        State.READY,
    ),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n"),
    Recv(b"250 ok\r\n", ((MAIL, "250 ok"),)),
    Send(RCPT_B, b"RCPT TO:<b@example.net>\r\n"),
    Recv(b"250 ok\r\n", ((RCPT_B, "250 ok"),)),
    Send(Data(), b"DATA\r\n"),
    Recv(b"354 go\r\n", ((Data(), "354 go"),), State.CONTENT),
    Content(b"hi\r\n"),
    Send(DataEnd(), b".\r\n"),
    Recv(b"250 ok\r\n", ((DataEnd(), "250 ok"),), State.READY),
    Send(Quit(), b"QUIT\r\n"),
]

STARTTLS: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    Recv(
        b"250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
        (
            (
                Ehlo("client.example.org"),
                "250-mx.example.org 250-PIPELINING 250-STARTTLS 250 8BITMIME",
            ),
        ),
        State.READY,
    ),
    Send(StartTls(), b"STARTTLS\r\n", State.READY),
    Recv(
        b"220 2.0.0 Ready to start TLS\r\n",
        ((StartTls(), "220 2.0.0 Ready to start TLS"),),
        State.TLS,
    ),
]

STARTTLS_REFUSED: list[Step] = [
    *STARTTLS[:-1],
    Recv(
        b"454 4.7.0 TLS not available\r\n",
        ((StartTls(), "454 4.7.0 TLS not available"),),
        State.READY,
    ),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n", State.MAIL),
]

AUTH: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    Recv(
        b"250-mx.example.org\r\n250 AUTH LOGIN PLAIN\r\n",
        ((Ehlo("client.example.org"), "250-mx.example.org 250 AUTH LOGIN PLAIN"),),
        State.READY,
    ),
    Send(Auth("LOGIN"), b"AUTH LOGIN\r\n", State.READY),
    Recv(b"334 VXNlcm5hbWU6\r\n", ((Auth("LOGIN"), "334 VXNlcm5hbWU6"),), State.AUTH),
    Send(AuthResponse("dXNlcg=="), b"dXNlcg==\r\n", State.READY),
    Recv(b"334 UGFzc3dvcmQ6\r\n", ((AuthResponse("dXNlcg=="), "334 UGFzc3dvcmQ6"),), State.AUTH),
    Send(AuthResponse("cGFzcw=="), b"cGFzcw==\r\n", State.READY),
    Recv(
        b"235 2.7.0 Authentication successful\r\n",
        ((AuthResponse("cGFzcw=="), "235 2.7.0 Authentication successful"),),
        State.READY,
    ),
    Send(Auth("PLAIN", "AHUAcA=="), b"AUTH PLAIN AHUAcA==\r\n"),
    Recv(
        b"503 5.5.1 Error: already authenticated\r\n",
        ((Auth("PLAIN", "AHUAcA=="), "503 5.5.1 Error: already authenticated"),),
        State.READY,
    ),
    Send(Auth("LOGIN"), b"AUTH LOGIN\r\n"),
    Recv(b"334 VXNlcm5hbWU6\r\n", ((Auth("LOGIN"), "334 VXNlcm5hbWU6"),), State.AUTH),
    Send(AuthResponse("*"), b"*\r\n"),
    Recv(
        b"501 5.7.0 Authentication aborted\r\n",
        ((AuthResponse("*"), "501 5.7.0 Authentication aborted"),),
        State.READY,
    ),
    Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n", State.MAIL),
]

GREETING_REJECTED: list[Step] = [
    Recv(b"554 5.7.1 go away\r\n", (("greeting", "554 5.7.1 go away"),), State.GREETING),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
    Recv(b"221 Bye\r\n", ((Quit(), "221 Bye"),), State.CLOSED),
    Eof((("closed", (), False),)),
]

MULTI_LINE_GREETING: list[Step] = [
    Recv(
        b"220-mx.example.org ESMTP\r\n220-no UCE\n220 really\r\n",
        (("greeting", "220-mx.example.org ESMTP 220-no UCE 220 really"),),
        State.HELLO,
    ),
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
]

QUIT_BEFORE_GREETING: list[Step] = [
    Send(Quit(), b"QUIT\r\n", State.CLOSED),
    # Replies to the greeting and to QUIT: the connection stays closed.
    Recv(
        b"220 mx ESMTP\r\n221 Bye\r\n",
        (("greeting", "220 mx ESMTP"), (Quit(), "221 Bye")),
        State.CLOSED,
    ),
]

EOF_WITH_PIPELINED_COMMANDS_PENDING: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    EHLO_PIPELINING,
    Batch(
        (MAIL, RCPT_B, RCPT_C, Data()),
        b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\nDATA\r\n",
    ),
    Recv(b"250 2.1.0 Ok\r\n", ((MAIL, "250 2.1.0 Ok"),), State.DATA),
    Eof((("closed", (RCPT_B, RCPT_C, Data()), False),)),
]

EOF_IN_THE_MIDDLE_OF_A_REPLY: list[Step] = [
    greeted(),
    Send(Ehlo("client.example.org"), b"EHLO client.example.org\r\n"),
    Recv(b"250-mx.example.org\r\n250-PIPELI", ()),
    Eof((("closed", (Ehlo("client.example.org"),), True),)),
]

EOF_BEFORE_GREETING: list[Step] = [Eof((("closed", (), False),))]

EOF_AFTER_THE_FINAL_DOT_LMTP: list[Step] = [
    *LMTP[:6],
    Send(DataEnd(), b".\r\n", State.DOT),
    Recv(
        b"250 2.0.0 <b@example.net> Saved\r\n",
        (("rcpt", RCPT_B, "250 2.0.0 <b@example.net> Saved"),),
        State.DOT,
    ),
    # The reply for d never comes: the dot is still pending.
    Eof((("closed", (DataEnd(),), False),)),
]

TRANSCRIPTS: dict[str, tuple[list[Step], bool]] = {
    "smtp lock-step": (SMTP_LOCKSTEP, False),
    "smtp pipelined": (SMTP_PIPELINED, False),
    "smtp pipelined, two transactions": (SMTP_PIPELINED_TWO_TRANSACTIONS, False),
    "smtp pipelined, xforward": (SMTP_PIPELINED_XFORWARD, False),
    "smtp bdat": (SMTP_BDAT, False),
    "smtp bdat, chunk refused": (SMTP_BDAT_CHUNK_REFUSED, False),
    "smtp bdat lock-step, chunk refused": (SMTP_BDAT_LOCKSTEP_REFUSED, False),
    "lmtp bdat": (LMTP_BDAT, True),
    "lmtp bdat, chunk refused": (LMTP_BDAT_CHUNK_REFUSED, True),
    "smtp pipelined, MAIL rejected": (SMTP_PIPELINED_MAIL_REJECTED, False),
    "smtp pipelined, no RCPT but 354": (SMTP_PIPELINED_ALL_RCPTS_REJECTED_BUT_354, False),
    "smtp lock-step course correction": (SMTP_LOCKSTEP_COURSE_CORRECTION, False),
    "lmtp": (LMTP, True),
    "lmtp, nothing accepted but 354": (LMTP_NO_RECIPIENT_ACCEPTED_BUT_354, True),
    "helo fallback": (HELO_FALLBACK, False),
    "starttls": (STARTTLS, False),
    "starttls refused": (STARTTLS_REFUSED, False),
    "auth": (AUTH, False),
    "greeting rejected": (GREETING_REJECTED, False),
    "multi-line greeting": (MULTI_LINE_GREETING, False),
    "quit before greeting": (QUIT_BEFORE_GREETING, False),
    "eof with pipelined commands pending": (EOF_WITH_PIPELINED_COMMANDS_PENDING, False),
    "eof in the middle of a reply": (EOF_IN_THE_MIDDLE_OF_A_REPLY, False),
    "eof before greeting": (EOF_BEFORE_GREETING, False),
    "lmtp eof after the final dot": (EOF_AFTER_THE_FINAL_DOT_LMTP, True),
}


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript(name: str, chunker: Chunker) -> None:
    steps, lmtp = TRANSCRIPTS[name]
    run(steps, lmtp=lmtp, chunker=chunker)


@SETTINGS
@given(rng=st.randoms(use_true_random=False))
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_random_splits(name: str, rng: random.Random) -> None:
    steps, lmtp = TRANSCRIPTS[name]
    run(steps, lmtp=lmtp, chunker=random_splits(rng))


# --- details checked along the transcripts -----------------------------------------------------
def test_lockstep_bookkeeping() -> None:
    conn = run(SMTP_LOCKSTEP[:9])  # up to the reply to the second RCPT
    assert conn.capabilities.size_limit == 10240000
    assert conn.capabilities.eightbitmime
    assert not conn.capabilities.pipelining
    assert conn.hello_reply is not None
    assert conn.hello_reply.code == 250
    assert conn.accepted_recipients == (RCPT_B,)
    assert conn.in_flight == ()
    assert not conn.has_buffered_data


def test_pipelined_in_flight_fifo() -> None:
    conn = run(SMTP_PIPELINED[:4])  # after the batch, before any reply
    assert conn.in_flight == (MAIL, RCPT_B, RCPT_C, RCPT_D, Data())
    conn.receive_data(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n")
    first = conn.next_event()
    assert isinstance(first, CommandReply)
    assert first.command == MAIL
    assert first.reply.enhanced == "2.1.0"
    assert list(conn.in_flight) == [RCPT_B, RCPT_C, RCPT_D, Data()]
    assert [summarize(e) for e in drain(conn)] == [
        (RCPT_B, "250 2.1.5 Ok"),
        (RCPT_C, "550 5.1.1 no"),
    ]
    assert list(conn.in_flight) == [RCPT_D, Data()]
    assert conn.accepted_recipients == (RCPT_B,)
    assert conn.state is State.DATA


def test_lmtp_recipient_replies_carry_the_rcpt_command() -> None:
    conn = run(LMTP[:6], lmtp=True)  # content sent
    assert conn.accepted_recipients == (RCPT_B, RCPT_D)
    conn.send(DataEnd())
    assert conn.in_flight == (DataEnd(),)
    conn.receive_data(b"250 2.0.0 a\r\n450 4.2.0 b\r\n")
    first, second = conn.next_event(), conn.next_event()
    assert isinstance(first, RecipientReply)
    assert isinstance(second, RecipientReply)
    assert (first.recipient.index, first.reply.code) == (0, 250)
    assert (second.recipient.index, second.reply.code, second.reply.dsn) == (2, 450, "4.2.0")
    assert conn.next_event() is NEED_DATA
    assert conn.state is State.READY
    assert list(conn.in_flight) == []


def test_lmtp_refuses_ehlo_and_helo_and_smtp_refuses_lhlo() -> None:
    lmtp = connection_in(State.HELLO, lmtp=True)
    for command in (Ehlo("c"), Helo("c")):
        with pytest.raises(LocalProtocolError, match="LHLO"):
            lmtp.send(command)
    smtp = connection_in(State.HELLO)
    with pytest.raises(LocalProtocolError, match="LHLO"):
        smtp.send(Lhlo("c"))
    assert lmtp.state is smtp.state is State.HELLO
    assert lmtp.in_flight == smtp.in_flight == ()


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
def test_lmtp_quit_pipelined_after_the_final_dot(chunker: Chunker) -> None:
    conn = run(LMTP[:6], lmtp=True)
    assert conn.send(DataEnd()) + conn.send(Quit()) == b".\r\nQUIT\r\n"
    events = feed(conn, b"250 2.0.0 b ok\r\n250 2.0.0 d ok\r\n221 2.0.0 Bye\r\n", chunker)
    assert events == [
        ("rcpt", RCPT_B, "250 2.0.0 b ok"),
        ("rcpt", RCPT_D, "250 2.0.0 d ok"),
        (Quit(), "221 2.0.0 Bye"),
    ]
    assert conn.state is State.CLOSED


def test_helo_fallback_forgets_capabilities() -> None:
    conn = run(HELO_FALLBACK[:5])
    assert conn.state is State.READY
    assert conn.capabilities == Capabilities()
    assert conn.hello_reply is not None
    assert conn.hello_reply.text == "250 old.example.org"


def test_discarded_keywords_are_never_seen() -> None:
    conn = ClientConnection(discard_keywords=["PIPELINING", "dsn"])
    feed(conn, GREETING)
    conn.send(Ehlo("c"))
    feed(conn, b"250-mx\r\n250-PIPELINING\r\n250-DSN\r\n250 8BITMIME\r\n")
    assert not conn.capabilities.pipelining
    assert not conn.capabilities.dsn
    assert conn.capabilities.eightbitmime


def test_rejected_ehlo_keeps_previous_capabilities_empty() -> None:
    conn = run(HELO_FALLBACK[:3])
    assert conn.capabilities == Capabilities()
    assert conn.hello_reply is None


def test_content_accounting() -> None:
    conn = run(SMTP_LOCKSTEP[:13])
    assert conn.content_bytes == len(BODY)
    assert conn.send_content(b"") == b""
    assert conn.content_bytes == len(BODY)


def test_accepted_recipients_are_forgotten_after_rset_and_new_mail() -> None:
    conn = connection_in(State.RCPT)
    assert len(conn.accepted_recipients) == 1
    conn.send(Rset())
    feed(conn, b"250 Ok\r\n")
    assert list(conn.accepted_recipients) == []
    conn.send(MAIL)
    feed(conn, b"250 Ok\r\n")
    conn.send(RCPT_C)
    feed(conn, b"250 Ok\r\n")
    assert list(conn.accepted_recipients) == [RCPT_C]
    conn.send(Rset())
    conn.send(MAIL)  # pipelined RSET + MAIL: the old list goes with the new MAIL
    assert list(conn.accepted_recipients) == []


# --- STARTTLS ---------------------------------------------------------------------------------
@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
def test_starttls_then_new_ehlo(chunker: Chunker) -> None:
    conn = run(STARTTLS, chunker=chunker)
    assert conn.capabilities.starttls
    # Nothing but the handshake (or QUIT) until it completes.
    for command in (MAIL, Ehlo("c"), Rset(), Noop(), StartTls()):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    conn.tls_established()
    # RFC 3207 4.2: everything learned before TLS is forgotten; EHLO again.
    assert conn.state is State.HELLO
    assert conn.capabilities == Capabilities()
    assert conn.hello_reply is None
    with pytest.raises(LocalProtocolError):
        conn.send(MAIL)
    with pytest.raises(LocalProtocolError):
        conn.tls_established()
    assert conn.send(Ehlo("client.example.org")) == b"EHLO client.example.org\r\n"
    events = feed(
        conn,
        b"250-mx.example.org\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
        chunker,
    )
    assert events == [
        (Ehlo("client.example.org"), "250-mx.example.org 250-PIPELINING 250 AUTH PLAIN")
    ]
    assert not conn.capabilities.starttls
    assert conn.capabilities.auth_mechanisms == ("PLAIN",)
    assert conn.send(MAIL) == b"MAIL FROM:<sender@example.org>\r\n"


def test_quit_is_allowed_instead_of_the_handshake() -> None:
    conn = run(STARTTLS)
    assert conn.send(Quit()) == b"QUIT\r\n"
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    "injected",
    [
        b"250-evil\r\n250 PIPELINING\r\n",
        b"250 2.1.0 Ok\r\n",
        b"2",
        b"\r\n",
        b"garbage without a line end",
    ],
)
def test_starttls_response_injection_is_refused(injected: bytes) -> None:
    """Bytes after the 220 in the same segment were sent in plaintext: abort (CVE-2011-0411)."""
    conn = run(STARTTLS[:-1])
    conn.receive_data(b"220 2.0.0 Ready to start TLS\r\n" + injected)
    event = conn.next_event()
    assert isinstance(event, CommandReply)
    assert event.reply.code == 220
    assert conn.state is State.TLS
    assert conn.has_buffered_data
    with pytest.raises(RemoteProtocolError, match="after STARTTLS"):
        conn.tls_established()
    assert_refuses_everything(conn)


def test_starttls_injection_fed_byte_by_byte_is_refused() -> None:
    conn = run(STARTTLS[:-1])
    for byte in bytewise(b"220 2.0.0 Ready\r\n250 injected\r\n"):
        conn.receive_data(byte)
    assert isinstance(conn.next_event(), CommandReply)
    with pytest.raises(RemoteProtocolError):
        conn.tls_established()
    assert conn.state is State.ERROR


def test_starttls_injection_drained_byte_by_byte_is_refused() -> None:
    """A driver that reads events after every byte sees the injection as unsolicited data."""
    conn = run(STARTTLS[:-1])
    with pytest.raises(RemoteProtocolError):
        feed(conn, b"220 2.0.0 Ready\r\n250 injected\r\n", bytewise)
    assert_refuses_everything(conn)


def test_tls_established_only_after_starttls_was_accepted() -> None:
    for conn in (connection_in(State.READY), run(STARTTLS_REFUSED[:-1]), run(STARTTLS[:-1])):
        with pytest.raises(LocalProtocolError):
            conn.tls_established()
        assert conn.state is not State.ERROR


# --- the server breaks the protocol ---------------------------------------------------------
# (steps before the fault, fault bytes, lmtp)
FAULTS: dict[str, tuple[list[Step], bytes, bool]] = {
    "reply before any command": ([greeted()], b"250 2.0.0 Ok\r\n", False),
    "partial line before any command": ([greeted()], b"2", False),
    "greeting and a second reply in one segment": ([], GREETING + b"250 extra\r\n", False),
    "two replies to one MAIL": (
        [*SMTP_LOCKSTEP[:3], Send(MAIL, b"MAIL FROM:<sender@example.org>\r\n")],
        b"250 2.1.0 Ok\r\n250 2.1.0 Ok again\r\n",
        False,
    ),
    "one reply too many in a pipeline": (
        [
            *SMTP_PIPELINED[:3],
            Batch((MAIL, RCPT_B), b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<b@example.net>\r\n"),
        ],
        b"250 Ok\r\n250 Ok\r\n354 surprise\r\n",
        False,
    ),
    "reply after QUIT's reply": (
        [greeted(), Send(Quit(), b"QUIT\r\n")],
        b"221 Bye\r\n250 more\r\n",
        False,
    ),
    "lmtp: more per-recipient replies than recipients": (
        [*LMTP[:6], Send(DataEnd(), b".\r\n")],
        b"250 a\r\n250 b\r\n250 c\r\n",
        True,
    ),
    "garbage instead of a reply": (
        [greeted(), Send(Ehlo("c"), b"EHLO c\r\n")],
        b"HTTP/1.1 400 Bad Request\r\n",
        False,
    ),
    "1xx reply": ([greeted(), Send(Ehlo("c"), b"EHLO c\r\n")], b"150 ok\r\n", False),
    "garbage continuation": (
        [greeted(), Send(Ehlo("c"), b"EHLO c\r\n")],
        b"250-mx\r\nPIPELINING\r\n",
        False,
    ),
    "greeting is garbage": ([], b"SSH-2.0-OpenSSH_9.6\r\n", False),
    "over-long line": (
        [greeted(), Send(Ehlo("c"), b"EHLO c\r\n")],
        b"250 " + b"x" * 3000 + b"\r\n",
        False,
    ),
    "over-long line, no line end": (
        [greeted(), Send(Ehlo("c"), b"EHLO c\r\n")],
        b"250 " + b"x" * 3000,
        False,
    ),
    "endless multi-line reply": (
        [greeted(), Send(Ehlo("c"), b"EHLO c\r\n")],
        b"250-x\r\n" * 300,
        False,
    ),
}


@pytest.mark.parametrize("chunker", CHUNKERS.values(), ids=CHUNKERS.keys())
@pytest.mark.parametrize("name", FAULTS)
def test_protocol_violation_moves_to_error(name: str, chunker: Chunker) -> None:
    steps, fault, lmtp = FAULTS[name]
    conn = run(steps, lmtp=lmtp)
    with pytest.raises(RemoteProtocolError):
        feed(conn, fault, chunker)
    assert_refuses_everything(conn)


def test_unsolicited_data_is_caught_on_send_too() -> None:
    """A driver that sends without reading events first still cannot desynchronise."""
    conn = run([greeted()])
    conn.receive_data(b"250 surprise\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.send(Ehlo("c"))
    assert_refuses_everything(conn)


def test_endless_reply_through_the_connection_uses_bounded_memory() -> None:
    conn = ClientConnection(max_line_length=100, max_lines=20)
    feed(conn, GREETING)
    conn.send(Ehlo("c"))
    line = b"250-" + b"k" * 96 + b"\r\n"
    with pytest.raises(RemoteProtocolError):
        for _ in range(10_000):
            conn.receive_data(line)
            assert conn.next_event() is NEED_DATA
            assert conn._parser.buffered <= 20 * 102
    assert conn.state is State.ERROR


def test_custom_line_limit_applies_after_starttls() -> None:
    conn = ClientConnection(max_line_length=50)
    for step in STARTTLS:
        if isinstance(step, Send):
            conn.send(step.command)
        elif isinstance(step, Recv):
            feed(conn, step.data)
    conn.tls_established()
    conn.send(Ehlo("c"))
    with pytest.raises(RemoteProtocolError, match="longer than 50"):
        feed(conn, b"250 " + b"x" * 60 + b"\r\n")


# --- caller misuse ------------------------------------------------------------------------------
ILLEGAL: list[tuple[State, Command, bool]] = [
    # (state, command, lmtp)
    (State.GREETING, Ehlo("c"), False),  # wait for the greeting
    (State.GREETING, MAIL, False),
    (State.HELLO, MAIL, False),  # MAIL before EHLO
    (State.HELLO, RCPT_B, False),
    (State.HELLO, StartTls(), False),
    (State.HELLO, Auth("PLAIN"), False),
    (State.HELLO, Data(), False),
    (State.READY, RCPT_B, False),  # RCPT before MAIL
    (State.READY, Data(), False),
    (State.READY, DataEnd(), False),
    (State.READY, AuthResponse("x"), False),
    (State.READY, Helo("c"), False),
    (State.MAIL, MAIL, False),  # nested MAIL
    (State.MAIL, Data(), False),  # DATA before any RCPT
    (State.MAIL, DataEnd(), False),
    (State.RCPT, DataEnd(), False),  # final dot before DATA
    (State.RCPT, MAIL, False),
    (State.RCPT, StartTls(), False),
    (State.DATA, DataEnd(), False),  # final dot before 354
    (State.DATA, RCPT_C, False),  # DATA is a sync point (RFC 2920 3.1)
    (State.DATA, Rset(), False),  # ... even RSET: after a 354 it would become content
    (State.DATA, Noop(), False),
    (State.CONTENT, Rset(), False),  # only the final dot ends the content
    (State.CONTENT, Quit(), False),
    (State.CONTENT, MAIL, False),
    (State.CONTENT, Data(), False),
    (State.ABORTED, MAIL, False),  # ABORTED: RSET or QUIT only
    (State.ABORTED, RCPT_B, False),
    (State.ABORTED, Data(), False),
    (State.ABORTED, DataEnd(), False),
    (State.ABORTED, Noop(), False),
    (State.ABORTED, Ehlo("c"), False),
    (State.ABORTED, StartTls(), False),
    (State.READY, Bdat(1), False),  # BDAT only after RCPT
    (State.MAIL, Bdat(1), False),
    (State.DATA, Bdat(1), False),
    (State.CONTENT, Bdat(1), False),
    (State.HELLO, XFWD_1, False),  # XFORWARD only in a session, before MAIL
    (State.MAIL, XFWD_1, False),
    (State.RCPT, XFWD_1, False),
    (State.DATA, XFWD_1, False),
    (State.ABORTED, XFWD_1, False),
    (State.HELLO, Helo("c"), True),
    (State.READY, Lhlo("c"), False),
]


@pytest.mark.parametrize(
    ("state", "command", "lmtp"),
    ILLEGAL,
    ids=[f"{s.value}-{type(c).__name__}{'-lmtp' if lmtp else ''}" for s, c, lmtp in ILLEGAL],
)
def test_illegal_moves_are_refused(state: State, command: Command, lmtp: bool) -> None:
    conn = connection_in(state, lmtp=lmtp)
    in_flight = conn.in_flight
    with pytest.raises(LocalProtocolError):
        conn.send(command)
    # Refused before anything was recorded: the connection is unchanged and usable.
    assert conn.state is state
    assert conn.in_flight == in_flight
    still_legal = {State.CONTENT: DataEnd(), State.ABORTED: Rset()}.get(state, Quit())
    assert conn.send(still_legal) == still_legal.wire()


@pytest.mark.parametrize(
    "state",
    [State.GREETING, State.HELLO, State.READY, State.MAIL, State.RCPT, State.DATA, State.ABORTED],
)
def test_content_only_after_354(state: State) -> None:
    conn = connection_in(state)
    with pytest.raises(LocalProtocolError):
        conn.send_content(b"Subject: x\r\n")
    assert conn.content_bytes == 0
    assert conn.state is state


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (State.ABORTED, [Rset, Quit]),
        (State.MAIL, [RcptTo, Rset, Quit]),
        (State.RCPT, [RcptTo, Data, Rset, Quit]),
        (State.CONTENT, [DataEnd]),
    ],
)
def test_allowed_moves(state: State, allowed: list[type[Command]]) -> None:
    samples: list[Command] = [
        Ehlo("c"),
        Helo("c"),
        StartTls(),
        Auth("PLAIN"),
        AuthResponse("x"),
        MAIL,
        RCPT_C,
        Data(),
        DataEnd(),
        Rset(),
        Noop(),
        Quit(),
    ]
    for command in samples:
        conn = connection_in(state)
        if type(command) in allowed:
            assert conn.send(command) == command.wire()
        else:
            with pytest.raises(LocalProtocolError):
                conn.send(command)


@pytest.mark.parametrize(
    ("sync_point", "reply"),
    [
        (StartTls(), b"220 go ahead\r\n"),
        (Auth("LOGIN"), b"334 VXNlcm5hbWU6\r\n"),
        (Data(), b"354 go ahead\r\n"),
    ],
)
def test_nothing_but_quit_follows_a_sync_point_before_its_reply(
    sync_point: Command, reply: bytes
) -> None:
    """After STARTTLS, AUTH or DATA the reply decides what the next line means."""
    conn = (
        connection_in(State.RCPT, pipelining=True)
        if isinstance(sync_point, Data)
        else connection_in(State.READY, pipelining=True)
    )
    conn.send(sync_point)
    for command in (MailFrom("x@y"), RCPT_C, Rset(), Noop(), Ehlo("c"), AuthResponse("eA==")):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    assert conn.in_flight[-1] == sync_point
    feed(conn, reply)
    assert conn.state in (State.TLS, State.AUTH, State.CONTENT)


def test_quit_may_follow_a_sync_point() -> None:
    conn = connection_in(State.READY, pipelining=True)
    conn.send(StartTls())
    assert conn.send(Quit()) == b"QUIT\r\n"
    events = feed(conn, b"454 4.7.0 not now\r\n221 Bye\r\n")
    assert events == [(StartTls(), "454 4.7.0 not now"), (Quit(), "221 Bye")]
    assert conn.state is State.CLOSED


def test_after_quit_nothing_more_is_sent() -> None:
    conn = connection_in(State.READY)
    conn.send(Quit())
    for command in (Quit(), MAIL, Rset(), Ehlo("c")):
        with pytest.raises(LocalProtocolError, match="closed"):
            conn.send(command)
    assert feed(conn, b"221 Bye\r\n") == [(Quit(), "221 Bye")]


def test_after_end_of_file_nothing_more_is_sent() -> None:
    conn = connection_in(State.READY)
    conn.receive_data(b"")
    event = conn.next_event()
    assert isinstance(event, ConnectionClosed)
    assert event.pending == ()
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send(Quit())
    # Reported once; afterwards there is simply nothing more.
    assert conn.next_event() is NEED_DATA


def test_replies_before_end_of_file_are_delivered_first() -> None:
    conn = connection_in(State.READY)
    conn.send(MAIL)
    conn.send(Quit())
    conn.receive_data(b"421 4.4.2 mx.example.org Error: timeout exceeded\r\n")
    conn.receive_data(b"")
    events = drain(conn)
    assert [type(e) for e in events] == [CommandReply, ConnectionClosed]
    first, closed = events
    assert isinstance(first, CommandReply)
    assert first.reply.code == 421
    assert isinstance(closed, ConnectionClosed)
    assert closed.pending == (Quit(),)
    assert not closed.partial


def test_greeting_event() -> None:
    conn = ClientConnection()
    assert conn.next_event() is NEED_DATA
    assert conn.in_flight == ()  # the greeting is awaited but is not a command
    conn.receive_data(b"220 mx.example.org ESMTP\r\n")
    event = conn.next_event()
    assert isinstance(event, Greeting)
    assert event.reply.code == 220
    assert conn.state is State.HELLO


# --- hypothesis: whatever the server sends ------------------------------------------------------
_fragments = st.sampled_from(
    [
        b"250 Ok\r\n",
        b"250-mx\r\n",
        b"250 2.1.5 Ok\r\n",
        b"354 go\r\n",
        b"550 5.1.1 no\r\n",
        b"421 4.4.2 bye\r\n",
        b"220 hi\r\n",
        b"334 eA==\r\n",
        b"\r\n",
        b"\n",
        b"2",
        b"-",
    ]
)
_server_bytes = st.lists(st.one_of(_fragments, st.binary(max_size=20)), max_size=15).map(b"".join)


def _start_at_greeting(conn: ClientConnection) -> None:
    del conn


def _start_after_ehlo(conn: ClientConnection) -> None:
    feed(conn, GREETING)
    conn.send(Lhlo("c") if conn.lmtp else Ehlo("c"))


def _start_pipelined(conn: ClientConnection) -> None:
    _start_after_ehlo(conn)
    feed(conn, b"250-mx\r\n250 PIPELINING\r\n")
    for command in (MAIL, RCPT_B, RCPT_C, Data()):
        conn.send(command)


_DRIVERS: dict[str, Callable[[ClientConnection], None]] = {
    "greeting": _start_at_greeting,
    "ehlo": _start_after_ehlo,
    "pipelined": _start_pipelined,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from(sorted(_DRIVERS)),
    lmtp=st.booleans(),
    data=_server_bytes,
    rng=st.randoms(use_true_random=False),
    eof=st.booleans(),
)
def test_arbitrary_server_bytes(
    start: str, lmtp: bool, data: bytes, rng: random.Random, eof: bool
) -> None:
    """Events or RemoteProtocolError, never anything else; splitting changes nothing."""

    def play(chunker: Chunker) -> tuple[list[object], str]:
        conn = ClientConnection(lmtp=lmtp)
        _DRIVERS[start](conn)
        try:
            events = feed(conn, data, chunker)
            if eof:
                conn.receive_data(b"")
                events += [summarize(e) for e in drain(conn)]
        except RemoteProtocolError:
            assert conn.state is State.ERROR
            return [], "error"
        assert conn.state is not State.ERROR
        return list(events), conn.state.value

    whole_result = play(CHUNKERS["whole"])
    assert play(random_splits(rng)) == whole_result
    assert play(bytewise) == whole_result


def test_bdat_chunk_is_exactly_its_size() -> None:
    conn = connection_in(State.RCPT)
    conn.send(Bdat(3))
    with pytest.raises(LocalProtocolError, match="4 octets"):
        conn.send_content(b"abcd")
    conn.send_content(b"ab")
    with pytest.raises(LocalProtocolError, match="1 octets of the BDAT chunk unsent"):
        conn.send(Bdat(0, last=True))
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())
    conn.send_content(b"c")
    conn.send(Bdat(0, last=True))
    assert conn.state is State.DOT
    with pytest.raises(LocalProtocolError):
        conn.send(Bdat(1))
    with pytest.raises(LocalProtocolError):
        conn.send_content(b"x")
