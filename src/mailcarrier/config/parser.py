"""main.cf reader: ``name = value`` lines, continuation lines, comments.

Returns raw (unexpanded) values with the file and line each came from, so validation errors
can name ``file:line``. Expansion of ``$name`` happens in `settings.py`, lazily per value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.errors import ConfigError

_NAME_RE = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class RawSetting:
    name: str
    value: str
    filename: str
    lineno: int


def parse_main_cf(text: str, filename: str = "main.cf") -> dict[str, RawSetting]:
    """Parse main.cf text. The last setting of a name wins, as in Postfix."""
    out: dict[str, RawSetting] = {}
    logical: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if not logical:
                raise ConfigError(
                    "continuation line without a preceding parameter",
                    filename=filename,
                    lineno=lineno,
                )
            first, acc = logical[-1]
            logical[-1] = (first, acc + " " + stripped)
            continue
        logical.append((lineno, stripped))
    for lineno, line in logical:
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f'missing "=" after parameter name: "{line}"'
                if not sep
                else f'bad parameter name: "{name}"',
                filename=filename,
                lineno=lineno,
            )
        out[name] = RawSetting(name, value.strip(), filename, lineno)
    return out


def read_main_cf(path: Path) -> dict[str, RawSetting]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", filename=str(path)) from exc
    return parse_main_cf(text, str(path))
