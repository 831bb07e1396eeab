"""``regexp:/path`` and ``pcre:/path`` tables (regexp_table(5), pcre_table(5)) on Python's `re`.

Each rule is ``/pattern/flags result`` (any delimiter character; a backslash escapes it),
``!/pattern/flags result`` (matches when the pattern does not), or an ``if /pattern/flags`` ...
``endif`` block that guards the rules inside it. Rules are tried in file order and the first
match wins; ``$1``, ``${1}``, ``$(1)`` in the result insert the matched groups, ``$$`` a ``$``.
Matching is case-insensitive unless the ``i`` flag toggles it. A malformed rule is a warning
naming file:line and is skipped, as Postfix does. Python's `re` stands in for both POSIX and
PCRE syntax, so a few exotic constructs (POSIX basic syntax, PCRE's ``U``) are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.tables.base import Table
from mailcarrier.tables.text import logical_lines

_FLAGS_AND_REST: Final = re.compile(r"(\S*)(.*)", re.DOTALL)
_REPLACE: Final = re.compile(r"\$(?:(\d+)|\{(\d+)\}|\((\d+)\)|(\$)|(.?))")
# flag -> (re flag toggled, supported)
_REGEXP_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE}
_PCRE_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
# PCRE flags with no effect under Python re: E (Python's "$" is close enough), X (Python
# already rejects unknown escapes of letters). A is handled as an anchored match.
_PCRE_NOOP: Final = frozenset("EX")


class _RuleError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    anchored: bool
    result: str  # "" for if/endif
    depth_change: int  # +1 for "if", -1 for "endif", 0 for a rule


def _split_pattern(text: str) -> tuple[str, str, str]:
    """``/pattern/flags rest`` -> (pattern, flags, rest)."""
    delim = text[0]
    if delim.isalnum() or delim.isspace() or delim == "\\":
        raise _RuleError(f'bad regular expression delimiter "{delim}"')
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == delim:
            break
        index += 1
    else:
        raise _RuleError(f'missing closing "{delim}" delimiter')
    # Flags are the characters right after the closing delimiter, up to white space.
    m = _FLAGS_AND_REST.match(text, index + 1)
    assert m is not None  # the pattern matches any string
    return text[1:index], m.group(1), m.group(2).strip()


class RegexpTable(Table):
    fixed = False
    pattern = True

    def __init__(self, spec: str, path: Path, kind: str = "regexp") -> None:
        super().__init__(spec)
        self.kind = kind
        self.path = path
        self._rules: list[_Rule] = []
        self._load()

    def _compile(self, pattern: str, flags: str) -> tuple[re.Pattern[str], bool]:
        table = _PCRE_FLAGS if self.kind == "pcre" else _REGEXP_FLAGS
        options = re.IGNORECASE  # Postfix's default: case-insensitive
        anchored = False
        for flag in flags:
            if flag in table:
                options ^= table[flag]
            elif self.kind == "pcre" and flag == "A":
                anchored = True
            elif self.kind == "pcre" and flag in _PCRE_NOOP:
                continue
            else:
                raise _RuleError(f'unknown or unsupported regexp flag "{flag}"')
        try:
            return re.compile(pattern, options), anchored
        except (re.error, OverflowError, RecursionError) as exc:
            raise _RuleError(f'bad regular expression "{pattern}": {exc}') from None

    def _parse(self, text: str) -> _Rule:
        word = text.split(None, 1)[0].lower()
        if word == "endif":
            return _Rule(re.compile(""), False, False, "", -1)
        is_if = word == "if"
        body = text[2:].strip() if is_if else text
        negate = body.startswith("!")
        if negate:
            body = body[1:].lstrip()
        if not body:
            raise _RuleError("missing pattern")
        pattern, flags, result = _split_pattern(body)
        regex, anchored = self._compile(pattern, flags)
        if is_if:
            return _Rule(regex, negate, anchored, "", +1)
        if not result:
            raise _RuleError("no lookup result")
        self._check_result(result, regex, negate)
        return _Rule(regex, negate, anchored, result, 0)

    @staticmethod
    def _check_result(result: str, regex: re.Pattern[str], negate: bool) -> None:
        for m in _REPLACE.finditer(result):
            number = m.group(1) or m.group(2) or m.group(3)
            if number is None:
                if m.group(4) is None:
                    raise _RuleError(f'bad "$" in result "{result}" (use $$ for a "$")')
                continue
            if negate:
                raise _RuleError(f'"${number}" in the result of a negated pattern')
            if int(number) > regex.groups:
                raise _RuleError(
                    f'"${number}" is out of range (the pattern has {regex.groups} groups)'
                )

    def _load(self) -> None:
        depth = last = 0
        for lineno, text in logical_lines(self.path):
            last = lineno
            try:
                rule = self._parse(text)
            except _RuleError as exc:
                self.warn(f"{exc}; skipping this rule", str(self.path), lineno)
                continue
            if rule.depth_change < 0 and depth == 0:
                self.warn("ignoring ENDIF without matching IF", str(self.path), lineno)
                continue
            depth += rule.depth_change
            self._rules.append(rule)
        if depth:
            self.warn("IF has no matching ENDIF", str(self.path), last)

    def _matches(self, rule: _Rule, key: str) -> re.Match[str] | bool | None:
        m = rule.regex.match(key) if rule.anchored else rule.regex.search(key)
        if rule.negate:
            return m is None
        return m

    def lookup(self, key: str) -> str | None:
        skip_to = -1  # when >= 0: skipping an IF block, until depth returns to this level
        depth = 0
        for rule in self._rules:
            if rule.depth_change < 0:
                depth -= 1
                if depth == skip_to:
                    skip_to = -1
                continue
            if skip_to >= 0:
                depth += rule.depth_change
                continue
            outcome = self._matches(rule, key)
            if rule.depth_change > 0:
                if not outcome:
                    skip_to = depth
                depth += 1
                continue
            if outcome is True:
                return rule.result
            if isinstance(outcome, re.Match):
                return _substitute(rule.result, outcome)
        return None

    def files(self) -> tuple[Path, ...]:
        return (self.path,)


def _substitute(result: str, match: re.Match[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        number = m.group(1) or m.group(2) or m.group(3)
        if number is None:
            return "$"
        return match.group(int(number)) or ""

    return _REPLACE.sub(repl, result)
