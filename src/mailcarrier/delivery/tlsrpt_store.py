"""The TLSRPT counts (RFC 8460): every TLS attempt, per policy domain and UTC day, on disk.

`TlsrptStore` keeps one sqlite3 database, ``$data_directory/tlsrpt.sqlite``: one row per
distinct `Attempt` (day, policy, result type, addresses, reason code) with its count, so a
day of mail to a big provider stays a few rows. Each `record()` is one transaction with
``synchronous=FULL`` in the default rollback-journal mode: once it returns the count is on
disk, and a crash at any instant leaves the count before or after it, never a torn file (the
same promise durable.py makes for whole files, which an append-per-attempt does not need).
The database is opened on first use; an `OSError` or `sqlite3.Error` is logged by the caller
and never stops a delivery. It decides nothing: delivery/tlsrpt_step.py records, and
tls/tlsrpt_report.py turns `rows()` into the report.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Final

from mailcarrier.tls.tlsrpt import Attempt

__all__ = ["FILENAME", "TlsrptStore"]

FILENAME: Final = "tlsrpt.sqlite"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS attempts (
    day TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    policy_strings TEXT NOT NULL,
    mx_hosts TEXT NOT NULL,
    result_type TEXT NOT NULL,
    sending_ip TEXT NOT NULL,
    receiving_mx TEXT NOT NULL,
    receiving_ip TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_type, policy_strings, mx_hosts, result_type,
                 sending_ip, receiving_mx, receiving_ip, reason_code)
)
"""
_COLUMNS: Final = (
    "day, policy_domain, policy_type, policy_strings, mx_hosts, result_type, "
    "sending_ip, receiving_mx, receiving_ip, reason_code"
)


class TlsrptStore:
    """The counts in ``directory/tlsrpt.sqlite`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILENAME
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def record(self, attempt: Attempt, count: int = 1) -> None:
        """Count `attempt` (`count` times), durably."""
        values = (
            attempt.day,
            attempt.policy_domain,
            attempt.policy_type,
            json.dumps(list(attempt.policy_strings)),
            json.dumps(list(attempt.mx_hosts)),
            attempt.result_type,
            attempt.sending_ip,
            attempt.receiving_mx,
            attempt.receiving_ip,
            attempt.reason_code,
            count,
        )
        self._open().execute(
            f"INSERT INTO attempts ({_COLUMNS}, count) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT ({_COLUMNS}) DO UPDATE SET count = count + excluded.count",
            values,
        )

    def days(self) -> list[str]:
        """The days with counts, oldest first."""
        if not self.path.exists():
            return []
        rows = self._open().execute("SELECT DISTINCT day FROM attempts ORDER BY day")
        return [str(row[0]) for row in rows]

    def rows(self, day: str) -> list[tuple[Attempt, int]]:
        """Every distinct attempt of `day` with its count, in a stable order."""
        if not self.path.exists():
            return []
        found = self._open().execute(
            f"SELECT {_COLUMNS}, count FROM attempts WHERE day = ? ORDER BY {_COLUMNS}", (day,)
        )
        result = []
        for row in found:
            attempt = Attempt(
                day=str(row[0]),
                policy_domain=str(row[1]),
                policy_type=str(row[2]),
                policy_strings=tuple(json.loads(row[3])),
                mx_hosts=tuple(json.loads(row[4])),
                result_type=str(row[5]),
                sending_ip=str(row[6]),
                receiving_mx=str(row[7]),
                receiving_ip=str(row[8]),
                reason_code=str(row[9]),
            )
            result.append((attempt, int(row[10])))
        return result

    def forget(self, day: str) -> None:
        """Drop the counts of `day` (after its reports were sent)."""
        if self.path.exists():
            self._open().execute("DELETE FROM attempts WHERE day = ?", (day,))
