"""eventlog.py: event_log_file off by default, a path that cannot be opened is one
configuration error (exit 78 from any command), and the API's submit() and deliver() append
their ``queued`` and ``delivery`` records there while the caller's sink keeps the lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mailcarrier import api
from mailcarrier.cli import run
from mailcarrier.eventlog import event_handlers, with_events
from mailcarrier.log import HandlerLog, MemoryLog
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import queue_settings

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")


def test_off_by_default(tmp_path: Path) -> None:
    settings = queue_settings(tmp_path)
    assert settings.params.event_log_file == ""
    assert event_handlers(settings) == []
    assert with_events(MemoryLog(), settings) is None


def test_a_path_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    bad = tmp_path / "missing" / "events.jsonl"
    args = ["-o", f"queue_directory={tmp_path / 'q'}", "-o", f"event_log_file={bad}"]
    code = run([*args, "queue", "list"], stdin=io.BytesIO(), stdout=out, stderr=err)
    assert code == 78
    assert err.getvalue() == (
        f"mailcarrier: fatal: parameter event_log_file: cannot open {bad}: "
        "No such file or directory\n"
    )


def test_api_submit_appends_the_queued_record(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    settings = queue_settings(
        tmp_path / "q",
        event_log_file=str(events),
        data_directory=str(tmp_path / "data"),
        node_id="node-7",
    )
    log = MemoryLog()
    queue_id = api.submit_sync(
        b"Subject: x\n\nbody\n",
        sender="s@example.org",
        recipients=["r@example.net"],
        config=settings,
        log=log,
    )
    (record,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert {k: record[k] for k in ("event", "queue_id", "node_id", "host", "process")} == {
        "event": "queued",
        "queue_id": queue_id,
        "node_id": "node-7",
        "host": "mc.example",
        "process": "cleanup",
    }
    assert (record["sender"], record["nrcpt"]) == ("s@example.org", 1)
    assert f"{queue_id}: message-id=<{queue_id}@mc.example>" in log.lines


def test_api_deliver_appends_a_delivery_record_per_recipient(tmp_path: Path) -> None:
    """deliver() with event_log_file: one ``delivery`` record per recipient with the values
    of its line, which the caller's sink keeps; the command line's deliver writes them
    once (its own log carries the event handlers: with_events adds none)."""
    events = tmp_path / "events.jsonl"
    settings = queue_settings(
        tmp_path / "q",
        event_log_file=str(events),
        data_directory=str(tmp_path / "data"),
        node_id="node-7",
    )
    handler = RecordingHandler(extra_keywords=PLAIN, reject={"bad": "550 5.1.1 no such user"})
    server = AiosmtpdServer(handler).start()
    try:
        request = api.make_request(
            b"Subject: x\n\nbody\n",
            sender="s@example.org",
            recipients=["ok@example.net", "bad@example.net"],
            nexthop=server.nexthop,
            config=settings,
        )
        log = MemoryLog()
        result = api.deliver_sync(request, config=settings, log=log)
    finally:
        server.stop()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    # The RCPT refusal is decided first, the success after DATA.
    assert [(r["event"], r["address"], r["status"], r["dsn"]) for r in records] == [
        ("delivery", "bad@example.net", "bounced", "5.1.1"),
        ("delivery", "ok@example.net", "sent", "2.0.0"),
    ]
    assert {(r["queue_id"], r["node_id"], r["attempt"]) for r in records} == {
        (request.queue_id, "node-7", 1)
    }
    assert records[0]["response"] == {
        "code": 550,
        "enhanced_code": "5.1.1",
        "text": "no such user",
    }
    assert {r.relay for r in result.recipients} == {r["relay"] for r in records}
    lines = [line for line in log.lines if ": to=<" in line]
    assert len(lines) == 2 and "status=bounced" in lines[0]
    records_sink = HandlerLog((), event_handlers=event_handlers(settings))
    assert with_events(records_sink, settings) is None  # the command line's: no second copy
    records_sink.close()
