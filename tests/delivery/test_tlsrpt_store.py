"""The TLSRPT counts on disk (delivery/tlsrpt_store.py): on an event loop attempts are
written in batches, one transaction each, in a worker thread; a clean stop (`aclose`, or the
end of the process) writes what is pending; a batch that cannot be written stays pending,
is reported once per try, and is written with the next; a database of the earlier format
is converted."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.tls.tlsrpt import Attempt

DAY = "2026-12-01"
OK = Attempt(DAY, "example.com", "no-policy-found")
BAD = Attempt(
    DAY, "mx.example.com", "tlsa", ("3 1 1 ab",), (), "validation-failure",
    report_domain="example.com",
)  # fmt: skip


async def test_attempts_on_a_loop_are_written_in_one_batch_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[tuple[int, int]] = []  # (distinct attempts, thread)
    write = TlsrptStore._write

    def spy(store: TlsrptStore, batch: dict[Attempt, int]) -> None:
        batches.append((len(batch), threading.get_ident()))
        write(store, batch)

    monkeypatch.setattr(TlsrptStore, "_write", spy)
    store = TlsrptStore(tmp_path, interval=0.05)
    for _ in range(200):
        store.record(OK)
    store.record(BAD, 3)
    assert not (tmp_path / "tlsrpt.sqlite").exists()  # nothing written yet
    async with asyncio.timeout(30):
        while not batches:
            await asyncio.sleep(0.01)
        while store._writing is not None:
            await asyncio.sleep(0.01)
    assert [size for size, _ in batches] == [2]
    assert batches[0][1] != threading.get_ident()
    assert TlsrptStore(tmp_path).rows(DAY) == [(OK, 200), (BAD, 3)]
    await store.aclose()


async def test_a_clean_stop_writes_what_is_pending(tmp_path: Path) -> None:
    store = TlsrptStore(tmp_path, interval=3600)
    store.record(OK)
    store.record(OK)
    await store.aclose()
    assert TlsrptStore(tmp_path).rows(DAY) == [(OK, 2)]
    store.record(BAD)  # reopened on use
    await store.aclose()
    assert TlsrptStore(tmp_path).rows(DAY) == [(OK, 2), (BAD, 1)]


async def test_a_batch_that_cannot_be_written_stays_pending(tmp_path: Path) -> None:
    blocked = tmp_path / "data"
    blocked.write_text("a file where the directory should be\n")
    warnings: list[str] = []
    store = TlsrptStore(blocked, interval=3600, warn=warnings.append)
    store.record(OK, 5)
    await store.aflush()
    assert warnings == [
        f"cannot write 5 TLSRPT count(s) to {blocked}/tlsrpt.sqlite: "
        f"[Errno 17] File exists: '{blocked}'"
    ]
    blocked.unlink()
    store.record(OK)
    await store.aclose()
    assert TlsrptStore(blocked).rows(DAY) == [(OK, 6)]
    assert len(warnings) == 1


def test_counts_pending_at_exit_are_written(tmp_path: Path) -> None:
    program = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from mailcarrier.delivery.tlsrpt_store import TlsrptStore\n"
        "from mailcarrier.tls.tlsrpt import Attempt\n"
        "async def main():\n"
        "    store = TlsrptStore(Path(sys.argv[1]), interval=3600)\n"
        f"    store.record(Attempt({DAY!r}, 'example.com', 'no-policy-found'), 7)\n"
        "    globals()['kept'] = store\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)],
        check=False,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert TlsrptStore(tmp_path).rows(DAY) == [(OK, 7)]


def test_a_database_of_the_earlier_format_is_converted(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "tlsrpt.sqlite")
    columns = (
        "day, policy_domain, policy_type, policy_strings, mx_hosts, result_type, "
        "sending_ip, receiving_mx, receiving_ip, reason_code"
    )
    db.execute(
        "CREATE TABLE attempts (day TEXT NOT NULL, policy_domain TEXT NOT NULL, "
        "policy_type TEXT NOT NULL, policy_strings TEXT NOT NULL, mx_hosts TEXT NOT NULL, "
        "result_type TEXT NOT NULL, sending_ip TEXT NOT NULL, receiving_mx TEXT NOT NULL, "
        "receiving_ip TEXT NOT NULL, reason_code TEXT NOT NULL, count INTEGER NOT NULL, "
        f"PRIMARY KEY ({columns}))"
    )
    db.execute(
        f"INSERT INTO attempts ({columns}, count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (DAY, "example.com", "no-policy-found", json.dumps([]), json.dumps([]), "", "", "",
         "", "", 4),
    )  # fmt: skip
    db.commit()
    db.close()
    store = TlsrptStore(tmp_path)
    store.record(OK)
    store.record(BAD)
    assert store.rows(DAY) == [(OK, 5), (BAD, 1)]
    store.close()
