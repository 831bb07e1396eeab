"""``conf -e`` / ``conf -X``: change main.cf in place, keeping comments, order and layout.

`edit_main_cf(path, changes)` replaces each named setting where it stands (all of its
continuation lines included), removes it when the new value is None, and appends settings the
file does not have yet at its end. The new text is written to a temporary file in the same
directory, fsynced and renamed over main.cf, then the directory is fsynced, so a crash leaves
either the old file or the new one. Validation of the result is the caller's job.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mailcarrier.config.parser import logical_lines, split_setting


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


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".main.cf.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def edit_main_cf(path: Path, changes: Mapping[str, str | None]) -> str:
    """Apply `changes` to the main.cf at `path`; return the new text."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    new = edited_text(text, changes, str(path))
    write_atomically(path, new)
    return new
