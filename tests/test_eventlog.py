"""eventlog.py: event_log_file off by default, a path that cannot be opened is one
configuration error (exit 78 from any command), and the API's submit() appends its
``queued`` record there while the caller's sink keeps the lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mailcarrier import api
from mailcarrier.cli import run
from mailcarrier.eventlog import event_handlers, with_events
from mailcarrier.log import MemoryLog
from tests.support.settings import queue_settings


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
