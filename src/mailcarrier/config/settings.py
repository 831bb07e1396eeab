"""The frozen settings object: every parameter expanded, typed and validated once.

`Settings.load(config_dir)` reads main.cf, applies ``-o`` overrides, expands ``$name`` (see
`expand.py`) and converts every known parameter to its type (see `convert.py`); a bad value
raises `ConfigError` naming the parameter, the value and file:line, so nothing half-parsed is
ever used. Unknown parameters that nothing refers to become "unused parameter" warnings.
Getters return the pre-parsed values. `AgentSettings` is the per-transport view:
``agent.params.connect_timeout`` reads ``smtp_connect_timeout`` for SMTP and
``lmtp_connect_timeout`` for LMTP. Tables named by parameters open with `open_maps`.
`load` also reads CONFIG_DIR/master.cf when there is one (mastercf.py): each smtp or lmtp
service there is a named transport, whose settings (`service(name)`) are these plus its
``-o`` overrides and ``service_name``, made and validated with these, so that a bad ``-o``
value stops the program with master.cf's file and line, as a bad main.cf value does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from mailcarrier.config.convert import Value, convert, parse_time, split_list
from mailcarrier.config.defaults import default_config_directory, dynamic_default
from mailcarrier.config.expand import Expander, ExpandError
from mailcarrier.config.params import PARAMS, PER_TRANSPORT, ParamType
from mailcarrier.config.parser import NAME_RE, RawSetting, read_main_cf
from mailcarrier.config.views import RENAMED, ClientMapsName, ClientParams, MainParams, MapsName
from mailcarrier.errors import ConfigError
from mailcarrier.tables import FileWatcher, Maps, TableError, open_maps, spec_files
from mailcarrier.tables.spec import NETWORK_KINDS

if TYPE_CHECKING:
    from mailcarrier.config.mastercf import MasterCf, MasterService
    from mailcarrier.tables.proxy import ProxyService

_MENTION: Final = re.compile(r"\$[{(]?([A-Za-z0-9_]+)")
# A reference that must name a parameter: $name, ${name}, $(name); not $$ (a dollar sign),
# nor ${name?...} and ${name:...}, which ask whether it is set.
_PLAIN_REFERENCE: Final = re.compile(
    r"\$(?:\$|([A-Za-z0-9_]+)|\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|[{(])"
)
# A network table named by a main.cf prefix rather than a file: pgsql:pgsource, ...
_TABLE_PREFIX: Final = re.compile(
    r"(?:^|[\s,{])(?:proxy:)?(?:" + "|".join(sorted(NETWORK_KINDS)) + r"):([A-Za-z0-9_]+)"
)
# Tables asked for every reply, status or content line, from code that cannot wait: network
# tables (pgsql:, ...; Postfix allows them, but there each smtp(8) process waits alone) are
# refused there, so that no lookup ever holds the event loop.
LINE_FILTERS: Final = frozenset(
    f"{prefix}_{suffix}"
    for prefix in ("smtp", "lmtp")
    for suffix in (
        "reply_filter",
        "delivery_status_filter",
        "header_checks",
        "mime_header_checks",
        "nested_header_checks",
        "body_checks",
    )
)
# The fields of ClientParams: the suffix of every smtp_ parameter.
CLIENT_SUFFIXES: Final = tuple(n.removeprefix("smtp_") for n in PARAMS if n.startswith("smtp_"))

__all__ = ["AgentSettings", "Settings", "Value", "parse_time", "split_list"]


class Settings:
    """Frozen, validated configuration. Build with `defaults()`, `load()` or `with_overrides()`."""

    __slots__ = (
        "_clients",
        "_expander",
        "_maps",
        "_raw",
        "_services",
        "_texts",
        "_transport_values",
        "_values",
        "config_dir",
        "label",
        "master",
        "params",
        "proxy",
        "warnings",
    )

    def __init__(
        self,
        raw: Mapping[str, RawSetting],
        config_dir: Path | None = None,
        *,
        proxy: ProxyService | None = None,
        master: MasterCf | None = None,
    ) -> None:
        self.config_dir = config_dir
        # master.cf (standalone mode only): its smtp/lmtp services are named transports.
        self.master = master
        # The master.cf service these settings are of ("": main.cf's, the built-in ones).
        self.label = ""
        # Postfix's proxymap(8), for proxy:type:name tables (the Postfix-native front end
        # sets it); None: such tables open their inner table directly.
        self.proxy = proxy
        self._raw: Mapping[str, RawSetting] = MappingProxyType(dict(raw))
        self._expander = Expander(self._raw_text)
        # The tables each MAPS parameter names, opened once per configuration (smtp(8)
        # opens them at start-up; a changed table file makes a new Settings, watcher()).
        self._maps: dict[str, Maps] = {}
        texts: dict[str, str] = {}
        values: dict[str, Value] = {}
        for name, param in PARAMS.items():
            texts[name] = self._expand(name)
            try:
                values[name] = convert(param, texts[name])
            except ValueError as exc:
                raise self._error(name, f"parameter {name}: {exc}", texts[name]) from None
        self._values: Mapping[str, Value] = MappingProxyType(values)
        # Typed views (views.py): every read in the code goes through these.
        self.params = MainParams(**{RENAMED.get(n, n): v for n, v in values.items()})  # type: ignore[arg-type]
        self._clients = {t: self._client_params(t) for t in ("smtp", "lmtp")}
        self._texts: Mapping[str, str] = MappingProxyType(texts)
        self._transport_values: Mapping[str, Value] = MappingProxyType(self._per_transport())
        # Each named transport's settings, made now so that a bad -o value is found now.
        self._services: dict[str, Settings] = {
            name: self._service_settings(service)
            for name, service in (master.transports.items() if master else ())
        }
        self.warnings: tuple[str, ...] = self._find_warnings() + self._service_warnings()

    # --- construction -----------------------------------------------------------------
    @classmethod
    def defaults(cls) -> Settings:
        return cls({})

    @classmethod
    def load(
        cls, config_dir: str | Path | None = None, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Read CONFIG_DIR/main.cf (without a directory: the per-user one, if it exists)."""
        raw: dict[str, RawSetting] = {}
        if config_dir is not None:
            directory: Path | None = Path(config_dir)
            assert directory is not None
            if not directory.is_dir():
                raise ConfigError(f"configuration directory {directory} does not exist")
        else:
            candidate = default_config_directory()
            directory = candidate if (candidate / "main.cf").is_file() else None
        master = None
        if directory is not None:
            raw.update(read_main_cf(directory / "main.cf"))
            master = _read_master_cf(directory / "master.cf")
        raw.update(_override_settings(overrides or {}))
        return cls(raw, directory, master=master)

    def __reduce__(
        self,
    ) -> tuple[
        Callable[[dict[str, RawSetting], Path | None, MasterCf | None], Settings],
        tuple[dict[str, RawSetting], Path | None, MasterCf | None],
    ]:
        """Pickled as its raw settings (and master.cf): unpickling validates them again
        (agent processes)."""
        return (_rebuild, (dict(self._raw), self.config_dir, self.master))

    def with_overrides(self, overrides: Mapping[str, str]) -> Settings:
        raw = dict(self._raw)
        raw.update(_override_settings(overrides))
        return Settings(raw, self.config_dir, proxy=self.proxy, master=self.master)

    def with_tables(self, tables: Mapping[str, Maps]) -> Settings:
        """These settings, with the MAPS parameters named in `tables` answered by the given
        tables (a program's own, such as the credentials of `mailcarrier.send`) instead of
        opening what the parameter's text names; the parameter must still be set."""
        copy = Settings(self._raw, self.config_dir, proxy=self.proxy, master=self.master)
        copy._maps.update(tables)
        return copy

    # --- expansion and errors ---------------------------------------------------------
    def _raw_text(self, name: str) -> str | None:
        param = PARAMS.get(name)
        setting = self._raw.get(name)
        if setting is not None and not (param is not None and param.read_only):
            return setting.value
        if param is None:
            return None
        if not param.default:
            computed = dynamic_default(name, self._raw_value)
            if computed is not None:
                return computed
        return param.default

    def _raw_value(self, name: str) -> str | None:
        setting = self._raw.get(name)
        return None if setting is None else setting.value

    def _expand(self, name: str) -> str:
        try:
            return self._expander.name(name)
        except ExpandError as exc:
            culprit = exc.name if exc.name in self._raw else name
            message = f"parameter {culprit}: {exc}"
            raise self._error(culprit, message, self._raw_value(culprit)) from None

    def _error(self, name: str, message: str, value: str | None) -> ConfigError:
        src = self._raw.get(name)
        return ConfigError(
            message,
            parameter=name,
            value=value or "",
            filename=src.filename if src else "",
            lineno=src.lineno if src else 0,
        )

    def _per_transport(self) -> dict[str, Value]:
        """Validate ``<transport>_destination_concurrency_limit`` and friends (see
        `PER_TRANSPORT`) set for transports the table does not declare."""
        out: dict[str, Value] = {}
        for name in self._raw:
            if name in PARAMS:
                continue
            for suffix, fallback in PER_TRANSPORT.items():
                if name.endswith("_" + suffix) and len(name) > len(suffix) + 1:
                    text = self._expand(name)
                    try:
                        out[name] = convert(PARAMS[fallback], text)
                    except ValueError as exc:
                        raise self._error(name, f"parameter {name}: {exc}", text) from None
        return out

    # --- named transports (master.cf) -------------------------------------------------
    def _service_settings(self, service: MasterService) -> Settings:
        """These settings with the service's -o overrides, and service_name set to it, as
        the Postfix daemon of that service sees its configuration."""
        raw = dict(self._raw)
        raw.pop("service_name", None)
        raw["service_name"] = RawSetting("service_name", service.name, "", 0)
        for setting in service.overrides:
            raw.pop(setting.name, None)  # later settings win, and keep their place last
            raw[setting.name] = setting
        made = Settings(raw, self.config_dir, proxy=self.proxy)
        made.label = service.name
        return made

    def _service_warnings(self) -> tuple[str, ...]:
        """The warnings about the services' own -o settings (unknown names, ...)."""
        if self.master is None:
            return ()
        prefix = self.master.filename + ":"
        found = (w for s in self._services.values() for w in s.warnings if w.startswith(prefix))
        return tuple(dict.fromkeys(found))

    @property
    def services(self) -> Mapping[str, MasterService]:
        """The named transports of master.cf (smtp and lmtp services), by name."""
        return self.master.transports if self.master is not None else {}

    def service(self, name: str) -> Settings:
        """The settings of master.cf service `name` (KeyError when there is none)."""
        return self._services[name]

    def _find_warnings(self) -> tuple[str, ...]:
        # Like postconf: a name that any main.cf value mentions as $name counts as used, and
        # so do the parameters of main.cf-style tables (pgsql:pgsource -> pgsource_hosts).
        # master.cf's -o values count too.
        overrides = [o for s in (self.master.services if self.master else ()) for o in s.overrides]
        mentioned = {
            m.group(1)
            for setting in (*self._raw.values(), *overrides)
            for m in _MENTION.finditer(setting.value)
        }
        prefixes = tuple(
            m.group(1) + "_"
            for setting in self._raw.values()
            for m in _TABLE_PREFIX.finditer(setting.value)
        )
        out: list[str] = []
        for name, setting in self._raw.items():
            where = f"{setting.filename}:{setting.lineno}: " if setting.lineno else ""
            param = PARAMS.get(name)
            known = (
                name in self._transport_values
                or name in self._expander.referenced
                or name in mentioned
                or (bool(prefixes) and name.startswith(prefixes))
            )
            if param is None and not known:
                out.append(f"{where}unused parameter: {name}={setting.value}{_did_you_mean(name)}")
            elif param is not None and param.read_only:
                out.append(f"{where}read-only parameter ignored: {name}")
        # As postconf: a $name that nothing defines (neither main.cf nor a default).
        undefined: set[str] = set()
        for setting in self._raw.values():
            where = f"{setting.filename}:{setting.lineno}: " if setting.lineno else ""
            for found in _PLAIN_REFERENCE.finditer(setting.value):
                name = found.group(1) or found.group(2) or found.group(3)
                if not name or name in PARAMS or name in self._raw or name in undefined:
                    continue
                undefined.add(name)
                out.append(f"{where}undefined parameter: {name}{_did_you_mean(name)}")
        return tuple(out)

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

    def get_size(self, name: str) -> int:
        """A SIZE parameter in bytes."""
        return self.get_int(name)

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

    def get_transport(self, transport: str, suffix: str) -> Value:
        """A per-transport scheduler parameter: ``<transport>_<suffix>`` when set (or declared),
        else its global fallback, e.g. ``get_transport("relay", "destination_recipient_limit")``.
        """
        name = f"{transport}_{suffix}"
        if name in self._values:
            return self._values[name]
        if name in self._transport_values:
            return self._transport_values[name]
        return self.value(PER_TRANSPORT[suffix])

    def open_maps(self, name: MapsName) -> Maps:
        """The tables a MAPS parameter names, relative to config_dir: opened on first use
        and kept for the life of these settings (a changed file is seen by `watcher()`, and
        a reload makes new settings, as a Postfix daemon restarts when its tables change).

        Raises `mailcarrier.tables.TableError` when a table cannot be opened (then nothing
        is kept: the next call tries again); warnings about malformed lines are in the
        result's `warnings`.
        """
        maps = self._maps.get(name)
        if maps is None:
            maps = open_maps(
                self.get_list(name),
                self.config_dir,
                name,
                main_cf=self.table_parameter,
                proxy=self.proxy,
            )
            if maps.network and name in LINE_FILTERS:
                spec = next(t.spec for t in maps.tables if t.network)
                raise TableError(
                    f"{name}: {spec}: a table that asks a server cannot be used here: every line "
                    "would wait for it (use regexp:, pcre:, cidr: or a file table)",
                    parameter=name,
                )
            self._maps[name] = maps
        return maps

    def table_parameter(self, name: str) -> str | None:
        """A main.cf parameter a ``type:prefix`` table reads (``prefix_hosts``, ...),
        expanded; None when it is not set."""
        if name not in self._raw:
            return None
        return self._expand(name)

    def expanded(self, name: str) -> str:
        """The expanded text of a parameter, as `conf -x` shows it."""
        if name in self._texts:
            return self._texts[name]
        return self._expand(name)

    def raw(self, name: str) -> str:
        """The unexpanded text: main.cf or -o if set there, else the default."""
        return self._raw_text(name) or ""

    def default(self, name: str) -> str:
        """The unexpanded default (computed ones resolved), as `conf -d` shows it."""
        param = PARAMS[name]
        if not param.default:
            computed = dynamic_default(name, lambda _n: None)
            if computed is not None:
                return computed
        return param.default

    def is_set(self, name: str) -> bool:
        return name in self._raw

    def source(self, name: str) -> RawSetting | None:
        return self._raw.get(name)

    def non_default(self) -> dict[str, RawSetting]:
        """Every setting from main.cf or -o (known or not), in file order, as `conf -n`."""
        return dict(self._raw)

    def for_transport(self, transport: str) -> AgentSettings:
        return AgentSettings(self, transport)

    def client_params(self, transport: str) -> ClientParams:
        """The typed smtp_ (or lmtp_) view of one delivery transport."""
        return self._clients[transport]

    def _client_params(self, transport: str) -> ClientParams:
        values = self._values
        fields: dict[str, Value] = {}
        for suffix in CLIENT_SUFFIXES:
            name = "smtp_" + suffix
            twin = PARAMS[name].lmtp_name
            fields[suffix] = values[twin if transport == "lmtp" and twin else name]
        return ClientParams(**fields)  # type: ignore[arg-type]

    # --- change detection -------------------------------------------------------------
    def files(self) -> tuple[Path, ...]:
        """main.cf and every table file the configuration names."""
        out: list[Path] = []
        if self.config_dir is not None:
            out.append(self.config_dir / "main.cf")
            if self.master is not None:
                out.append(Path(self.master.filename))
        for name, param in PARAMS.items():
            if param.type not in (ParamType.MAPS, ParamType.LIST):
                continue
            for item in self.get_list(name):
                try:
                    out.extend(spec_files(item, self.config_dir))
                except ValueError:
                    continue  # a host name, domain or other non-table list member
        for service in self._services.values():
            out.extend(service.files())  # tables named by -o settings
        return tuple(dict.fromkeys(out))

    def watcher(self) -> FileWatcher:
        """A watcher over `files()`; reload when its `changed()` turns true."""
        return FileWatcher(self.files())


def _rebuild(
    raw: dict[str, RawSetting], config_dir: Path | None, master: MasterCf | None
) -> Settings:
    return Settings(raw, config_dir, master=master)


def _did_you_mean(name: str) -> str:
    """`` (did you mean "relayhost"?)`` for a close known parameter name, else ""."""
    import difflib  # for an unknown name only: not loaded by every command's start

    close = difflib.get_close_matches(name, PARAMS.keys(), n=1, cutoff=0.8)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _override_settings(overrides: Mapping[str, str]) -> dict[str, RawSetting]:
    out: dict[str, RawSetting] = {}
    for name, value in overrides.items():
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f'-o {name}={value}: bad parameter name "{name}"', parameter=name)
        out[name] = RawSetting(name, str(value).strip(), "-o", 0)
    return out


class AgentSettings:
    """The smtp_/lmtp_ view of `Settings` for one delivery transport: `params` holds its
    typed values (``params.connect_timeout`` is smtp_connect_timeout for SMTP and
    lmtp_connect_timeout for LMTP); `name()` says which parameter a suffix is, for messages.
    `label` names the transport for caches: the master.cf service, else smtp or lmtp."""

    __slots__ = ("label", "params", "settings", "transport")

    def __init__(self, settings: Settings, transport: str) -> None:
        if transport not in ("smtp", "lmtp"):
            raise ConfigError(f'unknown transport "{transport}" (want smtp or lmtp)')
        self.settings = settings
        self.transport = transport
        self.label = settings.label or transport
        self.params = settings.client_params(transport)

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

    def open_maps(self, suffix: ClientMapsName) -> Maps:
        return self.settings.open_maps(self.name(suffix))  # type: ignore[arg-type]


def _read_master_cf(path: Path) -> MasterCf | None:
    """mastercf.py's `read_master_cf`, imported only when there is a master.cf to read (most
    commands run without one: ``sendmail`` does not load the parser then)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None  # as read_master_cf says it; any other error is its to report
    except OSError:
        pass
    from mailcarrier.config.mastercf import read_master_cf

    return read_master_cf(path)
