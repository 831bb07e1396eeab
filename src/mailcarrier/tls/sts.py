"""MTA-STS (RFC 8461) as pure values: the ``_mta-sts`` TXT record, the policy file, MX patterns.

`select_record(texts)` applies RFC 8461 3.1 to the TXT strings of ``_mta-sts.<domain>``:
records that do not begin with ``v=STSv1`` are discarded, and anything but exactly one
remaining, well-formed record means "no policy discoverable" (`StsRecordError` says why).
`parse_policy(body)` reads a policy file (RFC 8461 3.2: ``key: value`` lines, CRLF or LF)
into a `StsPolicy` or raises `StsPolicyError` naming the first problem: a missing
``version``/``mode``/``max_age``, no ``mx`` in ``enforce`` or ``testing`` mode, a
``max_age`` that is not 1-10 digits or exceeds 31557600, an MX pattern that is neither a
host name nor ``*.`` and a host name. `mx_matches()` is RFC 8461 4.1 (the wildcard stands for
exactly one left-most label), as Postfix's match_sts_mx_host_pattern() also does for the
patterns an STS policy plugin passes in ``smtp_tls_policy_maps``.

Nothing here does I/O: the TXT lookup is routing/mtasts.py's, the HTTPS fetch, the cache
and the decision per MX host are delivery/'s (sts_fetch.py, sts_cache.py, sts_step.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_AGE_LIMIT",
    "MAX_POLICY_SIZE",
    "MODES",
    "StsPolicy",
    "StsPolicyError",
    "StsRecord",
    "StsRecordError",
    "mx_matches",
    "mx_permitted",
    "parse_policy",
    "select_record",
    "valid_mx_pattern",
]

# RFC 8461 3.2: "max_age ... up to 31557600" (about one year).
MAX_AGE_LIMIT: Final = 31557600
# RFC 8461 3.3: senders "SHOULD impose a limit on the maximum size of the response body"
# (64 KiB in the RFC's example, and in every implementation we know of).
MAX_POLICY_SIZE: Final = 65536
MODES: Final = ("enforce", "testing", "none")

_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_EXT_VALUE: Final = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class StsRecordError(ValueError):
    """The TXT record set does not give one valid STSv1 record (the text says why)."""


class StsPolicyError(ValueError):
    """The policy file is not a valid STSv1 policy (the text says why)."""


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A valid ``v=STSv1; id=...`` record: `id` changes when the policy does."""

    id: str


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A valid policy: `mode` enforce, testing or none; `mx` patterns; `max_age` seconds."""

    mode: str
    mx: tuple[str, ...]
    max_age: int


def _parse_record(text: str) -> StsRecord:
    # sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]; sts-sep = *WSP ";" *WSP
    fields = [f.strip(" \t") for f in text.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # the optional trailing separator
    if not fields or fields[0] != "v=STSv1":
        raise StsRecordError(f'malformed record "{text}"')
    record_id = ""
    for field in fields[1:]:
        name, eq, value = field.partition("=")
        if not eq:
            raise StsRecordError(f'malformed field "{field}" in record "{text}"')
        if name == "id":
            if record_id:
                raise StsRecordError(f'more than one id in record "{text}"')
            if not _ID.fullmatch(value):
                raise StsRecordError(f'malformed id "{value}" in record "{text}"')
            record_id = value
        elif not (_EXT_NAME.fullmatch(name) and _EXT_VALUE.fullmatch(value)):
            raise StsRecordError(f'malformed field "{field}" in record "{text}"')
    if not record_id:
        raise StsRecordError(f'no id in record "{text}"')
    return StsRecord(record_id)


def select_record(texts: Iterable[str]) -> StsRecord | None:
    """RFC 8461 3.1: None when no record begins with ``v=STSv1``; StsRecordError when more
    than one does, or the one that does is malformed."""
    candidates = [t for t in texts if t.startswith("v=STSv1")]
    if not candidates:
        return None
    if len(candidates) > 1:
        raise StsRecordError(f"{len(candidates)} STSv1 records")
    return _parse_record(candidates[0])


def valid_mx_pattern(pattern: str) -> bool:
    """A host name, or ``*.`` and a host name of at least two labels (RFC 8461 3.2, 4.1)."""
    name = pattern.lower().removeprefix("*.")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not pattern.startswith("*.") or len(labels) >= 2


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: an exact match, or ``*.example.com`` for one label more
    (``mx.example.com``; not ``example.com``, not ``a.b.example.com``). Case-insensitive,
    trailing dots ignored; names in A-labels (the caller converts U-labels)."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*.") or len(pattern) <= 2:
        return False
    first, dot, rest = host.partition(".")
    return bool(first and dot and rest == pattern[2:])


def mx_permitted(patterns: Iterable[str], host: str) -> bool:
    return any(mx_matches(p, host) for p in patterns)


def _lines(body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise StsPolicyError("policy is not UTF-8 text") from None
    # RFC 8461 3.2: lines end with CRLF; "senders ... SHOULD accept" a bare LF too.
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_policy(body: bytes) -> StsPolicy:
    """The policy in `body` (see the module docstring); StsPolicyError names the problem.
    Unknown keys are ignored (RFC 8461 3.2); for a key given twice (other than ``mx``) the
    first value counts."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(_lines(body), 1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip():
            raise StsPolicyError(f'line {number}: malformed "{line[:80]}"')
        value = value.strip(" \t")
        if key == "mx":
            mx.append(value)
        else:
            values.setdefault(key, value)
    if "version" not in values:
        raise StsPolicyError("no version field")
    if values["version"] != "STSv1":
        raise StsPolicyError(f'unknown version "{values["version"]}"')
    mode = values.get("mode")
    if mode is None:
        raise StsPolicyError("no mode field")
    if mode not in MODES:
        raise StsPolicyError(f'unknown mode "{mode}"')
    age = values.get("max_age")
    if age is None:
        raise StsPolicyError("no max_age field")
    if not (age.isascii() and age.isdigit() and len(age) <= 10) or int(age) > MAX_AGE_LIMIT:
        raise StsPolicyError(f'bad max_age "{age}"')
    for pattern in mx:
        if not valid_mx_pattern(pattern):
            raise StsPolicyError(f'bad mx pattern "{pattern}"')
    if not mx and mode != "none":
        raise StsPolicyError(f"no mx field in {mode} mode")
    return StsPolicy(mode, tuple(p.lower() for p in mx), int(age))
