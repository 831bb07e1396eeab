"""What the SQL table kinds (pgsql, mysql, sqlite) read from their configuration alike.

`sql_query(config)` is the ``query`` parameter, or the query Postfix builds from the
obsolete ``table``, ``select_field``, ``where_field`` and ``additional_conditions``
(db_common_sql_build_query: ``SELECT f FROM t WHERE w='%s' cond``), failing with Postfix's
wording when one of them is missing. `common_options` reads ``result_format``, ``domain``
and ``expansion_limit`` into the templates (dbcommon.py). The parameters of the servers
(``hosts``, ``retry_interval``, ``idle_interval``, and mailcarrier's ``timeout``: each
connect and each query gets that many seconds, where Postfix's SQL clients wait on the
server) are netconfig.py's. The kinds are pgsql.py, mysql.py and sqlite.py; the lookup itself
is network.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.dbcommon import DomainFilter, Templates
from mailcarrier.tables.netconfig import OpenContext, domain_filter

# Parameters every SQL kind reads (besides its own).
QUERY_NAMES = (
    "query",
    "result_format",
    "domain",
    "expansion_limit",
    "table",
    "select_field",
    "where_field",
    "additional_conditions",
)
SERVER_NAMES = ("hosts", "user", "password", "dbname", "retry_interval", "idle_interval", "timeout")
DEFAULT_SQL_TIMEOUT = 10

__all__ = ["QUERY_NAMES", "SERVER_NAMES", "CommonOptions", "common_options", "sql_query"]


def sql_query(config: TableConfig) -> str:
    query = config.optional("query")
    if query is not None:
        return query
    parts: dict[str, str] = {}
    for name in ("table", "select_field", "where_field"):
        value = config.optional(name)
        if value is None:
            raise TableError(
                f"{config.name}: '{name}' parameter not defined",
                parameter=name,
                filename=config.filename,
            )
        parts[name] = value
    extra = config.string("additional_conditions")
    return (
        f"SELECT {parts['select_field']} FROM {parts['table']} "
        f"WHERE {parts['where_field']}='%s' {extra}"
    )


@dataclass(frozen=True, slots=True)
class CommonOptions:
    templates: Templates
    domain: DomainFilter | None
    expansion_limit: int


def common_options(
    config: TableConfig, query: str, context: OpenContext, table: str
) -> CommonOptions:
    result_format = config.string("result_format", "%s", min_len=1)
    try:
        templates = Templates(query, result_format, where=config.name, table=table)
    except TableError as exc:
        name = "query" if exc.value == query else "result_format"
        setting = config.settings.get(name)
        raise TableError(
            str(exc).removeprefix(f"{config.name}: ") if config.filename else str(exc),
            parameter=name,
            value=exc.value,
            filename=config.filename,
            lineno=setting.lineno if setting else 0,
        ) from None
    limit = config.integer("expansion_limit", 0)
    return CommonOptions(templates, domain_filter(config, context), limit)
