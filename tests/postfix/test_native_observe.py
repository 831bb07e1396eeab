"""Watching mailcarrier-smtp inside a real Postfix: known mail goes through the instance's
smtpd, qmgr(8) and mailcarrier-smtp to smtp-sinks (accepting, 4xx, 5xx); then

- event_log_file has one JSON record per delivery line the agents wrote to Postfix's log,
  with the same queue id (Postfix's), recipient, relay, dsn, status and pid, the response
  split, this instance's node id and a null attempt (Postfix counts none);
- ``mailcarrier observe --postfix`` serves /metrics with the deliveries the log shows, by
  status and DSN class, delay histograms of the final verdicts, connections, TLS outcomes,
  and Postfix's queue (``postqueue -j``): the deferred message; /api/queue and /api/status
  say the same; it refuses a non-loopback address as ``run`` does.

One instance for the module (tests/postfix/conftest.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.observe.daemon import samples
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.postfix import PostfixInstance

pytestmark = pytest.mark.postfix

_LINE = re.compile(
    r"postfix/smtp\[(\d+)\]: (\w+): to=<([^>]*)>, relay=([^,]+), .*dsn=([\d.]+), "
    r"status=(\w+) \((.*)\)$",
    re.M,
)


def _message(subject: str, to: str) -> bytes:
    return f"From: a@test.local\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


@pytest.fixture(scope="module")
def watched(postfix_instance: PostfixInstance) -> Iterator[dict[str, Any]]:
    """The instance with mailcarrier-smtp counting and recording, the workload done."""
    instance = postfix_instance
    sinks = {
        "ok": instance.sink("-d", str(instance.root / "sink" / "%H%M%S.")),
        "soft": instance.sink("-r", "RCPT"),
        "hard": instance.sink("-f", "RCPT"),
    }
    metrics = instance.root / "metrics"
    metrics.mkdir()
    os.chown(metrics, pwd.getpwnam("postfix").pw_uid, -1)
    routes = ", ".join(f"{name}.test=smtp:{sink.nexthop}" for name, sink in sinks.items())
    port = free_port()
    with instance.changes():
        instance.set_main(
            {
                "transport_maps": f"inline:{{{routes}}}",
                "relayhost": sinks["ok"].nexthop,
                "event_log_file": str(instance.root / "events.jsonl"),
                "metrics_directory": str(metrics),
                "http_listen": f"127.0.0.1:{port}",
            }
        )
        command = instance.program("smtp", "mailcarrier.postfix.main:smtp_main")
        instance.set_service("smtp", command, maxproc="2")
    mark = instance.log_mark()
    ok = instance.submit("a@test.local", ["b@ok.test", "c@ok.test"], _message("two", "b@ok.test"))
    more = instance.submit("a@test.local", ["d@ok.test"], _message("one", "d@ok.test"))
    soft = instance.submit("a@test.local", ["e@soft.test"], _message("later", "e@soft.test"))
    hard = instance.submit("f@test.local", ["g@hard.test"], _message("never", "g@hard.test"))
    for queue_id in (ok, more):
        instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    instance.wait_deferred(soft)
    notice = instance.wait_log(
        rf"postfix/bounce\[\d+\]: {hard}: sender non-delivery notification: (\w+)", mark
    )
    instance.wait_log(rf"{notice.group(1)}: to=<f@test\.local>.*status=sent", mark)
    instance.wait_log(rf"postfix/qmgr\[\d+\]: {hard}: removed", mark)
    # A record is written just after its line is sent to postlogd.
    instance.wait_until(lambda: len(_records(instance)) >= 6, "six event records")
    yield {"instance": instance, "mark": mark, "port": port, "soft": soft, "hard": hard}


def _lines(instance: PostfixInstance, mark: int) -> list[re.Match[str]]:
    return list(_LINE.finditer(instance.log[mark:]))


def _records(instance: PostfixInstance) -> list[dict[str, Any]]:
    path = instance.root / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_record_per_delivery_line_with_its_values(watched: dict[str, Any]) -> None:
    instance: PostfixInstance = watched["instance"]
    lines = _lines(instance, watched["mark"])
    assert len(lines) == 6  # b, c, d sent; e deferred; g bounced; the notice to f sent
    records = _records(instance)
    node = (instance.data / "fleet_node_id").read_text().strip()
    assert {r["node_id"] for r in records} == {node}
    assert {(r["event"], r["host"], r["process"]) for r in records} == {
        ("delivery", "mta.test.local", "smtp")
    }
    assert {r["attempt"] for r in records} == {None}
    got = sorted(
        (str(r["pid"]), r["queue_id"], r["address"], r["relay"], r["dsn"], r["status"])
        for r in records
    )
    assert got == sorted(line.groups()[:6] for line in lines)
    for line in lines:
        (record,) = [r for r in records if (r["queue_id"], r["address"]) == line.group(2, 3)]
        assert record["diagnostic"] == line.group(7)
    soft = next(r for r in records if r["queue_id"] == watched["soft"])
    assert soft["response"] == {
        "code": 450,
        "enhanced_code": "4.3.0",
        "text": "Error: command failed",
    }
    hard = next(r for r in records if r["queue_id"] == watched["hard"])
    assert hard["response"] == {
        "code": 500,
        "enhanced_code": "5.3.0",
        "text": "Error: command failed",
    }


@pytest.fixture(scope="module")
def observer(watched: dict[str, Any]) -> Iterator[str]:
    """``mailcarrier observe --postfix=CONFIG``, serving; its base URL."""
    instance: PostfixInstance = watched["instance"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mailcarrier.cli import main; main()",
            "observe",
            f"--postfix={instance.config}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{watched['port']}"
    try:
        instance.wait_until(
            lambda: "listening on 127.0.0.1:" in instance.log or proc.poll() is not None,
            "observe listening",
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def test_observe_serves_what_the_log_shows(watched: dict[str, Any], observer: str) -> None:
    instance: PostfixInstance = watched["instance"]
    lines = _lines(instance, watched["mark"])
    by_status = Counter((line.group(6), line.group(5)[0]) for line in lines)
    got = samples(_get(observer + "/metrics"))
    smtp = 'transport="smtp"'
    for (status, dsn_class), n in by_status.items():
        key = f'mailcarrier_deliveries_total{{dsn_class="{dsn_class}",status="{status}",{smtp}}}'
        assert got[key] == n
    assert sum(v for k, v in got.items() if k.startswith("mailcarrier_deliveries_total")) == 6
    finals = sum(n for (status, _), n in by_status.items() if status != "deferred")
    for stage in ("before_qmgr", "in_qmgr", "conn_setup", "transmission"):
        assert got[f'mailcarrier_delivery_delay_seconds_count{{stage="{stage}",{smtp}}}'] == finals
    opened = got[f'mailcarrier_connections_total{{kind="opened",{smtp}}}']
    assert opened >= 3  # one per sink at least
    assert got[f'mailcarrier_tls_sessions_total{{level="none",result="plaintext",{smtp}}}'] >= 3
    assert got['mailcarrier_queue_messages{queue="deferred"}'] == 1
    assert got['mailcarrier_queue_messages{queue="active"}'] == 0
    assert got['mailcarrier_queue_oldest_age_seconds{queue="deferred"}'] > 0
    assert got["mailcarrier_active_deliveries"] == 0
    queue = json.loads(_get(observer + "/api/queue"))
    assert queue["deferred_destinations"] == [
        {
            "domain": "soft.test",
            "messages": 1,
            "recipients": 1,
            "last_reason": "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed "
            "(in reply to RCPT TO command)",
        }
    ]
    status = json.loads(_get(observer + "/api/status"))
    assert status["deliveries"] == {
        "sent": by_status[("sent", "2")],
        "deferred": 1,
        "bounced": 1,
    }
    page = _get(observer + "/")
    assert b"<title>mailcarrier status</title>" in page and b"soft.test" in page


def test_observe_refuses_a_remote_address_without_allow_remote(watched: dict[str, Any]) -> None:
    instance: PostfixInstance = watched["instance"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mailcarrier.cli import main; main()",
            "-o",
            "http_listen=192.0.2.1:9154",
            "observe",
            f"--postfix={instance.config}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78
    assert done.stderr == (
        'mailcarrier: fatal: parameter http_listen: "192.0.2.1:9154" is not a loopback '
        "address (set http_listen_allow_remote = yes to listen on it)\n"
    )


def test_without_postfix_observe_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from mailcarrier.cli import main; main()", "observe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 64
    assert done.stderr == (
        "mailcarrier: fatal: observe: give --postfix[=POSTFIX_CONFIG_DIR] (mailcarrier run "
        "serves its own metrics at http_listen)\n"
    )


def test_the_metrics_directory_holds_the_agents_files(watched: dict[str, Any]) -> None:
    names = {p.name for p in (watched["instance"].root / "metrics").iterdir()}
    assert any(re.fullmatch(r"counter_\d+\.db", n) for n in names)
    assert any(re.fullmatch(r"histogram_\d+\.db", n) for n in names)
    # Made by the first agent before it dropped privileges, under master's umask (077).
    events = Path(watched["instance"].root / "events.jsonl").stat()
    assert (events.st_uid, events.st_mode & 0o777) == (0, 0o600)
