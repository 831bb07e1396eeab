"""postmap(1)'s input format, read byte for byte as postmap reads it: ``key whitespace value``.

`read_entries(path, warnings, utf8=True)` yields one `Entry` (first line number, key bytes,
value bytes) per usable logical line and appends postmap's warning for each line it skips,
in file order, so that a caller adding its own warnings (duplicates: build.py) keeps
postmap's order. Logical lines follow Postfix's readllines(): blank lines and lines whose
first non-blank character is ``#`` are ignored, a line that starts with white space
continues the previous one (joined as it is, only the newline removed), text before the
first logical line that starts with white space is skipped with a warning. The key ends at
the first white space outside double quotes (a backslash protects the next byte) and stays
in its quoted form; the value is the rest without surrounding white space. With `utf8`
(Postfix: ``smtputf8_enable = yes``) a line that is neither ASCII nor valid UTF-8 is
skipped. Case folding and duplicates are the builder's job (build.py); this module only
reads, telling a `Progress` (progress.py) how far it is when one is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.progress import NULL_PROGRESS, Progress
from mailcarrier.tables.base import TableError

# Postfix's ISSPACE(): ASCII white space only.
_SPACE = b" \t\n\r\x0b\x0c"


@dataclass(frozen=True, slots=True)
class Entry:
    lineno: int  # the first line of the logical line
    key: bytes  # as written (quotes and backslashes kept), not folded
    value: bytes


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _is_blank_or_comment(line: bytes) -> bool:
    stripped = line.lstrip(_SPACE)
    return not stripped or stripped.startswith(b"#")


def logical_lines(data: bytes, path: Path, warnings: list[str]) -> Iterator[tuple[int, bytes]]:
    """(first line number, text) of each logical line of `data`, as readllines() joins them."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    current: list[bytes] = []
    first = 0
    for lineno, line in enumerate(lines, start=1):
        if _is_blank_or_comment(line):
            continue  # neither ends nor breaks a logical line
        if line[:1] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c") and current:
            current.append(line)
            continue
        if current:
            yield from _finish(first, lineno - 1, current, path, warnings)
        current, first = [line], lineno
    if current:
        yield from _finish(first, len(lines), current, path, warnings)


def _finish(
    first: int, last: int, parts: list[bytes], path: Path, warnings: list[str]
) -> Iterator[tuple[int, bytes]]:
    text = b"".join(parts)
    if b"\0" in text:
        where = f"line {first}" if first == last else f"line {first}-{last}"
        warnings.append(f"{path}, {where}: text after null byte may be ignored")
        text = text.split(b"\0", 1)[0]
    if text[:1] in (b" ", b"\t", b"\r", b"\x0b", b"\x0c"):
        shown = _text(text[:30]) + ("..." if len(text) > 30 else "")
        warnings.append(f'{path}: logical line must not start with whitespace: "{shown}"')
        return
    yield first, text


def split_key(line: bytes) -> tuple[bytes, bytes] | None:
    """(key, value) of a logical line; None when a double quote is left open."""
    in_quotes = False
    index, end = 0, len(line)
    while index < end:
        byte = line[index]
        if byte == 0x5C:  # backslash: the next byte is part of the key, whatever it is
            index += 1
            if index >= end:
                break
        elif byte in _SPACE:
            if not in_quotes:
                break
        elif byte == 0x22:
            in_quotes = not in_quotes
        index += 1
    if in_quotes:
        return None
    return line[:index], line[index + 1 :].strip(_SPACE)


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_entries(
    path: Path, warnings: list[str], *, utf8: bool = True, progress: Progress = NULL_PROGRESS
) -> Iterator[Entry]:
    """The entries of the postmap source file `path`; skipped lines are warnings.
    `progress` is told the file's lines and how many are read (``map`` on a terminal)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TableError(f"open {path}: {exc.strerror or exc}") from None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    progress.grow(lines)
    for lineno, line in _counted(logical_lines(data, path, warnings), lines, progress):
        if utf8 and not line.isascii() and not _valid_utf8(line):
            warnings.append(
                f'{path}, line {lineno}: non-UTF-8 input "{_text(line)}" -- ignoring this line'
            )
            continue
        parts = split_key(line)
        if parts is None:
            warnings.append(
                f"{path}, line {lineno}: unbalanced '\"' in '{_text(line)}' -- ignoring this line"
            )
            continue
        key, value = parts
        if not key or not value:
            warnings.append(f"{path}, line {lineno}: expected format: key whitespace value")
            continue
        if key.endswith(b":"):
            warnings.append(
                f'{path}, line {lineno}: record is in "key: value" format; is this an alias file?'
            )
        yield Entry(lineno, key, value)


def _counted(
    items: Iterator[tuple[int, bytes]], lines: int, progress: Progress
) -> Iterator[tuple[int, bytes]]:
    """`items`, telling `progress` of the lines read before each, and of all at the end."""
    done = 0
    for lineno, line in items:
        if lineno - 1 > done:
            progress.advance(lineno - 1 - done)
            done = lineno - 1
        yield lineno, line
    if lines > done:
        progress.advance(lines - done)
