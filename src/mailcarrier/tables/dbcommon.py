"""Query and result templates of the network tables, as Postfix's db_common.c.

`Templates(query, result_format, where=...)` checks both templates once (an unknown ``%x``
is a `TableError`); `expand_query(key, quote)` and `expand_result(value, key)` expand them:

    %%      a literal %
    %s %S   the key (%S in result_format: the input key, %s the result value)
    %u %U   the local part when the key (result) is an address, else the whole key
    %d %D   the domain part; a key (result) without one suppresses the query (skips it)
    %1..%9  the most significant labels of the key's domain (%1 is ``com`` of user@a.example.com)

As in db_common_expand(), a template that uses %u or %U refuses ``@domain`` keys (empty local
part) and one that uses %d, %D or %1..%9 refuses keys without a domain, or with too few labels
for its largest %N (empty labels do not count): expansion then returns None and the
lookup finds nothing without asking the server. An empty key or result is skipped with
Postfix's warning. The flags gathered from both templates apply to both, as Postfix's shared
context does.

`quote` is the backend's quoting function, applied to every substituted piece of the query
(never to the literal text or to results): `sql_quote_standard` doubles single quotes (SQLite,
and PostgreSQL with standard_conforming_strings); the PostgreSQL and MySQL backends quote as
their servers' escape functions do, per connection; LDAP filter quoting (RFC 4515) follows the
same signature. `DomainFilter` is the ``domain`` parameter (db_common_check_domain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from mailcarrier.tables.base import Table, TableError, TableLookupError

Quote = Callable[[str], str]

_KEY_DOMAIN: Final = 1 << 0  # the template needs the key's domain
_KEY_USER: Final = 1 << 1  # ... the key's local part
_VALUE_DOMAIN: Final = 1 << 2  # the result template needs the result's domain
_VALUE_USER: Final = 1 << 3  # ... the result's local part
_VALID: Final = frozenset("%suSUdD123456789")


def sql_quote_standard(text: str) -> str:
    """Standard SQL string quoting (sqlite3_mprintf %q): every ' becomes ''."""
    return text.replace("'", "''")


def _split_at(text: str) -> tuple[str, str] | None:
    """(local part, domain) at the last @, or None when there is none."""
    local, at, domain = text.rpartition("@")
    return (local, domain) if at else None


# A template compiled once: (literal text, code) pieces; code is the letter or digit after
# a %, "" after the trailing literal ("%%" is kept as literal text).
_Pieces = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Parsed:
    flags: int
    nparts: int
    pieces: _Pieces


def _parse(template: str, *, query: bool, where: str) -> _Parsed:
    flags = nparts = 0
    pieces: list[tuple[str, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(template):
        if template[index] != "%":
            literal.append(template[index])
            index += 1
            continue
        code = template[index + 1 : index + 2]
        if not code or code not in _VALID:
            kind = "query" if query else "result"
            raise TableError(f"{where}: Invalid {kind} template: {template}", value=template)
        if code == "u":
            flags |= _KEY_USER if query else _VALUE_USER
        elif code == "d":
            flags |= _KEY_DOMAIN if query else _VALUE_DOMAIN
        elif code == "U":
            flags |= _KEY_USER
        elif code == "D":
            flags |= _KEY_DOMAIN
        elif code.isdigit():
            flags |= _KEY_DOMAIN
            nparts = max(nparts, int(code))
        if code == "%":
            literal.append("%")
        else:
            pieces.append(("".join(literal), code))
            literal = []
        index += 2
    if literal or not pieces:
        pieces.append(("".join(literal), ""))
    return _Parsed(flags, nparts, tuple(pieces))


class Templates:
    """The query and result_format templates of one table (Postfix's DB_COMMON_CTX)."""

    def __init__(
        self, query: str, result_format: str = "%s", *, where: str, table: str = ""
    ) -> None:
        self.query = query
        self.result_format = result_format
        self.where = where  # the table's name (its configuration file), for errors
        self.table = table or where  # the "kind:name" text, for lookup warnings
        parsed_query = _parse(query, query=True, where=where)
        parsed_result = _parse(result_format, query=False, where=where)
        self.flags = parsed_query.flags | parsed_result.flags
        self.nparts = max(parsed_query.nparts, parsed_result.nparts)
        self._query_pieces = parsed_query.pieces
        self._result_pieces = parsed_result.pieces
        # "%s" alone (the default result_format) gives the value itself.
        self._plain_result = parsed_result.pieces == (("", "s"),)
        # Neither template looks into keys or values (no %u %d %1..%9, nor their upper
        # case): every non-empty key fills the query, and every non-empty value is its own
        # result. The usual table (``query = ... '%s'``), asked for every delivery.
        self.plain = not self.flags and not self.nparts and self._plain_result

    def _refuses(self, text: str, domain_flag: int, user_flag: int) -> bool:
        split = _split_at(text) if self.flags & (domain_flag | user_flag) else None
        if split is None:
            return bool(self.flags & domain_flag)
        local, domain = split
        return (not domain and bool(self.flags & domain_flag)) or (
            not local and bool(self.flags & user_flag)
        )

    def _labels(self, domain: str) -> list[str] | None:
        """The domain's labels when it has enough for %1..%N. Empty labels do not count
        (argv_split() skips them): ``a..example.com`` has three."""
        labels = [label for label in domain.split(".") if label]
        return labels if len(labels) >= self.nparts else None

    def fills_query(self, key: str) -> bool:
        """Whether `key` can fill the query template (else it is never sent)."""
        if self.plain:
            return bool(key)
        if not key or self._refuses(key, _KEY_DOMAIN, _KEY_USER):
            return False
        if self.nparts:
            split = _split_at(key)
            return split is not None and self._labels(split[1]) is not None
        return True

    def expand_query(self, key: str, quote: Quote | None = None) -> str | None:
        """The query for `key`, or None when the key cannot fill the template (no lookup)."""
        if not key:
            return None
        if self._refuses(key, _KEY_DOMAIN, _KEY_USER):
            return None
        return self._expand(self._query_pieces, key, None, quote)

    def query_warning(self, key: str) -> str | None:
        """Postfix's warning for a key that is never sent (only the empty key has one)."""
        return None if key else f'table "{self.table}": empty query string -- ignored'

    def empty_result_warning(self, key: str) -> str:
        return f'table "{self.table}": empty lookup result for: "{key}" -- ignored'

    def expand_result(self, value: str, key: str) -> str | None:
        """One result value through result_format, or None when it is skipped (an empty
        one with `empty_result_warning`)."""
        if not value:
            return None
        if self.flags and (
            self._refuses(value, _VALUE_DOMAIN, _VALUE_USER)
            or self._refuses(key, _KEY_DOMAIN, _KEY_USER)
        ):
            return None
        if self._plain_result and not self.nparts:
            return value
        return self._expand(self._result_pieces, value, key, None)

    def _expand(
        self, pieces: _Pieces, value: str, key: str | None, quote: Quote | None
    ) -> str | None:
        q: Quote = quote or _same
        # Lower case: the value (the key of a query, the result of a result template);
        # upper case and digits: the input key.
        source = key if key is not None else value
        vsplit = _split_at(value)
        ksplit = _split_at(source)
        labels: list[str] = []
        if self.nparts:
            found = self._labels(ksplit[1]) if ksplit is not None else None
            if found is None:
                return None  # too few labels for %N: no query, or this result skipped
            labels = found
        out: list[str] = []
        for literal, code in pieces:
            out.append(literal)
            if not code:
                continue
            if code == "s":
                out.append(q(value))
            elif code == "S":
                out.append(q(source))
            elif code == "u":
                out.append(q(vsplit[0] if vsplit else value))
            elif code == "U":
                out.append(q(ksplit[0] if ksplit else source))
            elif code == "d":
                assert vsplit is not None  # refused above
                out.append(q(vsplit[1]))
            elif code == "D":
                assert ksplit is not None
                out.append(q(ksplit[1]))
            else:
                out.append(q(labels[-int(code)]))
        return "".join(out)


def _same(text: str) -> str:
    return text


class ExpansionLimit:
    """Counts result values; past `limit` (0: none) the lookup fails temporarily."""

    def __init__(self, limit: int, where: str) -> None:
        self.limit = limit
        self.where = where

    def join(
        self,
        templates: Templates,
        values: Sequence[str | None],
        key: str,
        warn: Callable[[str], None] | None = None,
    ) -> str | None:
        """The comma-joined expansions of `values` (None: nothing found). A None value (SQL
        NULL) is skipped silently, an empty one with Postfix's warning. Raises
        `TableLookupError` past the limit, with Postfix's warning text."""
        if len(values) == 1 and templates.plain:
            # One value through "%s" (the usual answer): itself, unless empty or NULL.
            value = values[0]
            if value:
                return value
        out: list[str] = []
        for value in values:
            if value is None:
                continue
            if not value:
                if warn is not None:
                    warn(templates.empty_result_warning(key))
                continue
            expanded = templates.expand_result(value, key)
            if expanded is None:
                continue
            out.append(expanded)
            if self.limit > 0 and len(out) > self.limit:
                raise TableLookupError(f"{self.where}: Expansion limit exceeded for key: '{key}'")
        joined = ",".join(out)
        return joined or None


class DomainFilter:
    """The ``domain`` parameter: only ``user@domain`` keys whose domain matches are looked
    up. Items are names (case-insensitive), ``!name`` (no match), ``/file`` (its words are
    more items) or ``type:table`` (a key found there matches), first match wins, as
    string_list(3) with match_string."""

    def __init__(self, items: Sequence[str], tables: Sequence[Table | None]) -> None:
        self.items = tuple(items)
        self.tables = tuple(tables)

    @staticmethod
    def domain_of(key: str) -> str | None:
        split = _split_at(key)
        if split is None or not split[0] or not split[1]:
            return None
        return split[1]

    def _match_plain(self, pattern: str, domain: str) -> bool:
        return pattern.lower() == domain.lower()

    def matches(self, key: str) -> bool:
        domain = self.domain_of(key)
        if domain is None:
            return False
        for item, table in zip(self.items, self.tables, strict=True):
            negate = item.startswith("!")
            if table is not None:
                hit = table.lookup(domain) is not None
            else:
                hit = self._match_plain(item.lstrip("!"), domain)
            if hit:
                return not negate
        return False

    async def matches_async(self, key: str) -> bool:
        domain = self.domain_of(key)
        if domain is None:
            return False
        for item, table in zip(self.items, self.tables, strict=True):
            negate = item.startswith("!")
            if table is not None:
                hit = await table.lookup_async(domain) is not None
            else:
                hit = self._match_plain(item.lstrip("!"), domain)
            if hit:
                return not negate
        return False
