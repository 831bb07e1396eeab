"""``conf -e`` / ``conf -X``: change main.cf in place, keeping comments, order and layout.

`edit_main_cf(path, changes)` replaces each named setting where it stands (all of its
continuation lines included), removes it when the new value is None, and appends settings the
file does not have yet at its end. The new text replaces main.cf atomically and durably
(durable.py: a temporary file beside it, fsync, rename, fsync of the directory), so a crash
leaves either the old file or the new one. Validation of the result is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mailcarrier.config.parser import logical_lines, split_setting
from mailcarrier.durable import write_atomically


def edited_text(text: str, changes: Mapping[str, str | None], filename: str) -> str:
    lines = text.splitlines()
    replace: dict[int, tuple[int, str | None]] = {}  # first line -> (last line, new text)
    seen: set[str] = set()
    for logical in logical_lines(text, filename):
        name, _ = split_setting(logical, filename)
        if name in changes:
            value = changes[name]
            new = None if value is None else f"{name} = {value}".rstrip()
            replace[logical.first] = (logical.last, new)
            seen.add(name)
    out: list[str] = []
    index = 1
    while index <= len(lines):
        if index in replace:
            last, new = replace[index]
            if new is not None:
                out.append(new)
            index = last + 1
            continue
        out.append(lines[index - 1])
        index += 1
    for name, value in changes.items():
        if name not in seen and value is not None:
            out.append(f"{name} = {value}".rstrip())
    return "\n".join(out) + "\n" if out else ""


def _write_main_cf(path: Path, text: str) -> None:
    """Replace main.cf durably (durable.py), keeping its permissions (0644 for a new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    data = text.encode("utf-8", "surrogateescape")
    write_atomically(path, data, mode=mode, prefix=".main.cf.", suffix="")


def edit_main_cf(path: Path, changes: Mapping[str, str | None]) -> str:
    """Apply `changes` to the main.cf at `path`; return the new text."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    new = edited_text(text, changes, str(path))
    _write_main_cf(path, new)
    return new
