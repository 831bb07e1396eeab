"""One LDAP lookup on an open ldap3 connection, as dict_ldap.c's dict_ldap_lookup() and
dict_ldap_get_values() make it: the search, then the values of each entry found.

`LdapSearch(conn, options, where).run(base, filter)` returns an `LdapAnswer`: the raw
values (result_format and expansion_limit are applied by network.py), the warnings, and
whether the lookup failed. Per entry, as Postfix:

- an entry with a value of a ``terminal_result_attribute`` gives only its terminal values;
- otherwise its ``result_attribute`` values, and its ``leaf_result_attribute`` values
  unless it also has a ``special_result_attribute`` (a group: its members give those);
- each value of a special attribute is a DN (searched with scope base) or an RFC 4516 LDAP
  URL (its base, scope, filter, and the attributes it names that the table also asks for),
  whose entries are expanded in the same way, down to ``recursion_limit`` levels;
- attribute names match case-insensitively, and ``attr;option`` counts as ``attr``.

Warnings are Postfix's, word for word (trailing spaces included). A search that fails with
an LDAP result code (no such base, size limit exceeded, a bad
filter) fails the lookup with Postfix's warning; a base that does not exist is "not found"
when the base has %-expansions of the key. A DN in a special attribute that does not exist is
skipped with a warning. Lost connections and timeouts are ldap3's exceptions, for the host
pool (ldapconn.py) to fail over. This code blocks: it runs in the table's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mailcarrier.tables.ldapconf import LdapOptions, parse_ldap_url

__all__ = ["ERRORS", "LdapAnswer", "LdapSearch", "attrdesc_subtype", "err2string"]

# OpenLDAP's ldap_err2string() texts, which Postfix's warnings quote.
ERRORS: Final = {
    0: "Success",
    1: "Operations error",
    2: "Protocol error",
    3: "Time limit exceeded",
    4: "Size limit exceeded",
    7: "Auth method not supported",
    8: "Strong(er) authentication required",
    10: "Referral",
    11: "Administrative limit exceeded",
    12: "Critical extension is unavailable",
    13: "Confidentiality required",
    16: "No such attribute",
    17: "Undefined attribute type",
    18: "Inappropriate matching",
    32: "No such object",
    34: "Invalid DN syntax",
    48: "Inappropriate authentication",
    49: "Invalid credentials",
    50: "Insufficient access",
    51: "Server is busy",
    52: "Server is unavailable",
    53: "Server is unwilling to perform",
    80: "Other (e.g., implementation specific) error",
    -1: "Can't contact LDAP server",
    -2: "Local error",
    -4: "Decoding error",
    -5: "Timed out",
    -7: "Bad search filter",
    -11: "Connect error",
}
NO_SUCH_OBJECT: Final = 32
DECODING_ERROR: Final = -4
FILTER_ERROR: Final = -7
DEREF: Final = ("NEVER", "SEARCH", "FINDING_BASE", "ALWAYS")

Entry = list[tuple[str, list[bytes]]]


def err2string(code: int, fallback: str = "") -> str:
    return ERRORS.get(code, fallback or f"Unknown error ({code})")


def attrdesc_subtype(a1: str, a2: str) -> int:
    """1 when `a2` is `a1` or its subtype (``a1;option``), -1 when `a1` is a subtype of
    `a2`, 0 for distinct attributes (case-insensitive, RFC 4512)."""
    x, y = a1.lower(), a2.lower()
    if x == y or y.startswith(x + ";"):
        return 1
    if x.startswith(y + ";"):
        return -1
    return 0


def _text(value: bytes) -> str:
    """A value as Postfix reads it: a C string."""
    return value.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@dataclass
class LdapAnswer:
    values: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed: bool = False


class LdapSearch:
    """The searches of one lookup on `conn` (an ldap3 Connection), and what they found."""

    def __init__(
        self,
        conn: Any,
        options: LdapOptions,
        name: str,
        *,
        dynamic_base: bool = False,
        key: str = "",
        keep: Callable[[str], bool] | None = None,
    ) -> None:
        self.conn = conn
        self.options = options
        self.name = name  # the configuration file (or main.cf prefix), as Postfix names it
        self.dynamic_base = dynamic_base
        self.key = key
        self.keep = keep or bool  # does result_format keep a value (for expansion_limit)?
        self.expansions = 0
        self.errno = 0  # the connection's last error, as OpenLDAP's ld_errno
        self.answer = LdapAnswer()

    def _warn(self, text: str, *, fail: bool = True) -> None:
        self.answer.warnings.append(text)
        if fail:
            self.answer.failed = True

    def search(
        self, base: str, scope: str, filt: str, attributes: Sequence[str]
    ) -> tuple[int, list[Entry]]:
        """(result code, entries); ldap3's exceptions for a broken connection."""
        from ldap3.core.exceptions import LDAPInvalidFilterError

        text = filt.strip()
        if not text.startswith("("):
            text = f"({text})"  # OpenLDAP takes a filter without its parentheses
        try:
            self.conn.search(
                base,
                text,
                search_scope=scope,
                attributes=list(attributes) or ["1.1"],
                size_limit=self.options.size_limit,
                time_limit=self.options.timeout,
                dereference_aliases=DEREF[self.options.dereference],
            )
        except LDAPInvalidFilterError:
            self.errno = FILTER_ERROR
            return FILTER_ERROR, []
        code = int(self.conn.result.get("result", 80))
        self.errno = code
        entries: list[Entry] = []
        for item in self.conn.response or ():
            if item.get("type") == "searchResEntry":
                raw = item.get("raw_attributes", {})
                entries.append([(str(name), list(values)) for name, values in raw.items()])
        return code, entries

    def run(self, base: str, filt: str) -> LdapAnswer:
        """dict_ldap_lookup(): the top search and everything it leads to."""
        code, entries = self.search(base, self.options.scope, filt, self.options.attributes)
        if code == 0:
            self.values(entries, 1)
            if self.errno not in (0, DECODING_ERROR):
                # Postfix asks the connection for its last error: a failed nested search.
                self._warn(
                    "dict_ldap_lookup: Had some trouble with entries returned by search: "
                    f"{err2string(self.errno)}",
                    fail=False,
                )
        elif code == NO_SUCH_OBJECT:
            if not self.dynamic_base:
                self._warn(
                    f"dict_ldap_lookup: {self.name}: Search base '{base}' not found: "
                    f"{code}: {err2string(code)}"
                )
        else:
            self._warn(f"dict_ldap_lookup: Search error {code}: {err2string(code)} ")
        return self.answer

    def _has_values(self, entry: Entry, names: Sequence[str]) -> bool:
        """Whether the entry has values of one of `names`, asked one by one as Postfix
        does (ldap_get_values_len(): a missing attribute leaves a decoding error)."""
        present = {attr.lower() for attr, values in entry if values}
        for name in names:
            if name.lower() in present:
                return True
            self.errno = DECODING_ERROR
        return False

    def _index(self, attr: str) -> int:
        """The position of `attr` among the table's attributes (their count: none)."""
        for index, name in enumerate(self.options.attributes):
            if attrdesc_subtype(name, attr) > 0:
                return index
        return len(self.options.attributes)

    def values(self, entries: list[Entry], depth: int) -> None:
        """dict_ldap_get_values(): the values of `entries`, recursing through specials."""
        opts = self.options
        for count, entry in enumerate(entries, start=1):
            if not self.answer.failed and opts.size_limit and count > opts.size_limit:
                self._warn(
                    f"dict_ldap_get_values[{depth}]: {self.name}: Query size limit "
                    f"({opts.size_limit}) exceeded"
                )
            attrs = opts.attributes
            terminal = self._has_values(entry, attrs[: opts.num_terminal])
            leaf = terminal or not opts.num_leaf
            if not leaf:
                leaf = not self._has_values(entry, attrs[opts.num_attributes :])
            for attr, values in entry:
                if self.answer.failed or not values:
                    continue
                self._attribute(attr, values, depth, terminal=terminal, leaf=leaf)

    def _attribute(
        self, attr: str, values: list[bytes], depth: int, *, terminal: bool, leaf: bool
    ) -> None:
        opts = self.options
        index = self._index(attr)
        special = opts.num_attributes <= index < len(opts.attributes)
        if index < opts.num_attributes or terminal:
            skip_terminal = terminal and index >= opts.num_terminal
            skip_leaf = not leaf and index < opts.num_terminal + opts.num_leaf
            if not (skip_terminal or skip_leaf):
                self._add(values, depth)
        elif special and depth < opts.recursion_limit:
            for value in values:
                self._recurse(_text(value), depth)
                if self.answer.failed:
                    break
        elif special:
            first = _text(values[0])
            self._warn(
                f"dict_ldap_get_values[{depth}]: {self.name}: Recursion limit exceeded "
                f"for special attribute {attr}={first}"
            )

    def _add(self, values: list[bytes], depth: int) -> None:
        """Ordinary values, counted against expansion_limit as Postfix counts them (the
        ones result_format keeps)."""
        limit = self.options.expansion_limit
        for raw in values:
            value = _text(raw)
            self.answer.values.append(value)
            if limit > 0 and self.keep(value):
                self.expansions += 1
                if self.expansions > limit:
                    self._warn(
                        f"dict_ldap_get_values[{depth}]: {self.name}: Expansion limit "
                        f"exceeded for key: '{self.key}'"
                    )
                    return

    def _url_attributes(self, wanted: Sequence[str]) -> list[str]:
        """url_attrs(): the URL's attributes that the table asks for, the more specific
        description of each pair; all the table's when the URL names none."""
        if not wanted:
            return list(self.options.attributes)
        out: list[str] = []
        for a1 in wanted:
            for a2 in self.options.attributes:
                relation = attrdesc_subtype(a1, a2)
                if relation > 0:
                    out.append(a2)
                elif relation < 0:
                    out.append(a1)
        return out

    def _recurse(self, value: str, depth: int) -> None:
        try:
            url = parse_ldap_url(value)
        except ValueError as exc:
            self._warn(f"dict_ldap_get_values[{depth}]: malformed URL {value}: {exc}")
            return
        if url is not None:
            attributes = self._url_attributes(url.attributes)
            if not attributes:
                return  # "skipping URL: no pertinent attributes"
            code, entries = self.search(url.dn, url.scope, url.filter, attributes)
        else:
            code, entries = self.search(value, "BASE", "objectclass=*", self.options.attributes)
        if code == 0:
            self.values(entries, depth + 1)
        elif code == NO_SUCH_OBJECT:
            where = f"dict_ldap_get_values[{depth}]"
            self._warn(f"{where}: DN {value} not found, skipping ", fail=False)
        else:
            self._warn(f"dict_ldap_get_values[{depth}]: search error {code}: {err2string(code)} ")
