"""``ldap:/etc/postfix/x.cf``: lookups in an LDAP directory, as Postfix's dict_ldap.c
(ldap_table(5)), with ldap3.

The configuration (ldapconf.py) is Postfix's, from the file or from main.cf's ``name_*``
parameters. A lookup folds the key to lower case, checks ``domain``, expands ``search_base``
(the key DN-escaped, RFC 4514) and ``query_filter`` (the key filter-escaped, RFC 4515, as
Postfix: ``*`` ``(`` ``)`` ``\\`` NUL cannot change the filter), searches, and walks the
entries found (ldapsearch.py: terminal, leaf and special attributes, DN and URL recursion);
each value goes through ``result_format``, and the values are joined with commas, at most
``expansion_limit`` of them. Keys that cannot fill a template are not searched (not found).

The servers of ``server_host`` are tried in the order given, as OpenLDAP tries its URL list
(netcore.HostPool with an in-order choice and no retry_interval: a server that failed is
tried again on the next connection, as Postfix reconnects on the next lookup); one server is
tried twice ("reconnect immediately after a single failure"). Connections are kept and reused
(several, for lookups at the same time). A server that cannot be reached, refuses the bind,
or does not answer within ``timeout`` seconds makes the lookup fail for now
(`TableLookupError`), never "not found"; so does a search the server answers with an error.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Final, TypeVar

from mailcarrier.tables.base import TableError, TableLookupError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import Templates
from mailcarrier.tables.ldapconf import NAMES, dn_quote, ldap_options
from mailcarrier.tables.ldapconn import LdapConnection, LdapConnector, require_ldap3
from mailcarrier.tables.ldapsearch import LdapAnswer, LdapSearch, err2string
from mailcarrier.tables.netconfig import OpenContext, domain_filter, load_config
from mailcarrier.tables.netcore import DEFAULT_IDLE_INTERVAL, Host, HostError, HostPool
from mailcarrier.tables.netloop import run_async
from mailcarrier.tables.network import NetworkTable

__all__ = ["NAMES", "LdapTable", "open_ldap"]

_DYNAMIC: Final = re.compile(r"%[^%]")
T = TypeVar("T")


class InOrder(random.Random):
    """HostPool's choice among equal servers: the first, so server_host is tried in order."""

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        return seq[0]


def _dynamic(template: str) -> bool:
    """db_common_parse()'s answer: does the template use the key?"""
    return bool(_DYNAMIC.search(template.replace("%%", "")))


def _templates(config: TableConfig, name: str, template: str, result: str, spec: str) -> Templates:
    try:
        return Templates(template, result, where=config.name, table=spec)
    except TableError as exc:
        failed = name if exc.value == template else "result_format"
        if failed == "result_format" and not config.has("result_format"):
            failed = "result_filter" if config.has("result_filter") else failed
        setting = config.settings.get(failed)
        raise TableError(
            str(exc).removeprefix(f"{config.name}: ") if config.filename else str(exc),
            parameter=failed if config.filename else f"{config.name}_{failed}",
            value=exc.value,
            filename=config.filename,
            lineno=setting.lineno if setting else 0,
        ) from None


class LdapTable(NetworkTable):
    kind = "ldap"

    def __init__(self, spec: str, config: TableConfig, context: OpenContext) -> None:
        options, warnings = ldap_options(config)
        result = options.result_format
        query = _templates(config, "query_filter", options.query_filter, result, spec)
        self.base = _templates(config, "search_base", options.search_base, result, spec)
        super().__init__(
            spec,
            config,
            query,
            domain=domain_filter(config, context),
            expansion_limit=0,  # counted during the search, as Postfix does (ldapsearch.py)
        )
        self.warnings.extend(warnings)
        self.options = options
        self.dynamic_base = _dynamic(options.search_base)
        if not _dynamic(options.query_filter):
            self.warnings.append(
                f"dict_ldap_open: {config.name}: Fixed query_filter {options.query_filter} "
                "is probably useless"
            )
        require_ldap3(spec)
        connector = LdapConnector(options, config.name)
        self.pool: HostPool[LdapConnection] = HostPool(
            [Host(server.url, 1, server) for server in options.servers],
            connector,
            where=spec,
            retry_interval=0,
            idle_interval=DEFAULT_IDLE_INTERVAL,
            timeout=max(options.timeout, 1),
            rng=InOrder(),
        )

    async def lookup_async(self, key: str) -> str | None:
        # ldap3 blocks, so the search runs in the table's worker threads whoever asks; the
        # pool (its timers, its waiting lookups) lives on the table loop, as for `lookup`.
        return await run_async(self._lookup(key))

    async def search(self, key: str) -> Sequence[str | None]:
        base = self.base.expand_query(key, dn_quote)
        if base is None:
            return []  # the key cannot fill search_base: no search
        answer = await self.pool.run(lambda conn: self._ask(conn, base, key))
        self.lookup_warnings.extend(answer.warnings)
        if answer.failed:
            last = answer.warnings[-1] if answer.warnings else "search failed"
            raise TableLookupError(f"{self.spec}: lookup error: {last}")
        return answer.values

    async def _ask(self, conn: LdapConnection, base: str, key: str) -> LdapAnswer:
        from ldap3.core.exceptions import LDAPException

        query = self.templates.expand_query(key, conn.quote)
        assert query is not None  # checked by the caller
        walk = LdapSearch(
            conn.conn,
            self.options,
            self.config.name,
            dynamic_base=self.dynamic_base,
            key=key,
            keep=lambda value: self.templates.expand_result(value, key) is not None,
        )
        try:
            return await conn.run(walk.run, base, query)
        except LDAPException:
            # LDAP_SERVER_DOWN: the pool reconnects (to the next server) and asks again.
            raise HostError(f"dict_ldap_lookup: Search error -1: {err2string(-1)} ") from None

    def collect_warnings(self) -> list[str]:
        return self.pool.take_warnings()


def open_ldap(name: str, context: OpenContext) -> LdapTable:
    config = load_config("ldap", name, NAMES, context)
    return LdapTable(f"ldap:{name}", config, context)
