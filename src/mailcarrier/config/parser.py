"""main.cf reader: ``name = value`` lines, continuation lines, comments.

Returns raw (unexpanded) values with the file and line each came from, so validation errors
can name ``file:line``. As in postconf(5): white space around ``=`` and at the end of a logical
line is ignored, a line starting with white space continues the previous one, a line whose
first non-blank character is ``#`` is a comment, and the last setting of a name wins.
Expansion of ``$name`` is in `expand.py`; editing (``conf -e``) is in `edit.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.errors import ConfigError

NAME_RE: Final = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class RawSetting:
    name: str
    value: str
    filename: str
    lineno: int


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """One ``name = value`` setting and the physical lines [first, last] it spans (1-based)."""

    first: int
    last: int
    text: str


def logical_lines(text: str, filename: str = "main.cf") -> list[LogicalLine]:
    out: list[LogicalLine] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if not out:
                raise ConfigError(
                    "continuation line without a preceding parameter",
                    filename=filename,
                    lineno=lineno,
                )
            prev = out[-1]
            out[-1] = LogicalLine(prev.first, lineno, prev.text + " " + stripped)
            continue
        out.append(LogicalLine(lineno, lineno, stripped))
    return out


def split_setting(line: LogicalLine, filename: str) -> tuple[str, str]:
    name, sep, value = line.text.partition("=")
    name = name.strip()
    if not sep:
        raise ConfigError(
            f'missing "=" after parameter name: "{line.text}"', filename=filename, lineno=line.first
        )
    if not NAME_RE.fullmatch(name):
        raise ConfigError(
            f'bad parameter name: "{name}"', parameter=name, filename=filename, lineno=line.first
        )
    return name, value.strip()


def _foreign(line: LogicalLine) -> bool:
    """A setting Postfix accepts and mailcarrier cannot name: Postfix allows any name
    without blanks or "=" (``my-relay_destination_concurrency_limit`` after a master.cf
    service ``my-relay``); ``$name`` can only refer to letters, digits and underscores."""
    name, sep, _ = line.text.partition("=")
    name = name.strip()
    return bool(sep and name) and not NAME_RE.fullmatch(name) and not any(c.isspace() for c in name)


def parse_main_cf(
    text: str, filename: str = "main.cf", *, skip_foreign: bool = False
) -> dict[str, RawSetting]:
    """Parse main.cf text. The last setting of a name wins, as in Postfix. With
    `skip_foreign` (a Postfix main.cf read in Postfix-native mode), settings whose names
    only Postfix accepts are left out instead of being an error."""
    out: dict[str, RawSetting] = {}
    for line in logical_lines(text, filename):
        if skip_foreign and _foreign(line):
            continue
        name, value = split_setting(line, filename)
        out.pop(name, None)  # keep file order of the effective settings
        out[name] = RawSetting(name, value, filename, line.first)
    return out


def read_main_cf(path: Path, *, skip_foreign: bool = False) -> dict[str, RawSetting]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", filename=str(path)) from exc
    return parse_main_cf(text, str(path), skip_foreign=skip_foreign)
