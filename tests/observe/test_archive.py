"""observe/archive.py and native.py: the counts Postfix-native agent processes leave in
metrics_directory (counters.py in multiprocess mode, in real processes that exit) stay
whole when the files of dead processes are folded into the archive, the live gauges of the
dead go, a live process's files are left alone; NativeMonitor adds them up and reads the
queue from ``postqueue -j`` objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from mailcarrier.observe.archive import compact
from mailcarrier.observe.native import NativeMonitor, deferred_domains, queue_shape
from tests.observe.daemon import samples

# One agent process: counts `sent` successes and one deferral, then exits.
_AGENT = """
import sys
from mailcarrier.counters import multiprocess
multiprocess(sys.argv[1])
from mailcarrier.counters import NativeCounters
from mailcarrier.status import Delays, DeliveryStatus, RecipientStatus
counters = NativeCounters("smtp")
counters.started()
for _ in range(int(sys.argv[2])):
    counters.verdict(RecipientStatus("a@b", DeliveryStatus.SENT, "2.0.0", "250 ok",
                                     delays=Delays(0, 0, 0.1, 0.2)))
counters.verdict(RecipientStatus("a@b", DeliveryStatus.DEFERRED, "4.4.1", "later"))
counters.result(((("connection", "opened"), 1), (("tls", "none", "plaintext"), 1)))
if sys.argv[3] == "stay":
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.read()
"""


def _agent(directory: Path, sent: int, stay: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AGENT, str(directory), str(sent), "stay" if stay else "go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _monitor(directory: Path, queue: list[dict[str, Any]] | None = None) -> NativeMonitor:
    return NativeMonitor(str(directory), lambda: list(queue or []), clock=lambda: 1000.0)


def _exposition(monitor: NativeMonitor) -> dict[str, float]:
    import asyncio

    return samples(asyncio.run(monitor.exposition()))


def test_dead_processes_are_folded_and_nothing_is_lost(tmp_path: Path) -> None:
    for count in (2, 3):
        assert _agent(tmp_path, count).wait(timeout=60) == 0
    live = _agent(tmp_path, 5, stay=True)
    try:
        assert live.stdout is not None and live.stdout.readline() == "ready\n"
        monitor = _monitor(tmp_path)
        before = _exposition(monitor)
        sent = 'mailcarrier_deliveries_total{dsn_class="2",status="sent",transport="smtp"}'
        assert before[sent] == 10
        assert before["mailcarrier_active_deliveries"] == 3  # the dead ones' gauges too
        assert compact(str(tmp_path)) == 6  # two counter, two histogram, two gauge files
        assert {p.name for p in tmp_path.iterdir()} == {
            "compact.lock",
            "counter_archive.db",
            f"counter_{live.pid}.db",
            f"gauge_livesum_{live.pid}.db",
            "histogram_archive.db",
            f"histogram_{live.pid}.db",
        }
        after = _exposition(monitor)
        assert after["mailcarrier_active_deliveries"] == 1  # only the live process's
        del before["mailcarrier_active_deliveries"], after["mailcarrier_active_deliveries"]
        assert after == before
    finally:
        live.communicate("", timeout=60)
    assert compact(str(tmp_path)) == 3
    assert compact(str(tmp_path)) == 0
    final = _exposition(_monitor(tmp_path))
    assert final.pop("mailcarrier_active_deliveries", 0.0) == 0.0  # no live process
    assert final == after
    assert {p.name for p in tmp_path.iterdir()} == {
        "compact.lock",
        "counter_archive.db",
        "histogram_archive.db",
    }
    stage = 'mailcarrier_delivery_delay_seconds_count{stage="transmission",transport="smtp"}'
    assert final[stage] == 10


def test_status_json_and_the_minutes_since_observe_started(tmp_path: Path) -> None:
    assert _agent(tmp_path, 2).wait(timeout=60) == 0
    monitor = _monitor(tmp_path)
    monitor.sample()  # the base: what was counted before observe started is no minute's
    assert _agent(tmp_path, 4).wait(timeout=60) == 0
    monitor.sample()
    status = monitor.status_json()
    assert status["deliveries"] == {"sent": 6, "deferred": 2, "bounced": 0}
    assert status["tls"] == [{"level": "none", "result": "plaintext", "sessions": 2}]
    assert status["active_deliveries"] == 0
    last_hour = status["last_hour"]
    assert isinstance(last_hour, list)
    assert last_hour[-1] == {"start": 960, "sent": 4, "deferred": 1, "bounced": 0}


_QUEUE = [
    {
        "queue_name": "deferred",
        "queue_id": "A1",
        "arrival_time": 400,
        "recipients": [
            {"address": "x@slow.example", "delay_reason": "old reason"},
            {"address": "y@slow.example", "delay_reason": "old reason"},
        ],
    },
    {
        "queue_name": "deferred",
        "queue_id": "B2",
        "arrival_time": 700,
        "recipients": [
            {"address": "z@slow.example", "delay_reason": "new reason"},
            {"address": "w@other.example", "delay_reason": "refused"},
        ],
    },
    {"queue_name": "hold", "queue_id": "C3", "arrival_time": 900, "recipients": []},
    {"queue_name": "maildrop", "queue_id": "D4", "arrival_time": 950, "recipients": []},
]


def test_the_queue_from_postqueue_objects(tmp_path: Path) -> None:
    shape = {q.queue: (q.messages, q.oldest_age) for q in queue_shape(_QUEUE, 1000.0)}
    assert shape == {
        "incoming": (0, 0.0),
        "active": (0, 0.0),
        "deferred": (2, 600.0),
        "hold": (1, 100.0),
    }
    assert [d.to_json() for d in deferred_domains(_QUEUE)] == [
        {"domain": "slow.example", "messages": 2, "recipients": 3, "last_reason": "new reason"},
        {"domain": "other.example", "messages": 1, "recipients": 1, "last_reason": "refused"},
    ]
    monitor = NativeMonitor("", lambda: _QUEUE, clock=lambda: 1000.0)
    got = _exposition(monitor)
    assert got['mailcarrier_queue_messages{queue="deferred"}'] == 2
    assert got['mailcarrier_queue_oldest_age_seconds{queue="hold"}'] == 100
    assert not any(k.startswith("mailcarrier_deliveries") for k in got)  # no directory
    assert monitor.queue_json()["queues"] == {
        "incoming": {"messages": 0, "oldest_age": 0.0},
        "active": {"messages": 0, "oldest_age": 0.0},
        "deferred": {"messages": 2, "oldest_age": 600.0},
        "hold": {"messages": 1, "oldest_age": 100.0},
    }
