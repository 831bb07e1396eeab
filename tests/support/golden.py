"""Golden-file helper shared by tests/tables and tests/config.

`check_golden(ref_path, actual)` compares `actual` with the ``.ref`` file beside a ``.in``
case. With ``MAILCARRIER_REGEN_GOLDEN=1`` in the environment it (re)writes the ``.ref`` file
instead, so an intended change of output is one command:
``MAILCARRIER_REGEN_GOLDEN=1 pytest tests/config tests/tables``; review the diff before
committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REGEN_VARIABLE = "MAILCARRIER_REGEN_GOLDEN"


def regenerating() -> bool:
    return os.environ.get(REGEN_VARIABLE, "") not in ("", "0")


def check_golden(ref_path: Path, actual: str) -> None:
    if regenerating():
        ref_path.write_text(actual, encoding="utf-8")
        return
    assert ref_path.exists(), f"{ref_path} is missing: run with {REGEN_VARIABLE}=1"
    expected = ref_path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {ref_path} (regenerate: {REGEN_VARIABLE}=1)"


def cases(kind: str) -> list[Path]:
    return sorted((GOLDEN / kind).glob("*.in"))
