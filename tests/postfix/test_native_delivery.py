"""A Postfix queue file delivered by mailcarrier's engine, end to end against aiosmtpd: the
request from `to_delivery_request`, the content from `RecordContent` (LF line ends made CRLF,
dots stuffed, long L-record lines joined, SIZE= from the request, no BODY= for content nobody
declared), read again for a second delivery, and a corrupt queue file bounced with Postfix's
5.3.0 "unreadable mail queue entry" and no final dot."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.postfix.queuefile import QueueFile, open_queue_file
from mailcarrier.postfix.records import RecordContent
from mailcarrier.postfix.request import (
    NativeRecipient,
    NativeRequest,
    parse_request,
    to_delivery_request,
)
from tests.support.deliver import deliver_request
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.postfix_records import Layout, QueueFileBuilder, cleanup_file, write_queue_file

CAPTURED: Final = Path(__file__).parent / "data" / "deliver-request-2rcpt.bin"
QUEUE_ID: Final = "4F1A2B3C4D"
RECIPIENTS: Final = ("alice@example.net", "bob@example.net")
CONTENT: Final = (
    b"Subject: from the queue\n\nfirst\n.leading dot\n"
    + b"y" * 3000
    + b"\nGr\xc3\xbc\xc3\x9fe\nend\n"
)

# What the server receives: CRLF line ends, and the 3000-byte line (two L records and an N
# in the queue file) broken at smtp_line_length_limit (998) with <CR><LF><SPACE>, as Postfix.
WIRE: Final = CONTENT.replace(b"\n", b"\r\n").replace(
    b"y" * 3000, b"y" * 998 + b"\r\n " + b"y" * 997 + b"\r\n " + b"y" * 997 + b"\r\n " + b"y" * 8
)


@pytest.fixture
def sized() -> Iterator[AiosmtpdServer]:
    handler = RecordingHandler(extra_keywords=("PIPELINING",))  # no DSN: no ORCPT
    server = AiosmtpdServer(handler, data_size_limit=1_000_000).start()
    try:
        yield server
    finally:
        server.stop()


def _native(server: AiosmtpdServer, layout: Layout) -> NativeRequest:
    captured = parse_request(CAPTURED.read_bytes())
    return dataclasses.replace(
        captured,
        queue_id=QUEUE_ID,
        nexthop=server.nexthop,
        data_offset=layout.data_offset,
        data_size=layout.content_length,
        recipients=tuple(
            NativeRecipient(r, r, offset, f"rfc822;{r}", 0)
            for r, offset in zip(RECIPIENTS, layout.recipient_offsets, strict=True)
        ),
    )


def _queue_file(tmp_path: Path, data: bytes) -> QueueFile:
    write_queue_file(tmp_path / "active" / QUEUE_ID, data)
    return open_queue_file("active", QUEUE_ID, queue_directory=tmp_path)


async def test_queue_file_delivered(sized: AiosmtpdServer, tmp_path: Path) -> None:
    layout = cleanup_file(CONTENT, recipients=RECIPIENTS)
    native = _native(sized, layout)
    with _queue_file(tmp_path, layout.data) as qf:
        content = qf.content(native.data_offset)
        request = to_delivery_request(native, transport="smtp", content=content)
        first, log = await deliver_request(request)
        # The same stream again, as for a second server: read from its start.
        second, _ = await deliver_request(request)
    for result in (first, second):
        assert [r.status for r in result.recipients] == [DeliveryStatus.SENT] * 2
        assert [r.address for r in result.recipients] == list(RECIPIENTS)
    assert len(sized.messages) == 2
    for received in sized.messages:
        assert received.content == WIRE
        assert received.rcpt_tos == list(RECIPIENTS)
        assert f"SIZE={layout.content_length}" in received.mail_options
        assert not any(o.upper().startswith("BODY=") for o in received.mail_options)
    assert any(f"{QUEUE_ID}: to=<alice@example.net>" in line for line in log.lines)


async def test_corrupt_queue_file_bounces_without_the_final_dot(
    sized: AiosmtpdServer, tmp_path: Path
) -> None:
    layout = cleanup_file(CONTENT, recipients=RECIPIENTS)
    # A recipient record where content should be: Postfix's "bad record type" in content.
    builder = QueueFileBuilder()
    builder.data += layout.data[: layout.xtra_offset]
    bad = builder.add("R", "intruder@example.net")
    builder.add("X")
    native = _native(sized, layout)
    with _queue_file(tmp_path, builder.bytes()) as qf:
        content = qf.content(native.data_offset)
        request = to_delivery_request(native, transport="smtp", content=content)
        result, log = await deliver_request(request)
    for status in result.recipients:
        assert (status.status, status.dsn, status.diagnostic) == (
            DeliveryStatus.BOUNCED,
            "5.3.0",
            "unreadable mail queue entry",
        )
    assert sized.messages == []  # the transaction was abandoned mid-DATA
    assert isinstance(content, RecordContent) and content.damage is not None
    assert str(content.damage) == (
        f"{tmp_path}/active/{QUEUE_ID}: offset {bad}: bad record type 'R' in message content"
    )
    assert any("status=bounced (unreadable mail queue entry)" in line for line in log.lines)
