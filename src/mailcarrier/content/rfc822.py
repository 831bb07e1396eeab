"""RFC 822 address lists as Postfix's tok822 module sees them: tokens, address nodes, and the
text form Postfix writes back after rewriting a header (generic(5) mapping in smtp(8)).

`parse_address_list(text)` turns a header value into a flat list of nodes: `Token` values
(atoms, quoted strings, comments, domain literals and the operators ``<>@,;:.``) and one
`Address` per mailbox, holding the address in external (quoted) form, the form Postfix looks
up in address-mapping tables. `externalize(nodes)` writes the list out again with tok822's
spacing rules (a space between two words, before ``<``, after ``,``) and, with
``one_per_line``, a line break after each comma; `fold_header` then joins those lines as
Postfix's smtp_header_rewrite() does: as many addresses as fit in 70 columns per line, each
continuation line starting with a TAB.

`quote_local` and `unquote_local` convert an address between Postfix's internal form (the
local part as plain text) and external form (the local part quoted when it is not a
dot-string), as quote_822_local(3) does. Everything here is pure and never raises on
malformed input: unterminated quotes, comments and brackets run to the end of the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Address",
    "Node",
    "Token",
    "externalize",
    "fold_header",
    "parse_address_list",
    "quote_local",
    "split_address",
    "tokenize",
    "unquote_local",
]

ATOM: Final = "atom"
QSTRING: Final = "qstring"
COMMENT: Final = "comment"
DOMLIT: Final = "domlit"
# The ":" that starts a group ("team: a@x, b@y;"), as tok822's TOK822_STARTGRP.
STARTGRP: Final = "startgrp"

_OPERATORS: Final = frozenset("<>@,;:.")
_SPACE: Final = frozenset(" \t\r\n")
# Characters that end an atom (RFC 822 specials and white space).
_ATOM_END: Final = frozenset('()<>@,;:".[]') | _SPACE
# RFC 822 specials, controls and space: a local part with one of these must be quoted.
_NEEDS_QUOTE: Final = (
    frozenset('()<>@,;:\\".[] ') | frozenset(chr(c) for c in range(32)) | {chr(127)}
)
_WORDS: Final = frozenset({ATOM, QSTRING, COMMENT, DOMLIT})
# Postfix folds a rewritten address header at this width (cleanup_fold_header()).
FOLD_WIDTH: Final = 70


@dataclass(frozen=True, slots=True)
class Token:
    """One token: `kind` is atom, qstring, comment, domlit, startgrp or the operator itself;
    `text` is the token as written (quotes, parentheses and brackets included)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox address in external (quoted) form, e.g. ``"j doe"@example.com``."""

    text: str


Node = Token | Address


def _scan_delimited(text: str, start: int, close: str, *, nests: bool) -> int:
    """Index just past the `close` that ends the construct opened at `start` (backslash
    escapes the next character; comments nest); len(text) when it never closes."""
    opener = text[start]
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if nests and ch == opener and i > start:
            depth += 1
        elif ch == close and i > start:
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    return len(text)


def tokenize(text: str) -> list[Token]:
    """RFC 822 lexical tokens of `text`; white space separates tokens and is dropped."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch == "(":
            end = _scan_delimited(text, i, ")", nests=True)
            tokens.append(Token(COMMENT, text[i:end]))
            i = end
        elif ch == '"':
            end = _scan_delimited(text, i, '"', nests=False)
            tokens.append(Token(QSTRING, text[i:end]))
            i = end
        elif ch == "[":
            end = _scan_delimited(text, i, "]", nests=False)
            tokens.append(Token(DOMLIT, text[i:end]))
            i = end
        elif ch in _OPERATORS:
            tokens.append(Token(ch, ch))
            i += 1
        elif ch in ")]":
            tokens.append(Token(ATOM, ch))  # stray closer: keep it, as text
            i += 1
        else:
            end = i + 1
            while end < len(text) and text[end] not in _ATOM_END:
                end += 1
            tokens.append(Token(ATOM, text[i:end]))
            i = end
    return tokens


def _join(tokens: list[Token]) -> str:
    """Tokens of one address as one string: no space except between two adjacent words."""
    out: list[str] = []
    for n, tok in enumerate(tokens):
        if n and tok.kind in _WORDS and tokens[n - 1].kind in _WORDS:
            out.append(" ")
        out.append(tok.text)
    return "".join(out)


def _mailbox(segment: list[Token]) -> list[Node]:
    """One mailbox (or phrase <route-addr>) with its address made an `Address` node."""
    kinds = [t.kind for t in segment]
    if "<" in kinds:
        start = kinds.index("<")
        end = len(segment) - 1 - kinds[::-1].index(">") if ">" in kinds[start:] else len(segment)
        inner = segment[start + 1 : end]
        route: list[Token] = []
        if inner and inner[0].kind == "@" and any(t.kind == ":" for t in inner):
            colon = next(n for n, t in enumerate(inner) if t.kind == ":")
            route, inner = inner[: colon + 1], inner[colon + 1 :]
        words = [t for t in inner if t.kind != COMMENT]
        comments = [t for t in inner if t.kind == COMMENT]
        middle: list[Node] = [*route, *([Address(_join(words))] if words else []), *comments]
        return [*segment[: start + 1], *middle, *segment[end:]]
    words = [t for t in segment if t.kind != COMMENT]
    if not words:
        return list(segment)
    first = next(n for n, t in enumerate(segment) if t.kind != COMMENT)
    leading = segment[:first]
    others = [t for t in segment[first:] if t.kind == COMMENT]
    return [*leading, Address(_join(words)), *others]


def parse_address_list(text: str) -> list[Node]:
    """The nodes of an address-list header value (after the colon)."""
    nodes: list[Node] = []
    segment: list[Token] = []
    angle = 0
    in_group = False

    def flush() -> None:
        nodes.extend(_mailbox(segment))
        segment.clear()

    for tok in tokenize(text):
        if angle == 0 and tok.kind == ",":
            flush()
            nodes.append(tok)
        elif angle == 0 and tok.kind == ":" and not in_group:
            # A group: what came before the colon is its display name.
            nodes.extend(segment)
            segment.clear()
            nodes.append(Token(STARTGRP, ":"))
            in_group = True
        elif angle == 0 and tok.kind == ";" and in_group:
            flush()
            nodes.append(tok)
            in_group = False
        else:
            if tok.kind == "<":
                angle += 1
            elif tok.kind == ">" and angle:
                angle -= 1
            segment.append(tok)
    flush()
    return nodes


def addresses(nodes: list[Node]) -> Iterator[Address]:
    return (n for n in nodes if isinstance(n, Address))


def _is_word(node: Node) -> bool:
    return isinstance(node, Address) or node.kind in _WORDS


def externalize(nodes: list[Node], *, one_per_line: bool = False) -> str:
    """The nodes as text, spaced as tok822_externalize() spaces them."""
    out: list[str] = []
    for n, node in enumerate(nodes):
        out.append(node.text)
        if n + 1 == len(nodes):
            break
        nxt = nodes[n + 1]
        if isinstance(node, Token) and node.kind == ",":
            out.append("\n" if one_per_line else " ")
        elif (
            (isinstance(node, Token) and node.kind == STARTGRP)
            or (isinstance(nxt, Token) and nxt.kind == "<")
            or (_is_word(node) and _is_word(nxt))
        ):
            out.append(" ")
    return "".join(out)


def fold_header(name: str, nodes: list[Node]) -> list[str]:
    """A rewritten address header as Postfix writes it: ``Name: `` and the addresses, as many
    per line as fit in FOLD_WIDTH columns, continuation lines starting with a TAB."""
    pieces = f"{name}: {externalize(nodes, one_per_line=True)}".split("\n")
    lines = [pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + 1 + len(piece) < FOLD_WIDTH:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return [lines[0], *("\t" + line for line in lines[1:])]


def split_address(address: str) -> tuple[str, str]:
    """(local part, "@domain" or "") split at the last "@" outside quotes."""
    quoted = False
    escaped = False
    at = -1
    for i, ch in enumerate(address):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "@" and not quoted:
            at = i
    if at < 0:
        return address, ""
    return address[:at], address[at:]


def _is_dot_string(local: str) -> bool:
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return not any(ch in _NEEDS_QUOTE for ch in local if ch != ".")


def quote_local(address: str) -> str:
    """Internal to external form: quote the local part unless it is a dot-string. The local
    part of an internal address is everything before its last "@"."""
    if not address:
        return address
    at = address.rfind("@")
    local, domain = (address[:at], address[at:]) if at >= 0 else (address, "")
    if _is_dot_string(local):
        return address
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"{domain}'


def unquote_local(address: str) -> str:
    """External to internal form: remove the quoting of the local part."""
    local, domain = split_address(address)
    if '"' not in local and "\\" not in local:
        return address
    out: list[str] = []
    quoted = False
    escaped = False
    for ch in local:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        else:
            out.append(ch)
    return "".join(out) + domain
