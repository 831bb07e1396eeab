"""event_log_file end to end: the commands (sendmail, run --once, queue ...) against aiosmtpd
write one JSON record per event beside the Postfix-format maillog_file; each kind appears for
the workload that produces it, each delivery record carries the status, dsn and relay of the
Postfix line of the same attempt, and pflogsumm reads the Postfix-format log of the same
workload with the counts the records give."""

from __future__ import annotations

import datetime
import io
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.cli import run
from mailcarrier.log import syslog_stamp
from tests.queue.helpers import run_cli
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")  # aiosmtpd does not implement DSN parameters
MESSAGE = b"Subject: events\n\nbody\n"
REJECT = {"bad": "550 5.1.1 no such user", "later": "450 4.2.0 mailbox busy"}
# The fields of a Postfix delivery line that the record must repeat.
_LINE = re.compile(
    r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) mc postfix/(\w+)\[\d+\]: (\w+): to=<([^>]*)>, "
    r"relay=([^,]+), .*dsn=([\d.]+), status=(\w+) "
)


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=PLAIN, reject=REJECT)).start()
    try:
        yield srv
    finally:
        srv.stop()


def _run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _opts(tmp: Path, nexthop: str, *extra: str) -> list[str]:
    params = [
        f"queue_directory={tmp / 'queue'}",
        f"data_directory={tmp / 'data'}",
        f"relayhost={nexthop}",
        "myorigin=example.org",
        "myhostname=mc.example",
        f"maillog_file={tmp / 'maillog'}",
        f"event_log_file={tmp / 'events.jsonl'}",
        *extra,
    ]
    return [word for p in params for word in ("-o", p)]


def _records(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp / "events.jsonl").read_text().splitlines()]


def _workload(tmp: Path, nexthop: str) -> tuple[str, str]:
    """Message A (sent, bounced, deferred, then expired) and C (deleted) through the
    commands: run 1 warns of the delay at once, run 2 expires what is left."""
    o = _opts(tmp, nexthop)
    rcpts = ["ok@example.net", "bad@example.net", "later@example.net"]
    assert _run([*o, "sendmail", "-f", "s@example.org", *rcpts], MESSAGE)[0] == 0
    (a_id,) = (tmp / "queue" / "incoming").iterdir()
    assert _run([*_opts(tmp, nexthop, "delay_warning_time=0.000001s"), "run", "--once"])[0] == 0
    assert [p.name for p in (tmp / "queue" / "deferred").iterdir()] == [a_id.name]
    for action in ("hold", "release"):
        assert _run([*o, "queue", action, a_id.name])[0] == 0
    assert _run([*o, "queue", "flush"])[0] == 0
    assert _run([*o, "queue", "requeue", a_id.name])[0] == 0
    assert _run([*o, "sendmail", "-f", "s@example.org", "c@example.net"], MESSAGE)[0] == 0
    c_id = next(p.name for p in (tmp / "queue" / "incoming").iterdir() if p.name != a_id.name)
    assert _run([*o, "queue", "delete", c_id])[0] == 0
    assert _run([*_opts(tmp, nexthop, "maximal_queue_lifetime=0s"), "run", "--once"])[0] == 0
    return a_id.name, c_id


def test_every_event_kind_for_its_workload(tmp_path: Path, server: AiosmtpdServer) -> None:
    a_id, c_id = _workload(tmp_path, server.nexthop)
    records = _records(tmp_path)
    node = (tmp_path / "data" / "fleet_node_id").read_text().strip()
    assert {r["node_id"] for r in records} == {node}
    assert {r["host"] for r in records} == {"mc.example"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["time"]) for r in records)
    kinds = Counter(r["event"] for r in records)
    assert set(kinds) == {"queued", "delivery", "notice", "expired", "operator"}
    queued = [r for r in records if r["event"] == "queued"]
    assert [(r["queue_id"], r["sender"], r["nrcpt"]) for r in queued] == [
        (a_id, "s@example.org", 3),
        (c_id, "s@example.org", 1),
    ]
    ops = [
        (r["action"], r["queue_id"], r["from_queue"], r["to_queue"])
        for r in records
        if r["event"] == "operator"
    ]
    assert ops == [
        ("hold", a_id, "deferred", "hold"),
        ("release", a_id, "hold", "deferred"),
        ("flush", a_id, "deferred", "deferred"),
        ("requeue", a_id, "deferred", "incoming"),
        ("delete", c_id, "incoming", None),
    ]
    notices = [
        (r["queue_id"], r["notice"], r["notice_recipient"])
        for r in records
        if r["event"] == "notice"
    ]
    assert notices == [
        (a_id, "bounce", "s@example.org"),  # bad@: 550
        (a_id, "delay", "s@example.org"),  # later@: 450, delay_warning_time passed
        (a_id, "bounce", "s@example.org"),  # later@ expired
    ]
    (expired,) = [r for r in records if r["event"] == "expired"]
    assert (expired["queue_id"], expired["recipients"]) == (a_id, ["later@example.net"])
    mine = [
        (r["address"], r["status"], r["dsn"], r["attempt"], r["response"])
        for r in records
        if r["event"] == "delivery" and r["queue_id"] == a_id
    ]
    ok = {"code": 250, "enhanced_code": "2.0.0", "text": "Ok: queued"}
    bad = {"code": 550, "enhanced_code": "5.1.1", "text": "no such user"}
    busy = {"code": 450, "enhanced_code": "4.2.0", "text": "mailbox busy"}
    assert mine == [  # the RCPT replies come before the reply to the content
        ("bad@example.net", "bounced", "5.1.1", 1, bad),
        ("later@example.net", "deferred", "4.2.0", 1, busy),
        ("ok@example.net", "sent", "2.0.0", 1, ok),
        ("later@example.net", "deferred", "4.2.0", 2, busy),
    ]
    # The three notices were delivered to the sender, each a "queued" message of its own.
    notice_ids = {r["notice_queue_id"] for r in records if r["event"] == "notice"}
    sent = {r["queue_id"] for r in records if r["event"] == "delivery" and r["status"] == "sent"}
    assert notice_ids <= sent


def test_delivery_records_match_the_postfix_lines(tmp_path: Path, server: AiosmtpdServer) -> None:
    _workload(tmp_path, server.nexthop)
    lines = [
        m.groups()
        for m in map(_LINE.search, (tmp_path / "maillog").read_text().splitlines())
        if m is not None
    ]
    records = [r for r in _records(tmp_path) if r["event"] == "delivery"]
    same = [
        (
            _stamp(r["time"]),
            r["process"],
            r["queue_id"],
            r["address"],
            r["relay"],
            r["dsn"],
            r["status"],
        )
        for r in records
    ]
    assert len(lines) == 7  # 3 recipients, 3 notices, the second attempt
    assert same == lines


def _stamp(rfc3339: str) -> str:
    """The syslog time stamp of a record's time (local time, the day padded with a space)."""
    when = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    seconds = when.replace(tzinfo=datetime.UTC).timestamp()
    return syslog_stamp(seconds, "mc.example", "postfix").split(" mc ")[0]


def _pflogsumm_counts(log: Path) -> dict[str, int]:
    exe = shutil.which("pflogsumm")
    if exe is None:
        pytest.skip("pflogsumm is not installed (Debian package pflogsumm)")
    report = subprocess.run(
        [exe, "--detail", "0", str(log)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    counts = {}
    for word in ("received", "delivered", "deferred", "bounced"):
        found = re.search(rf"^\s+(\d+)\s+{word}\b(?:\s+\((\d+)\s+deferrals\))?", report, re.M)
        assert found is not None, report
        counts[word] = int(found.group(1))
        if found.group(2):
            counts["deferrals"] = int(found.group(2))
    return counts


def test_pflogsumm_counts_match_the_records(tmp_path: Path, server: AiosmtpdServer) -> None:
    _workload(tmp_path, server.nexthop)
    records = _records(tmp_path)
    deliveries = [r for r in records if r["event"] == "delivery"]
    status = Counter(r["status"] for r in deliveries)
    expected = {
        "received": sum(r["event"] == "queued" for r in records),
        "delivered": status["sent"],
        "deferred": len({r["queue_id"] for r in deliveries if r["status"] == "deferred"}),
        "deferrals": status["deferred"],
        "bounced": status["bounced"],
    }
    assert expected == {
        "received": 2,
        "delivered": 4,  # ok@, then the two bounces and the delay notice to s@
        "deferred": 1,
        "deferrals": 2,
        "bounced": 1,  # bad@ (an expiry logs no line per recipient, as Postfix's qmgr)
    }
    assert _pflogsumm_counts(tmp_path / "maillog") == expected


def test_agent_processes_send_records_to_the_scheduler(
    tmp_path: Path, server: AiosmtpdServer
) -> None:
    # With delivery_agent_processes > 1 the lines and records come back over the pipe.
    o = _opts(tmp_path, server.nexthop, "delivery_agent_processes=2")
    assert _run([*o, "sendmail", "-f", "s@example.org", "ok@example.net"], MESSAGE)[0] == 0
    done = run_cli([*o, "run", "--once"])
    assert done.returncode == 0, done.stderr
    (record,) = [r for r in _records(tmp_path) if r["event"] == "delivery"]
    (line,) = [m for m in map(_LINE.search, (tmp_path / "maillog").read_text().splitlines()) if m]
    assert (record["status"], record["address"], record["attempt"]) == ("sent", "ok@example.net", 1)
    assert (record["queue_id"], record["relay"], record["dsn"]) == line.group(3, 5, 6)
