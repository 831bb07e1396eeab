"""``cidr:/path`` tables (cidr_table(5)): IPv4 and IPv6 networks, first match wins.

The rules may also be written in main.cf, as Postfix 3.7 allows:
``cidr:{{0.0.0.0/0 opportunistic}, {::/0 opportunistic}}`` (one rule per braced item).

Rules are ``network/prefix result`` or ``address result`` (an address may be written inside
``[]``), and ``if network/prefix`` / ``if !network/prefix`` ... ``endif`` blocks. A network
with host bits set is refused with Postfix's hint ("perhaps you should use ...") and, like
every malformed rule, skipped with a warning naming file:line. Keys that are not IP addresses
match nothing. Uses `ipaddress` only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.tables.base import Table
from mailcarrier.tables.text import logical_lines

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class _Rule:
    network: Network | None
    negate: bool
    result: str
    depth_change: int


def _network(text: str) -> Network:
    address, slash, prefix = text.partition("/")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        return ipaddress.ip_network(f"{address}/{prefix}" if slash else address, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        except ValueError:
            raise ValueError(f'bad network value "{text}"') from None
        raise ValueError(
            f'non-null host address bits in "{text}", perhaps you should use '
            f'"{loose.with_prefixlen}" instead'
        ) from None


class CidrTable(Table):
    kind = "cidr"
    fixed = False
    pattern = True

    def __init__(self, spec: str, path: Path | None, rules: Sequence[tuple[int, str]] = ()) -> None:
        """Rules from the file at `path`, or (`path` None) the braced rules of main.cf."""
        super().__init__(spec)
        self.path = path
        self._rules: list[_Rule] = []
        depth = 0
        where = str(path) if path is not None else spec
        lineno = 0
        for lineno, text in logical_lines(path) if path is not None else rules:
            try:
                rule = self._parse(text)
            except ValueError as exc:
                self.warn(f"{exc}; skipping this rule", where, lineno)
                continue
            if rule.depth_change < 0 and depth == 0:
                self.warn("ignoring ENDIF without matching IF", where, lineno)
                continue
            depth += rule.depth_change
            self._rules.append(rule)
        if depth:
            self.warn("IF has no matching ENDIF", where, lineno)

    @staticmethod
    def _parse(text: str) -> _Rule:
        words = text.split(None, 1)
        if words[0].lower() == "endif":
            return _Rule(None, False, "", -1)
        if words[0].lower() == "if":
            if len(words) < 2:
                raise ValueError("missing network after IF")
            target = words[1].split()[0]
            negate = target.startswith("!")
            return _Rule(_network(target.lstrip("!")), negate, "", +1)
        if len(words) < 2:
            raise ValueError("no lookup result")
        negate = words[0].startswith("!")
        return _Rule(_network(words[0].lstrip("!")), negate, words[1].strip(), 0)

    def lookup(self, key: str) -> str | None:
        text = key.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        skip_to, depth = -1, 0
        for rule in self._rules:
            if rule.depth_change < 0:
                depth -= 1
                if depth == skip_to:
                    skip_to = -1
                continue
            if skip_to >= 0:
                depth += rule.depth_change
                continue
            assert rule.network is not None
            inside = address.version == rule.network.version and address in rule.network
            if rule.negate:
                inside = not inside
            if rule.depth_change > 0:
                if not inside:
                    skip_to = depth
                depth += 1
            elif inside:
                return rule.result
        return None

    def files(self) -> tuple[Path, ...]:
        return (self.path,) if self.path is not None else ()
