"""Postfix ``$name`` expansion for main.cf values: lazy, recursive, with loop detection.

Implements the forms of postconf(5): ``$name``, ``${name}``, ``$(name)``, ``$$`` (a literal
``$``), ``${name?value}`` / ``${name:value}`` and their ``{value}`` variants, Postfix 3.5's
``${name?{value1}:{value2}}``, and the relational form ``${{text1} op
{text2}?{value1}:{value2}}`` with ``==``, ``!=``, numeric ``<``, ``<=``, ``>``, ``>=`` and the
``<level``-style compatibility-level comparisons, and Postfix 3.11's named functions
``${domain_to_ascii{text}}`` and ``${domain_to_utf8{text}}`` (mac_midna: the expanded text
converted as idn.py converts names; one that cannot be converted is an error). A branch is
expanded only when it is chosen, so a loop in an unused branch is harmless, as in Postfix. An
undefined parameter expands to the empty string. This module knows nothing about the parameter
table: `settings.py` supplies the lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from mailcarrier.idn import domain_to_ascii, domain_to_utf8

_NAME_CHARS: Final = re.compile(r"[A-Za-z0-9_]+")
_MAX_DEPTH: Final = 100
# Postfix 3.11's named functions (mac_expand_add_named_fn(), registered by mac_midna).
_FUNCTIONS: Final[dict[str, Callable[[str], str | None]]] = {
    "domain_to_ascii": domain_to_ascii,
    "domain_to_utf8": domain_to_utf8,
}
_OPERATORS: Final = ("==", "!=", "<=level", ">=level", "<level", ">level", "<=", ">=", "<", ">")


class ExpandError(ValueError):
    """A syntax error or a loop in a ``$name`` expression. `name` is the parameter involved."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


Lookup = Callable[[str], "str | None"]


class Expander:
    """Expands text against `lookup(name) -> raw value | None`, caching each expanded name."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._cache: dict[str, str] = {}
        self._stack: list[str] = []
        self.referenced: set[str] = set()

    def name(self, name: str) -> str:
        """The fully expanded value of parameter `name` ("" when undefined)."""
        self.referenced.add(name)
        if name in self._cache:
            return self._cache[name]
        if name in self._stack:
            raise ExpandError(f"recursive expansion of ${name}", name)
        if len(self._stack) >= _MAX_DEPTH:
            raise ExpandError(f"unreasonable macro call nesting: ${name}", name)
        raw = self._lookup(name)
        if raw is None:
            return ""
        self._stack.append(name)
        try:
            value = self.text(raw)
        finally:
            self._stack.pop()
        self._cache[name] = value
        return value

    def text(self, text: str) -> str:
        """Expand every ``$`` expression in `text`."""
        if "$" not in text:
            return text
        out: list[str] = []
        pos = 0
        while True:
            dollar = text.find("$", pos)
            if dollar < 0:
                out.append(text[pos:])
                return "".join(out)
            out.append(text[pos:dollar])
            pos = self._one(text, dollar + 1, out)

    def _one(self, text: str, pos: int, out: list[str]) -> int:
        """Expand the expression after the ``$`` at pos-1; return the index after it."""
        if pos >= len(text):
            out.append("$")
            return pos
        char = text[pos]
        if char == "$":
            out.append("$")
            return pos + 1
        if char in "{(":
            close = _matching(text, pos)
            out.append(self._braced(text[pos + 1 : close]))
            return close + 1
        m = _NAME_CHARS.match(text, pos)
        if m is None:
            # A "$" not followed by a name is kept literally, as Postfix does for e.g. "$ ".
            out.append("$")
            return pos
        out.append(self.name(m.group()))
        return m.end()

    def _braced(self, body: str) -> str:
        if body.startswith("{"):
            return self._relational(body)
        m = _NAME_CHARS.match(body)
        if m is None:
            raise ExpandError(f'bad parameter name in "${{{body}}}"')
        name, rest = m.group(), body[m.end() :]
        if not rest:
            return self.name(name)
        if rest.lstrip().startswith("{"):
            return self._function(name, rest.lstrip(), body)
        op, arg = rest[0], rest[1:]
        if op not in "?:":
            raise ExpandError(f'bad parameter name in "${{{body}}}"')
        value = self.name(name)
        if arg.lstrip().startswith("{"):
            then: str | None
            then, otherwise = _branches(arg, body)
            if op == ":":
                if otherwise is not None:
                    raise ExpandError(f'unexpected ":{{...}}" in "${{{body}}}"')
                then, otherwise = None, then
            chosen = then if value else otherwise
            return self.text(chosen) if chosen is not None else ""
        # "?" picks arg when the value is non-empty, ":" when it is empty; otherwise the
        # whole expression is empty (not $name), as postconf(5) specifies.
        wanted = bool(value) if op == "?" else not value
        return self.text(arg) if wanted else ""

    def _function(self, name: str, rest: str, body: str) -> str:
        """``${name{text}}``: the named function of the expanded, stripped text."""
        arg, tail = _take_group(rest, 0, body)
        if tail.strip():
            raise ExpandError(f'unexpected input after "}}" in "${{{body}}}"')
        function = _FUNCTIONS.get(name)
        if function is None:
            raise ExpandError(f'unknown function "{name}" in "${{{body}}}"')
        text = self.text(arg.strip())
        value = function(text)
        if value is None:
            raise ExpandError(f"bad domain argument in: '{name}{{{text}}}'")
        return value

    def _relational(self, body: str) -> str:
        left, rest = _take_group(body, 0, body)
        rest = rest.lstrip()
        for op in _OPERATORS:
            if rest.startswith(op):
                break
        else:
            raise ExpandError(f'unknown operator in "${{{body}}}"')
        right, rest = _take_group(rest[len(op) :].lstrip(), 0, body)
        rest = rest.lstrip()
        if not rest.startswith("?"):
            raise ExpandError(f'missing "?" in "${{{body}}}"')
        then, otherwise = _branches(rest[1:], body)
        verdict = _compare(self.text(left), op, self.text(right))
        chosen = then if verdict else otherwise
        return self.text(chosen) if chosen is not None else ""


def _matching(text: str, pos: int) -> int:
    """Index of the bracket closing the one at `pos` (``{`` or ``(``), nesting-aware."""
    opening = text[pos]
    closing = "}" if opening == "{" else ")"
    depth = 0
    for index in range(pos, len(text)):
        char = text[index]
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index
    raise ExpandError(f'unmatched "{opening}" in "{text}"')


def _take_group(text: str, pos: int, whole: str) -> tuple[str, str]:
    """Split ``{inner}rest`` into (inner, rest)."""
    if not text.startswith("{", pos):
        raise ExpandError(f'expected "{{" in "${{{whole}}}"')
    close = _matching(text, pos)
    return text[pos + 1 : close], text[close + 1 :]


def _branches(arg: str, whole: str) -> tuple[str, str | None]:
    """Parse ``{a}`` or ``{a}:{b}`` (white space around the groups is ignored)."""
    first, rest = _take_group(arg.strip(), 0, whole)
    rest = rest.strip()
    if not rest:
        return first, None
    if not rest.startswith(":"):
        raise ExpandError(f'unexpected text after "}}" in "${{{whole}}}"')
    second, tail = _take_group(rest[1:].strip(), 0, whole)
    if tail.strip():
        raise ExpandError(f'unexpected text after "}}" in "${{{whole}}}"')
    return first, second


def _compare(left: str, op: str, right: str) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op.endswith("level"):
        a: tuple[int, ...] = _level(left)
        b: tuple[int, ...] = _level(right)
        op = op.removesuffix("level")
    else:
        try:
            a, b = (int(left),), (int(right),)
        except ValueError:
            raise ExpandError(f'non-numeric operand in "{left} {op} {right}"') from None
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _level(text: str) -> tuple[int, ...]:
    """A compatibility level such as ``3.6`` as a comparable tuple (``0`` is below ``1``)."""
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        raise ExpandError(f'bad compatibility level "{text}"') from None
