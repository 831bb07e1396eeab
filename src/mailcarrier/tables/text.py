"""Text helpers shared by every table kind and by main.cf lists.

`split_braced` splits "a, b c" style lists on commas and white space while keeping ``{...}``
groups whole (``inline:{ a=1, b=2 }`` is one item), `strip_group` removes one pair of outer
braces, and `logical_lines` reads a Postfix table source file: comments (``#`` as the first
non-blank character), blank lines, and continuation lines (a line that starts with white space
continues the previous one). Parsing of the lines themselves is each table kind's job.
"""

from __future__ import annotations

from pathlib import Path

from mailcarrier.tables.base import TableError

_SEPARATORS = frozenset(", \t\r\n")


def split_braced(text: str) -> list[str]:
    """Split on commas and white space outside ``{...}``; raise ValueError when unbalanced."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ValueError(f'unbalanced "}}" in "{text}"')
        if depth == 0 and char in _SEPARATORS:
            if current:
                items.append("".join(current))
                current = []
            continue
        current.append(char)
    if depth:
        raise ValueError(f'missing "}}" in "{text}"')
    if current:
        items.append("".join(current))
    return items


def strip_group(text: str) -> str:
    """``{ text }`` -> ``text`` (surrounding white space removed); other text unchanged."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        return stripped[1:-1].strip()
    return stripped


def logical_lines(path: Path) -> list[tuple[int, str]]:
    """(first line number, joined text) for each logical line of a table source file."""
    try:
        data = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise TableError(f"open {path}: {exc.strerror or exc}") from exc
    out: list[tuple[int, str]] = []
    for lineno, line in enumerate(data.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t" and out:
            first, text = out[-1]
            out[-1] = (first, text + " " + stripped)
            continue
        out.append((lineno, stripped))
    return out
