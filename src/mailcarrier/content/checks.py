"""smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks, smtp_body_checks.

The SMTP client's restricted header_checks(5)/body_checks(5), as Postfix's header_body_checks.c
runs them for smtp(8): each logical header (folded lines joined with LF) is looked up in the
table of its class (primary headers; MIME headers, i.e. Content-* and MIME-Version anywhere,
and multipart part headers; headers of an attached message), each body line piece in the
body table. Only actions that change neither delivery time nor destination exist here:
REPLACE, PREPEND, IGNORE (drop, not logged), WARN, INFO, DUNNO and OK (nothing). Anything else
is logged as an unsupported command and ignored. Action lines are logged as Postfix logs them:
``QUEUEID: warning: header Subject: hi: text`` (the action in lower case, "header" or "body",
the first 200 bytes of the line, and the action's text if any). content/mime.py calls these as
its header and body hooks; the tables come from tables/ through the caller.

A table that cannot be read (`LOOKUP_ERRORS`) is Postfix's "smtp header checks lookup error":
a warning, and `ContentError` 4.3.0, which abandons the transaction mid-DATA and defers the
recipients (never a bounce).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from mailcarrier.content.mime import ContentError, HeaderClass
from mailcarrier.tables.base import TableError

__all__ = ["LOOKUP_ERRORS", "ContentChecks", "LookupTable", "UnavailableTable"]

# What a table can raise when it is opened or asked.
LOOKUP_ERRORS: Final = (TableError, OSError, sqlite3.Error)

# Headers Postfix's header_opts marks HDR_OPT_MIME: in any header block they are checked
# against the MIME table (hbc_header_checks: "compatibility with the cleanup(8) server").
_MIME_HEADERS: Final = frozenset(
    {
        b"content-description",
        b"content-disposition",
        b"content-id",
        b"content-transfer-encoding",
        b"content-type",
        b"mime-version",
    }
)
_IS_HEADER: Final = re.compile(r"[!-9;-~]+[ \t]*:")


class LookupTable(Protocol):
    """What the checks need of a `tables.Maps`: the first matching value for a key."""

    def __bool__(self) -> bool: ...

    def find(self, key: str, *, partial: bool = False) -> _Found | None: ...


class _Found(Protocol):
    @property
    def value(self) -> str: ...


class UnavailableTable:
    """Stands in for a table that could not be opened: every lookup raises the error again,
    so each delivery defers (4.3.0) instead of the process failing."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __bool__(self) -> bool:
        return True

    def find(self, key: str, *, partial: bool = False) -> _Found | None:
        raise self.error


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class _Result:
    lines: tuple[bytes, ...]  # what to write instead of the line (empty: drop it)
    prepend: bytes | None = None


class ContentChecks:
    """The four tables (None or empty: not checked) and where their actions are logged."""

    def __init__(
        self,
        *,
        queue_id: str,
        info: Callable[[str], None],
        warning: Callable[[str], None],
        header: LookupTable | None = None,
        mime_header: LookupTable | None = None,
        nested_header: LookupTable | None = None,
        body: LookupTable | None = None,
        prefix: str = "smtp",
    ) -> None:
        self._queue_id = queue_id
        self._info = info
        self._warning = warning
        self._tables: dict[HeaderClass, tuple[str, LookupTable | None]] = {
            HeaderClass.PRIMARY: (f"{prefix}_header_checks", header or None),
            HeaderClass.MULTIPART: (f"{prefix}_mime_header_checks", mime_header or None),
            HeaderClass.NESTED: (f"{prefix}_nested_header_checks", nested_header or None),
        }
        self._body = (f"{prefix}_body_checks", body or None)
        self._prefix = prefix

    @property
    def has_header_checks(self) -> bool:
        return any(table is not None for _, table in self._tables.values())

    @property
    def has_body_checks(self) -> bool:
        return self._body[1] is not None

    # -- hooks for MimeProcessor -------------------------------------------------------------

    def header(self, cls: HeaderClass, text: bytes) -> Iterable[bytes]:
        """Header hook: the lines to write for this logical header."""
        name = text.split(b":", 1)[0].strip().lower()
        if name in _MIME_HEADERS:
            cls = HeaderClass.MULTIPART
        map_class, table = self._tables[cls]
        lines = text.split(b"\n")
        if table is None:
            return lines
        found = self._find(table, _text(text), "header")
        if found is None:
            return lines
        result = self._action(map_class, "header", found.value, text)
        if result is None:
            return lines
        out = [result.prepend] if result.prepend is not None else []
        out.extend(result.lines)
        return out

    def body(self, piece: bytes, complete: bool) -> bytes | None:
        """Body hook: the piece to write instead (None: drop it)."""
        map_class, table = self._body
        if table is None:
            return piece
        found = self._find(table, _text(piece), "body")
        if found is None:
            return piece
        result = self._action(map_class, "body", found.value, piece)
        if result is None:
            return piece
        replaced = result.lines[0] if result.lines else None
        if result.prepend is None:
            return replaced
        # PREPEND writes its text as a line of its own before this one.
        return result.prepend + b"\n" + (replaced if replaced is not None else b"")

    def _find(self, table: LookupTable, key: str, where: str) -> _Found | None:
        try:
            return table.find(key)
        except LOOKUP_ERRORS as exc:
            # Postfix: "smtp header checks lookup error", then SMTP_ERR_DATA.
            self._warning(f"{self._queue_id}: {self._prefix} {where} checks lookup error")
            raise ContentError(
                "4.3.0", f"local data error while sending message content: {exc}"
            ) from None

    # -- actions ----------------------------------------------------------------------------

    def _log(self, action: str, where: str, content: bytes, text: str) -> None:
        shown = _text(content[:200])
        tail = f": {text}" if text else ""
        self._info(f"{self._queue_id}: {action}: {where} {shown}{tail}")

    def _action(self, map_class: str, where: str, action: str, line: bytes) -> _Result | None:
        """Postfix hbc_action(): None means "write the line unchanged"."""
        command, _, args = action.strip().partition(" ")
        verb = command.split("\t", 1)[0]
        if "\t" in command:
            args = command.split("\t", 1)[1] + (" " + args if args else "")
        args = args.strip()
        verb = verb.upper()
        if verb in ("WARN", "INFO"):
            self._log("warning" if verb == "WARN" else "info", where, line, args)
            return None
        if verb in ("REPLACE", "PREPEND"):
            if not args:
                self._warning(f"{verb} action without text in {map_class} map")
                return None
            if where == "header" and not _IS_HEADER.match(args):
                self._warning(
                    f'bad {verb} header text "{args}" in {map_class} map -- '
                    'need "headername: headervalue"'
                )
                return None
            self._log(verb.lower(), where, line, args)
            if verb == "REPLACE":
                return _Result(tuple(_bytes(args).split(b"\n")))
            return _Result(tuple(line.split(b"\n")), prepend=_bytes(args))
        if verb == "IGNORE":
            # Not logged, for compatibility with cleanup(8).
            return _Result(())
        if verb in ("DUNNO", "OK"):
            return None
        self._warning(f"unsupported command in {map_class} map: {action.strip()}")
        return None
