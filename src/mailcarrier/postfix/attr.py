"""Postfix's attr0 framing, sans-IO: how qmgr(8), bounce(8), defer(8), trace(8) and verify(8)
talk to a delivery agent over a unix stream socket.

A list is ``name NUL value NUL`` pairs ended by one more NUL (an empty name). Numbers are
decimal text of the unsigned C value, so an int of -1 arrives as ``4294967295`` and a long of
-1 as ``18446744073709551615``; `as_int()` and `as_long()` turn them back. Binary values
(``time``, a MSG_STATS struct) are base64. Both ends scan strictly: names, order and count
must match, which `expect()` checks with Postfix's wording ("unexpected attribute X
(expecting: Y)").

`AttrParser` is fed bytes as they arrive (one at a time, or a whole request at once) and hands
out complete lists; a string longer than the limit (4 x line_length_limit, as attr_scan0) or a
list with too many pairs is an `AttrError`. Neighbours: request.py (the delivery request built
from these lists), server.py (the socket side).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from mailcarrier.errors import MailcarrierError

__all__ = [
    "AttrError",
    "AttrList",
    "AttrParser",
    "Long",
    "Value",
    "as_int",
    "as_long",
    "encode",
    "expect",
    "expect_strings",
]

# One attribute list as received: (name, value) pairs, both still bytes.
AttrList = list[tuple[bytes, bytes]]


class Long(int):
    """An int sent as a C long (``%lu``): -1 is 18446744073709551615. A plain int is a C
    int (``%u``): -1 is 4294967295."""

    __slots__ = ()


Value = str | int | bytes

# line_length_limit's default (2048) times 4, as attr_scan0 bounds each string.
DEFAULT_MAX_STRING: Final = 4 * 2048
# More pairs than any request Postfix sends (23 common attributes), with room to spare.
DEFAULT_MAX_PAIRS: Final = 1024
_U32: Final = 1 << 32
_U64: Final = 1 << 64


class AttrError(MailcarrierError):
    """A malformed attribute list, or one that is not what the protocol says."""


def _value_bytes(value: Value) -> bytes:
    if isinstance(value, bool):
        raise TypeError("attr0 has no boolean type")
    if isinstance(value, int):
        # %u of an int, %lu of a long: negative values travel as their unsigned form.
        limit = _U64 if isinstance(value, Long) else _U32
        if not -(limit >> 1) <= value < limit:
            raise AttrError(f"number out of range: {value}")
        return str(value % limit).encode("ascii")
    try:
        data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:  # a lone surrogate that no decoding produced
        raise AttrError(f"attribute value cannot be encoded: {value!r}") from exc
    if b"\0" in data:
        raise AttrError("attribute value contains a null byte")
    return data


def encode(pairs: Iterable[tuple[str, Value]], *, terminate: bool = True) -> bytes:
    """One attribute list (with its terminator unless `terminate` is False, for the
    sub-lists Postfix inlines in another list)."""
    out: list[bytes] = []
    for name, value in pairs:
        if not name or "\0" in name or not name.isascii():
            raise AttrError(f"bad attribute name {name!r}")
        out.append(name.encode("ascii"))
        out.append(_value_bytes(value))
    if terminate:
        out.append(b"")
    return b"".join(part + b"\0" for part in out)


def as_int(value: bytes, name: str = "value") -> int:
    """An attr0 int (`%u` text) as a signed C int: 4294967295 is -1."""
    if len(value) < 10 and value.isdigit():  # below 2**31: the usual flags and counts
        return int(value)
    number = _unsigned(value, name)
    if number >= _U32:
        raise AttrError(f"{name}: number out of range: {value[:40]!r}")
    return number - _U32 if number >= 1 << 31 else number


def as_long(value: bytes, name: str = "value") -> int:
    """An attr0 long (`%lu` text) as a signed C long: 18446744073709551615 is -1."""
    if len(value) < 19 and value.isdigit():  # below 2**63: the usual offsets and sizes
        return int(value)
    number = _unsigned(value, name)
    if number >= _U64:
        raise AttrError(f"{name}: number out of range: {value[:40]!r}")
    return number - _U64 if number >= 1 << 63 else number


def _unsigned(value: bytes, name: str) -> int:
    if len(value) > 20 or not value.isdigit():  # b"".isdigit() is False
        raise AttrError(f"{name}: bad numerical value: {value[:40]!r}")
    return int(value)


# The names `expect()` was asked for, as bytes (a few fixed sequences: the protocol's lists).
_ENCODED: dict[tuple[str, ...], list[bytes]] = {}


def expect(pairs: AttrList, names: Sequence[str]) -> list[bytes]:
    """The values of `pairs`, which must carry exactly `names` in this order (Postfix's
    ATTR_FLAG_STRICT: a missing, extra or misplaced attribute fails the list)."""
    key = tuple(names)
    wanted = _ENCODED.get(key)
    if wanted is None:
        wanted = [name.encode("ascii") for name in key]
        if len(_ENCODED) < 64:
            _ENCODED[key] = wanted
    if [name for name, _ in pairs] != wanted:
        _refuse(pairs, names)
    return [value for _, value in pairs]


def expect_strings(strings: list[bytes], names: Sequence[str]) -> list[bytes]:
    """`expect()` of a list as `AttrParser.next_strings()` gives it: name, value, name,
    value, ... (the values, or `AttrError`)."""
    key = tuple(names)
    wanted = _ENCODED.get(key)
    if wanted is None:
        wanted = [name.encode("ascii") for name in key]
        if len(_ENCODED) < 64:
            _ENCODED[key] = wanted
    if strings[::2] != wanted:
        _refuse(list(zip(strings[::2], strings[1::2], strict=True)), names)
    return strings[1::2]


def _refuse(pairs: AttrList, names: Sequence[str]) -> None:
    """What is wrong with `pairs`, in Postfix's words."""
    for index, want in enumerate(names):
        if index >= len(pairs):
            raise AttrError(f"missing attribute {want}")
        got = pairs[index][0]
        if got != want.encode("ascii"):
            shown = got.decode("ascii", "backslashreplace")
            raise AttrError(f"unexpected attribute {shown} (expecting: {want})")
    shown = pairs[len(names)][0].decode("ascii", "backslashreplace")
    raise AttrError(f"unexpected attribute {shown} (expecting: (list terminator))")


class AttrParser:
    """Bytes in, complete attribute lists out. `feed()` what the socket gave, then call
    `next_list()` until it returns None (more bytes needed). `feed(b"")` marks end of file:
    `next_list()` then raises `AttrError` if a list was cut short.

    What arrives is split at its NULs once, as it arrives (`_tokens`: the complete strings,
    then the incomplete one still being received); `next_list()` finds the terminator among
    the names and hands out the pairs before it, with no work per string in Python. Lengths
    are checked one by one only when a piece fed could hold a string over the limit."""

    __slots__ = ("_at", "_eof", "_long", "_max_pairs", "_max_string", "_tokens")

    def __init__(
        self, *, max_string: int = DEFAULT_MAX_STRING, max_pairs: int = DEFAULT_MAX_PAIRS
    ) -> None:
        self._tokens: list[bytes] = [b""]  # complete strings, then the one in progress
        self._at = 0  # the first string not handed out yet (a name, or the terminator)
        self._eof = False
        self._long = False  # a string may be longer than the limit: check them
        self._max_string = max_string
        self._max_pairs = max_pairs

    def feed(self, data: bytes) -> None:
        if self._eof:
            raise AttrError("data after end of file")
        if not data:
            self._eof = True
            return
        tokens = self._tokens
        if self._at > 64:  # drop what was handed out
            del tokens[: self._at]
            self._at = 0
        tail = tokens.pop()
        if len(tail) + len(data) > self._max_string:
            self._long = True
        tokens += (tail + data if tail else data).split(b"\0")

    @property
    def idle(self) -> bool:
        """Nothing of a list received yet (between lists)."""
        return self._at == len(self._tokens) - 1 and not self._tokens[-1]

    def next_list(self) -> AttrList | None:
        strings = self.next_strings()
        if strings is None:
            return None
        return list(zip(strings[::2], strings[1::2], strict=False))

    def next_strings(self) -> list[bytes] | None:
        """The next list as its strings, name, value, name, value, ... (`next_list()`
        without the pairs); None when more bytes are needed."""
        tokens, at = self._tokens, self._at
        last = len(tokens) - 1  # the string in progress
        try:
            pairs = tokens[at:last:2].index(b"")  # the terminator: an empty name
        except ValueError:
            if (last - at) // 2 > self._max_pairs or self._long:
                self._check(at, last)
            if self._eof and not self.idle:
                raise AttrError("premature end of file in attribute list") from None
            return None
        end = at + 2 * pairs  # the terminator's index
        strings = tokens[at:end]
        if pairs > self._max_pairs or self._long:
            self._check(at, end)
        self._at = end + 1
        return strings

    def _check(self, at: int, end: int) -> None:
        """The limits for the strings from `at` to `end` (excluded: the terminator, or the
        string in progress, whose length counts too), in the order they came: the first
        one broken is reported, as a scan string by string would."""
        tokens = self._tokens
        limit = self._max_string
        for index in range(at, end + 1):
            if len(tokens[index]) > limit:
                raise AttrError(f"string length > {limit}")
            if index < end and (index - at) % 2 and (index - at) // 2 >= self._max_pairs:
                raise AttrError(f"more than {self._max_pairs} attributes in a list")
