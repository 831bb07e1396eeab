"""How a network table is opened and configured, whatever its kind (SQL, LDAP, memcache, ...).

`OpenContext` is what the registry hands a kind's opener: the configuration directory
(relative file names), main.cf's parameters (``type:prefix`` tables, the old LDAP style) and
the opener of nested tables (the ``domain`` list may name tables). `load_config` reads the
``*_table(5)`` file or the main.cf parameters (cfgfile.py) and warns about names the kind does
not know. `domain_filter` builds the ``domain`` parameter's filter (dbcommon.DomainFilter),
and `pool_options` reads what netcore.HostPool needs: ``hosts`` (default ``localhost``),
``retry_interval`` and ``idle_interval`` (60), and ``timeout`` (mailcarrier's own for the SQL
kinds, whose Postfix clients have none; LDAP and memcache have their own defaults). SQL
specifics are in sqlbase.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.cfgfile import MainCfLookup, TableConfig, is_file_name
from mailcarrier.tables.dbcommon import DomainFilter
from mailcarrier.tables.netcore import DEFAULT_IDLE_INTERVAL, DEFAULT_RETRY_INTERVAL
from mailcarrier.tables.text import split_braced

DEFAULT_TIMEOUT = 10

Opener = Callable[[str], Table]


@dataclass(frozen=True, slots=True)
class OpenContext:
    """What a network kind needs to open: where relative names are, main.cf's parameters
    (for ``type:prefix`` tables), and the opener of nested tables (the ``domain`` list)."""

    base_dir: Path | None
    main_cf: MainCfLookup | None
    opener: Opener


def load_config(kind: str, name: str, names: Iterable[str], context: OpenContext) -> TableConfig:
    """The file ``name`` (relative to base_dir), or main.cf's ``name_*`` parameters."""
    known = tuple(names)
    if is_file_name(name):
        path = Path(name).expanduser()
        if not path.is_absolute() and context.base_dir is not None:
            path = context.base_dir / path
        config = TableConfig.from_file(path)
        config.check_names(known, kind)
        return config
    if context.main_cf is None:
        raise TableError(
            f"{kind}:{name}: a table name that does not start with / or . names main.cf "
            "parameters, and none are available here"
        )
    return TableConfig.from_main_cf(name, context.main_cf, known)


def domain_filter(config: TableConfig, context: OpenContext) -> DomainFilter | None:
    text = config.string("domain")
    if not text.strip():
        return None
    items: list[str] = []
    for item in split_braced(text):
        bare = item.lstrip("!")
        if bare.startswith("/"):
            # A file of more patterns (string_list(3)): its words, in order.
            try:
                words = Path(bare).read_text(encoding="utf-8").split()
            except OSError as exc:
                raise TableError(
                    f"{config.name}: domain match list: open {bare}: {exc.strerror or exc}",
                    parameter="domain",
                    filename=config.filename,
                ) from None
            items.extend(w for w in words if not w.startswith("#"))
        else:
            items.append(item)
    tables: list[Table | None] = []
    for item in items:
        bare = item.lstrip("!")
        tables.append(context.opener(bare) if ":" in bare else None)
    return DomainFilter(items, tables)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    hosts: tuple[str, ...]
    retry_interval: int
    idle_interval: int
    timeout: int


def pool_options(config: TableConfig, default_timeout: int = DEFAULT_TIMEOUT) -> PoolOptions:
    hosts = tuple(split_braced(config.string("hosts"))) or ("localhost",)
    return PoolOptions(
        hosts=hosts,
        retry_interval=config.integer("retry_interval", DEFAULT_RETRY_INTERVAL, 1),
        idle_interval=config.integer("idle_interval", DEFAULT_IDLE_INTERVAL, 1),
        timeout=config.integer("timeout", default_timeout, 1),
    )
