"""Opening tables: ``type:name`` text in, a `Table` out.

`open_table("hash:/etc/mailcarrier/transport", base_dir=...)` checks the syntax with
`spec.parse_spec`, resolves a relative file name against `base_dir` (the configuration
directory) and builds the table of that kind. Failures raise `TableError` naming the table.
Lists of tables with Postfix's first-match semantics are in `maps.py`.

Network kinds (`NETWORK_KINDS`: pgsql, mysql, sqlite, ldap, memcache; more kinds register
here; each is imported when first opened) read a ``*_table(5)`` file, or main.cf's
``name_*`` parameters through `main_cf`. They are opened once per process and configuration:
callers may open a table for every lookup, and still share one pool of connections; a
changed configuration file (or main.cf value) makes a new table. socketmap and tcp tables
are named by their server, and share its connections themselves (endpoint.shared_pool).
``proxy:type:name`` goes through `proxy` (Postfix's proxymap, see proxy.py) when one is
given, else the inner table is opened directly.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.cfgfile import MainCfLookup, is_file_name
from mailcarrier.tables.spec import INDEXED, NETWORK_KINDS, parse_spec
from mailcarrier.tables.text import split_braced, strip_group

if TYPE_CHECKING:
    from mailcarrier.tables.cidr import CidrTable
    from mailcarrier.tables.netconfig import OpenContext
    from mailcarrier.tables.proxy import ProxyService

NetworkOpener = Callable[[str, "OpenContext"], Table]
# The network kinds, each in its module of this package (``pgsql`` -> tables/pgsql.py, with
# `open_pgsql` and `NAMES`, the parameter names it reads: for main.cf-style names and the
# cache key). They are imported when a table of theirs is first opened, so that a program
# that opens none does not load their client libraries' glue.


def network_kind(kind: str) -> tuple[NetworkOpener, tuple[str, ...]]:
    """The opener of a network `kind` and the parameter names it reads."""
    module = importlib.import_module(f"mailcarrier.tables.{kind}")
    opener: NetworkOpener = getattr(module, f"open_{kind}")
    names: tuple[str, ...] = module.NAMES
    return opener, names


_cache_lock = threading.Lock()
_cache: dict[tuple[object, ...], Table] = {}


def open_table(
    text: str,
    base_dir: Path | None = None,
    *,
    main_cf: MainCfLookup | None = None,
    proxy: ProxyService | None = None,
) -> Table:
    try:
        spec = parse_spec(text)
    except ValueError as exc:
        raise TableError(str(exc)) from None
    name = str(spec)
    kind = spec.kind
    if kind == "proxy":
        if proxy is not None:
            from mailcarrier.tables.proxy import ProxyTable

            return ProxyTable(name, spec.name, proxy)
        return open_table(spec.name, base_dir, main_cf=main_cf)
    if kind in NETWORK_KINDS:
        return _open_network(kind, spec.name, base_dir, main_cf, proxy)
    if kind in ("socketmap", "tcp"):
        module = importlib.import_module(f"mailcarrier.tables.{kind}")
        table: Table = getattr(module, f"open_{kind}")(spec.name)
        return table
    if kind in ("inline", "static"):
        from mailcarrier.tables.simple import InlineTable, StaticTable

        return (InlineTable if kind == "inline" else StaticTable)(name, spec.name)
    if kind in ("unionmap", "pipemap"):
        from mailcarrier.tables.composite import PipeTable, UnionTable

        opener = partial(open_table, base_dir=base_dir, main_cf=main_cf, proxy=proxy)
        cls = UnionTable if kind == "unionmap" else PipeTable
        return cls(name, spec.name, opener)
    return _open_file(kind, name, spec.name, spec.path(base_dir))


def _open_file(kind: str, name: str, text: str, path: Path) -> Table:
    """A table of a file kind, its module imported now."""
    if kind in INDEXED:
        from mailcarrier.tables.formats import open_indexed

        return open_indexed(name, path, kind)
    if kind == "texthash":
        from mailcarrier.tables.simple import TextHashTable

        return TextHashTable(name, path)
    if kind in ("regexp", "pcre"):
        from mailcarrier.tables.regexp import RegexpTable

        return RegexpTable(name, path, kind)
    if kind == "cidr":
        from mailcarrier.tables.cidr import CidrTable

        if text.startswith("{"):  # cidr:{{rule}, {rule}} in main.cf (Postfix 3.7)
            return _braced_cidr(name, text)
        return CidrTable(name, path)
    raise TableError(f'unsupported dictionary type: "{kind}"')  # pragma: no cover


def _braced_cidr(name: str, body: str) -> CidrTable:
    from mailcarrier.tables.cidr import CidrTable

    try:
        items = split_braced(strip_group(body))
    except ValueError as exc:
        raise TableError(f"{name}: {exc}") from None
    return CidrTable(name, None, [(n, strip_group(item)) for n, item in enumerate(items, 1)])


def _fingerprint(
    kind: str, name: str, base_dir: Path | None, main_cf: MainCfLookup | None
) -> tuple[object, ...] | None:
    """What the table's configuration is made of (the file's identity, or the main.cf
    values), or None when there is nothing to cache (opening will fail and say why)."""
    if is_file_name(name):
        path = Path(name).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (kind, str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if main_cf is None:
        return None
    return (kind, name, tuple(main_cf(f"{name}_{n}") for n in network_kind(kind)[1]))


def _open_network(
    kind: str,
    name: str,
    base_dir: Path | None,
    main_cf: MainCfLookup | None,
    proxy: ProxyService | None,
) -> Table:
    key = _fingerprint(kind, name, base_dir, main_cf)
    if key is not None:
        with _cache_lock:
            found = _cache.get(key)
        if found is not None:
            return found
    from mailcarrier.tables.netconfig import OpenContext

    opener = partial(open_table, base_dir=base_dir, main_cf=main_cf, proxy=proxy)
    table = network_kind(kind)[0](name, OpenContext(base_dir, main_cf, opener))
    if key is not None:
        with _cache_lock:
            table = _cache.setdefault(key, table)
    return table
