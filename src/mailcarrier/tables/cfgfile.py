"""The configuration of a network table: a ``*_table(5)`` file, or main.cf parameters.

As Postfix's cfg_parser.c: a table name that starts with ``/`` or ``.`` is a file of
``name = value`` lines (``pgsql:/etc/postfix/relay.cf``), read as dict_load_fp reads it:
``#`` comment lines and blank lines are skipped, a line that starts with white space continues
the previous one, a later setting of a name overrides an earlier one (with a warning when the
value differs). Any other name is a prefix of main.cf parameters, the old LDAP style:
``ldap:ldapsource`` reads ``ldapsource_server_host`` and so on (`TableConfig.from_main_cf`).

The typed getters check values as cfg_get_str/int/bool do and fail with one line naming the
file, the line and the parameter (`TableError`: ``/etc/postfix/x.cf:3: bad numerical
configuration: retry_interval = soon``). Each table kind passes the names it knows; the
others are warned about (Postfix ignores them silently: mistyped names stay unnoticed there).
The `key=value` pairs of an in-line ``type:{ name=value, ... }`` table are not supported for
these kinds, as in Postfix. Neighbours: dbcommon.py (query templates), netcore.py (hosts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.tables.base import TableError

MainCfLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Setting:
    value: str
    lineno: int  # 0 for main.cf style (the file:line is main.cf's, not known here)


def is_file_name(name: str) -> bool:
    """Postfix's rule: a name that starts with / or . is a file; else a main.cf prefix."""
    return name.startswith(("/", "."))


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, joined text), as readllines(): continuation lines are appended
    as they are (their leading white space kept), comment lines inside are dropped."""
    first = 0
    parts: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t" and parts:
            parts.append(line)
            continue
        if parts:
            yield first, "".join(parts)
        first, parts = lineno, [line]
    if parts:
        yield first, "".join(parts)


def split_nameval(text: str) -> tuple[str, str]:
    """``name = value`` -> (name, value); ValueError with split_nameval()'s wording."""
    stripped = text.lstrip()
    if not stripped or stripped[0] == "=":
        raise ValueError("missing attribute name")
    end = 0
    while end < len(stripped) and not stripped[end].isspace() and stripped[end] != "=":
        end += 1
    rest = stripped[end:].lstrip()
    if not rest.startswith("="):
        raise ValueError("missing '=' after attribute name")
    return stripped[:end], rest[1:].strip()


class TableConfig:
    """The settings of one table, and where each came from."""

    def __init__(self, name: str, settings: dict[str, Setting], *, filename: str = "") -> None:
        self.name = name  # the table name: the file, or the main.cf prefix
        self.filename = filename
        self.settings = settings
        self.warnings: list[str] = []

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, filename: str) -> TableConfig:
        settings: dict[str, Setting] = {}
        config = cls(filename, settings, filename=filename)
        for lineno, line in _logical_lines(text):
            if line[0] in " \t":
                config.warnings.append(
                    f"{filename}:{lineno}: logical line must not start with whitespace"
                )
                continue
            try:
                name, value = split_nameval(line)
            except ValueError as exc:
                shown = line if len(line) <= 60 else line[:60] + "..."
                raise TableError(f'{exc}: "{shown}"', filename=filename, lineno=lineno) from None
            old = settings.get(name)
            if old is not None and old.value != value:
                config.warnings.append(
                    f"{filename}:{lineno}: overriding earlier entry: {name}={old.value}"
                )
            settings[name] = Setting(value, lineno)
        return config

    @classmethod
    def from_file(cls, path: Path) -> TableConfig:
        try:
            data = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise TableError(f"open {path}: {exc.strerror or exc}", filename=str(path)) from None
        return cls.from_text(data, str(path))

    @classmethod
    def from_main_cf(cls, prefix: str, lookup: MainCfLookup, names: Iterable[str]) -> TableConfig:
        """``prefix_name`` parameters of main.cf, for the `names` a table kind knows."""
        settings: dict[str, Setting] = {}
        for name in names:
            value = lookup(f"{prefix}_{name}")
            if value is not None:
                settings[name] = Setting(value.strip(), 0)
        return cls(prefix, settings)

    # --- checks -----------------------------------------------------------------------
    def check_names(self, known: Iterable[str], kind: str) -> None:
        """Warn about settings no `kind` table reads (a typo Postfix would ignore)."""
        allowed = set(known)
        for name, setting in self.settings.items():
            if name not in allowed:
                where = f"{self.filename}:{setting.lineno}: " if setting.lineno else ""
                self.warnings.append(f"{where}unknown {kind} parameter ignored: {name}")

    def _label(self, name: str) -> str:
        return name if self.filename else f"{self.name}_{name}"

    def _fail(self, name: str, message: str, value: str) -> TableError:
        setting = self.settings.get(name)
        return TableError(
            message,
            parameter=self._label(name),
            value=value,
            filename=self.filename,
            lineno=setting.lineno if setting else 0,
        )

    # --- getters (cfg_get_str, cfg_get_int, cfg_get_bool) -----------------------------
    def has(self, name: str) -> bool:
        return name in self.settings

    def string(self, name: str, default: str = "", min_len: int = 0, max_len: int = 0) -> str:
        setting = self.settings.get(name)
        value = setting.value if setting else default
        if min_len and len(value) < min_len:
            raise self._fail(
                name,
                f"bad string length {len(value)} < {min_len}: {self._label(name)} = {value}",
                value,
            )
        if max_len and len(value) > max_len:
            raise self._fail(
                name,
                f"bad string length {len(value)} > {max_len}: {self._label(name)} = {value}",
                value,
            )
        return value

    def integer(self, name: str, default: int, min_value: int = 0, max_value: int = 0) -> int:
        setting = self.settings.get(name)
        value = default
        if setting is not None:
            text = setting.value
            digits = text[1:] if text[:1] in "+-" else text
            if not digits.isascii() or not digits.isdigit():
                raise self._fail(
                    name, f"bad numerical configuration: {self._label(name)} = {text}", text
                )
            value = int(text)
        if min_value and value < min_value:
            raise self._fail(
                name,
                f"invalid {self._label(name)} parameter value {value} < {min_value}",
                str(value),
            )
        if max_value and value > max_value:
            raise self._fail(
                name,
                f"invalid {self._label(name)} parameter value {value} > {max_value}",
                str(value),
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        setting = self.settings.get(name)
        if setting is None:
            return default
        word = setting.value.lower()
        if word in ("yes", "no"):
            return word == "yes"
        raise self._fail(
            name,
            f"bad boolean configuration: {self._label(name)} = {setting.value}",
            setting.value,
        )

    def optional(self, name: str) -> str | None:
        """cfg_get_str with a NULL default: None when unset or empty."""
        setting = self.settings.get(name)
        return setting.value if setting and setting.value else None
