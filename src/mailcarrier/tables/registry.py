"""Opening tables: ``type:name`` text in, a `Table` out.

`open_table("hash:/etc/mailcarrier/transport", base_dir=...)` checks the syntax with
`spec.parse_spec`, resolves a relative file name against `base_dir` (the configuration
directory) and builds the table of that kind. Failures raise `TableError` naming the table.
Lists of tables with Postfix's first-match semantics are in `maps.py`.

Network kinds (`NETWORK_OPENERS`: pgsql, mysql, sqlite, ldap, memcache; more kinds register
here) read a ``*_table(5)`` file, or main.cf's ``name_*`` parameters through `main_cf`. They
are opened once per process and configuration: callers may open a table for every lookup,
and still share one pool of connections; a changed configuration file (or main.cf value)
makes a new table. socketmap and tcp tables are named by their server, and share its
connections themselves (endpoint.shared_pool). ``proxy:type:name`` goes through `proxy`
(Postfix's proxymap, see proxy.py) when one is given, else the inner table is opened
directly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.cfgfile import MainCfLookup, is_file_name
from mailcarrier.tables.cidr import CidrTable
from mailcarrier.tables.composite import PipeTable, UnionTable
from mailcarrier.tables.formats import open_indexed
from mailcarrier.tables.ldap import NAMES as LDAP_NAMES
from mailcarrier.tables.ldap import open_ldap
from mailcarrier.tables.memcache import NAMES as MEMCACHE_NAMES
from mailcarrier.tables.memcache import open_memcache
from mailcarrier.tables.mysql import NAMES as MYSQL_NAMES
from mailcarrier.tables.mysql import open_mysql
from mailcarrier.tables.netconfig import OpenContext
from mailcarrier.tables.pgsql import NAMES as PGSQL_NAMES
from mailcarrier.tables.pgsql import open_pgsql
from mailcarrier.tables.proxy import ProxyService, ProxyTable
from mailcarrier.tables.regexp import RegexpTable
from mailcarrier.tables.simple import InlineTable, StaticTable, TextHashTable
from mailcarrier.tables.socketmap import open_socketmap
from mailcarrier.tables.spec import INDEXED, parse_spec
from mailcarrier.tables.sqlite import NAMES as SQLITE_NAMES
from mailcarrier.tables.sqlite import open_sqlite
from mailcarrier.tables.tcp import open_tcp
from mailcarrier.tables.text import split_braced, strip_group

NetworkOpener = Callable[[str, OpenContext], Table]
# kind -> (opener, the parameter names it reads: for main.cf-style names and the cache key)
NETWORK_OPENERS: dict[str, tuple[NetworkOpener, tuple[str, ...]]] = {
    "pgsql": (open_pgsql, PGSQL_NAMES),
    "mysql": (open_mysql, MYSQL_NAMES),
    "sqlite": (open_sqlite, SQLITE_NAMES),
    "ldap": (open_ldap, LDAP_NAMES),
    "memcache": (open_memcache, MEMCACHE_NAMES),
}

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
            return ProxyTable(name, spec.name, proxy)
        return open_table(spec.name, base_dir, main_cf=main_cf)
    if kind in NETWORK_OPENERS:
        return _open_network(kind, spec.name, base_dir, main_cf, proxy)
    if kind == "socketmap":
        return open_socketmap(spec.name)
    if kind == "tcp":
        return open_tcp(spec.name)
    if kind == "inline":
        return InlineTable(name, spec.name)
    if kind == "static":
        return StaticTable(name, spec.name)
    if kind in ("unionmap", "pipemap"):
        opener = partial(open_table, base_dir=base_dir, main_cf=main_cf, proxy=proxy)
        cls = UnionTable if kind == "unionmap" else PipeTable
        return cls(name, spec.name, opener)
    path = spec.path(base_dir)
    if kind in INDEXED:
        return open_indexed(name, path, kind)
    if kind == "texthash":
        return TextHashTable(name, path)
    if kind in ("regexp", "pcre"):
        return RegexpTable(name, path, kind)
    if kind == "cidr":
        if spec.name.startswith("{"):  # cidr:{{rule}, {rule}} in main.cf (Postfix 3.7)
            return _braced_cidr(name, spec.name)
        return CidrTable(name, path)
    raise TableError(f'unsupported dictionary type: "{kind}"')  # pragma: no cover


def _braced_cidr(name: str, body: str) -> CidrTable:
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
    return (kind, name, tuple(main_cf(f"{name}_{n}") for n in NETWORK_OPENERS[kind][1]))


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
    opener = partial(open_table, base_dir=base_dir, main_cf=main_cf, proxy=proxy)
    table = NETWORK_OPENERS[kind][0](name, OpenContext(base_dir, main_cf, opener))
    if key is not None:
        with _cache_lock:
            table = _cache.setdefault(key, table)
    return table
