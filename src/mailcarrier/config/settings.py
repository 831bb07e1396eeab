"""The frozen settings object: every parameter expanded, typed and validated once.

`Settings.load(config_dir)` reads main.cf, applies ``-o`` overrides, expands ``$name`` and
converts every known parameter to its type; a bad value raises `ConfigError` naming the
parameter, the value and file:line. Getters return the pre-parsed values. `AgentSettings`
is the per-transport view: ``agent.time("connect_timeout")`` reads ``smtp_connect_timeout`` for
SMTP and ``lmtp_connect_timeout`` for LMTP.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from mailcarrier.config.params import PARAMS, Param, ParamType
from mailcarrier.config.parser import RawSetting, read_main_cf
from mailcarrier.errors import ConfigError

Value = bool | int | float | str | tuple[str, ...]

_TIME_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_RE: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_SIZE_RE: Final = re.compile(r"\d+")
_LIST_SPLIT: Final = re.compile(r"[\s,]+")
_REF_RE: Final = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?:([?:])(\{[^}]*\}|[^}]*))?\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))")
_MAX_DEPTH: Final = 100


def parse_time(text: str, unit: str = "s") -> float:
    m = _TIME_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f'bad time value "{text}"')
    return float(m.group(1)) * _TIME_UNITS[m.group(2) or unit]


def split_list(text: str) -> tuple[str, ...]:
    return tuple(item for item in _LIST_SPLIT.split(text.strip()) if item)


def _convert(param: Param, text: str) -> Value:
    kind = param.type
    if kind is ParamType.BOOL:
        low = text.strip().lower()
        if low in ("yes", "true", "1"):
            return True
        if low in ("no", "false", "0"):
            return False
        raise ValueError(f'bad boolean value "{text}" (want yes or no)')
    if kind is ParamType.INT:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError(f'bad numerical value "{text}"') from None
        if param.minimum is not None and number < param.minimum:
            raise ValueError(f'value "{text}" is below the minimum {param.minimum}')
        return number
    if kind is ParamType.TIME:
        return parse_time(text, param.unit)
    if kind is ParamType.SIZE:
        if not _SIZE_RE.fullmatch(text.strip()):
            raise ValueError(f'bad size value "{text}"')
        return int(text.strip())
    if kind in (ParamType.LIST, ParamType.MAPS):
        items = split_list(text)
        if param.choices:
            for item in items:
                if item.lower() not in param.choices:
                    raise ValueError(f'unknown value "{item}" (want one of {", ".join(param.choices)})')
        return items
    value = text.strip()
    if param.choices and value.lower() not in param.choices and value:
        raise ValueError(f'unknown value "{value}" (want one of {", ".join(param.choices)})')
    return value


class Settings:
    """Frozen, validated configuration. Build with `defaults()`, `load()` or `with_overrides()`."""

    __slots__ = ("_raw", "_sources", "_values", "config_dir")

    def __init__(
        self,
        raw: Mapping[str, RawSetting],
        config_dir: Path | None = None,
    ) -> None:
        self.config_dir = config_dir
        self._raw: Mapping[str, RawSetting] = MappingProxyType(dict(raw))
        expanded: dict[str, str] = {}
        values: dict[str, Value] = {}
        for name, param in PARAMS.items():
            text = self._expand_name(name, expanded, ())
            try:
                values[name] = _convert(param, text)
            except ValueError as exc:
                src = self._raw.get(name)
                raise ConfigError(
                    f"parameter {name}: {exc}",
                    parameter=name,
                    value=text,
                    filename=src.filename if src else "",
                    lineno=src.lineno if src else 0,
                ) from None
        self._values: Mapping[str, Value] = MappingProxyType(values)
        self._sources = expanded

    # --- construction -----------------------------------------------------------------
    @classmethod
    def defaults(cls) -> Settings:
        return cls({})

    @classmethod
    def load(
        cls, config_dir: str | Path | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        raw: dict[str, RawSetting] = {}
        directory = Path(config_dir) if config_dir is not None else None
        if directory is not None:
            if not directory.is_dir():
                raise ConfigError(f"configuration directory {directory} does not exist")
            raw.update(read_main_cf(directory / "main.cf"))
        for name, value in (overrides or {}).items():
            raw[name] = RawSetting(name, value, "-o", 0)
        return cls(raw, directory)

    def with_overrides(self, overrides: Mapping[str, str]) -> Settings:
        raw = dict(self._raw)
        for name, value in overrides.items():
            raw[name] = RawSetting(name, str(value), "-o", 0)
        return Settings(raw, self.config_dir)

    # --- expansion --------------------------------------------------------------------
    def _raw_text(self, name: str) -> str:
        if name in self._raw:
            return self._raw[name].value
        param = PARAMS.get(name)
        if param is None:
            return ""
        if name == "myhostname" and not param.default:
            return socket.getfqdn() or "localhost"
        return param.default

    def _expand_name(self, name: str, cache: dict[str, str], stack: tuple[str, ...]) -> str:
        if name in cache:
            return cache[name]
        if name in stack or len(stack) > _MAX_DEPTH:
            src = self._raw.get(name)
            raise ConfigError(
                f"parameter {name}: recursive expansion of ${name}",
                parameter=name,
                filename=src.filename if src else "",
                lineno=src.lineno if src else 0,
            )
        value = self._expand_text(self._raw_text(name), cache, (*stack, name))
        cache[name] = value
        return value

    def _expand_text(self, text: str, cache: dict[str, str], stack: tuple[str, ...]) -> str:
        if "$" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            ref = m.group(1) or m.group(4) or m.group(5)
            op, arg = m.group(2), m.group(3)
            value = self._expand_name(ref, cache, stack)
            if op is None:
                return value
            if arg.startswith("{") and arg.endswith("}"):
                arg = arg[1:-1]
            if op == "?":
                return self._expand_text(arg, cache, stack) if value else ""
            return value if value else self._expand_text(arg, cache, stack)

        return _REF_RE.sub(repl, text.replace("$$", "\0")).replace("\0", "$")

    # --- getters ----------------------------------------------------------------------
    def value(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name}") from None

    def get_bool(self, name: str) -> bool:
        v = self.value(name)
        assert isinstance(v, bool), name
        return v

    def get_int(self, name: str) -> int:
        v = self.value(name)
        assert isinstance(v, int) and not isinstance(v, bool), name
        return v

    def get_time(self, name: str) -> float:
        v = self.value(name)
        assert isinstance(v, float), name
        return v

    def get_str(self, name: str) -> str:
        v = self.value(name)
        assert isinstance(v, str), name
        return v

    def get_list(self, name: str) -> tuple[str, ...]:
        v = self.value(name)
        assert isinstance(v, tuple), name
        return v

    def expanded(self, name: str) -> str:
        """The expanded text of a parameter, as `conf -x` shows it."""
        return self._sources[name]

    def is_set(self, name: str) -> bool:
        return name in self._raw

    def source(self, name: str) -> RawSetting | None:
        return self._raw.get(name)

    def for_transport(self, transport: str) -> AgentSettings:
        return AgentSettings(self, transport)


class AgentSettings:
    """The smtp_/lmtp_ view of `Settings` for one delivery transport."""

    __slots__ = ("settings", "transport")

    def __init__(self, settings: Settings, transport: str) -> None:
        if transport not in ("smtp", "lmtp"):
            raise ConfigError(f'unknown transport "{transport}" (want smtp or lmtp)')
        self.settings = settings
        self.transport = transport

    @property
    def is_lmtp(self) -> bool:
        return self.transport == "lmtp"

    def name(self, suffix: str) -> str:
        """The parameter name an agent of this transport reads for ``smtp_<suffix>``."""
        smtp_name = "smtp_" + suffix
        if self.transport == "smtp":
            return smtp_name
        param = PARAMS.get(smtp_name)
        if param is not None and param.lmtp_name:
            return param.lmtp_name
        return smtp_name

    def bool(self, suffix: str) -> bool:
        return self.settings.get_bool(self.name(suffix))

    def int(self, suffix: str) -> int:
        return self.settings.get_int(self.name(suffix))

    def time(self, suffix: str) -> float:
        return self.settings.get_time(self.name(suffix))

    def str(self, suffix: str) -> str:
        return self.settings.get_str(self.name(suffix))

    def list(self, suffix: str) -> tuple[str, ...]:
        return self.settings.get_list(self.name(suffix))
