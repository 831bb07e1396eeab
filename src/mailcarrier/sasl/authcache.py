"""The SASL authentication failure cache: smtp_sasl_auth_cache_name, smtp_sasl_auth_cache_time.

Postfix's smtp_sasl_auth_cache.c: after a 535 reply, remember (server host, username) ->
(time, hashed password, DSN, reply text); while an entry is younger than
`smtp_sasl_auth_cache_time` and the password is unchanged, do not try AUTH again: defer (or
bounce) with the remembered reply, logged as "SASL [CACHED] authentication failed". An entry
whose password changed, that expired or that cannot be parsed is deleted when found.

Storage: with a cache name (``btree:/path`` as in Postfix, also ``hash:``, ``lmdb:``, an
optional ``proxy:`` prefix, or a bare absolute path) an sqlite3 database at the file Postfix
would use (``/path.db``; ``/path.lmdb`` for lmdb), created mode 0600, every change committed
with synchronous=FULL so a crash never leaves a torn entry. With an empty name the cache lives
in memory for the life of the process. Passwords are stored as salted SHA-256 digests (Postfix
stores unsalted SHA-1). The clock is injected.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.errors import ConfigError

__all__ = ["AuthFailureCache", "CachedFailure", "cache_path"]

_SUFFIX: Final = {"btree": ".db", "hash": ".db", "lmdb": ".lmdb"}
_PARAM: Final = "smtp_sasl_auth_cache_name"


@dataclass(frozen=True, slots=True)
class CachedFailure:
    dsn: str
    text: str  # the server's complete 535 reply
    stamp: float


@dataclass(frozen=True, slots=True)
class _Entry:
    stamp: float
    salt: bytes
    digest: bytes
    dsn: str
    text: str


def cache_path(name: str, parameter: str = _PARAM) -> Path | None:
    """The file behind a cache name; None for an empty name (memory only)."""
    name = name.strip()
    if not name:
        return None
    if any(c in name for c in ", \t"):
        raise ConfigError(
            f'{parameter}: SASL authentication cache name "{name}" contains multiple values',
            parameter=parameter,
            value=name,
        )
    spec = name.removeprefix("proxy:")
    kind, colon, rest = spec.partition(":")
    if colon and not kind.startswith("/"):
        if kind not in _SUFFIX:
            raise ConfigError(
                f'{parameter}: unsupported table type "{kind}" in "{name}" '
                f"(want btree:, hash:, lmdb: or an absolute path)",
                parameter=parameter,
                value=name,
            )
        path, suffix = rest, _SUFFIX[kind]
    else:
        path, suffix = spec, ""
    if not path.startswith("/"):
        raise ConfigError(
            f'{parameter}: "{name}" must name an absolute path', parameter=parameter, value=name
        )
    return Path(path + suffix)


def _digest(salt: bytes, password: str) -> bytes:
    return hashlib.sha256(salt + password.encode("utf-8", "surrogateescape")).digest()


class AuthFailureCache:
    """535 replies remembered per (host, username, password digest)."""

    def __init__(
        self, ttl: float, path: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl = ttl
        self.path = path
        self.clock = clock
        self._memory: dict[str, _Entry] = {}
        self._db: sqlite3.Connection | None = None

    @classmethod
    def open(
        cls, name: str, ttl: float, *, clock: Callable[[], float] = time.time
    ) -> AuthFailureCache:
        return cls(ttl, cache_path(name), clock=clock)

    # --- storage ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            assert self.path is not None
            try:
                # Password digests live here: create the file private before sqlite opens it.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                os.close(fd)
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                db.execute("PRAGMA synchronous=FULL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS auth_failure (key TEXT PRIMARY KEY, "
                    "stamp REAL, salt BLOB, digest BLOB, dsn TEXT, text TEXT)"
                )
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(
                    f"{_PARAM}: cannot open SASL authentication cache {self.path}: {exc}",
                    parameter=_PARAM,
                    value=str(self.path),
                ) from exc
            self._db = db
        return self._db

    def _get(self, key: str) -> _Entry | None:
        if self.path is None:
            return self._memory.get(key)
        row = (
            self._conn()
            .execute(
                "SELECT stamp, salt, digest, dsn, text FROM auth_failure WHERE key = ?", (key,)
            )
            .fetchone()
        )
        if row is None:
            return None
        stamp, salt, digest, dsn, text = row
        if not (
            isinstance(stamp, (int, float))
            and isinstance(salt, bytes)
            and isinstance(digest, bytes)
            and isinstance(dsn, str)
            and isinstance(text, str)
        ):
            return _Entry(0.0, b"", b"", "", "")  # malformed: treated as stale and removed
        return _Entry(float(stamp), salt, digest, dsn, text)

    def _put(self, key: str, entry: _Entry) -> None:
        if self.path is None:
            self._memory[key] = entry
            return
        self._conn().execute(
            "INSERT OR REPLACE INTO auth_failure VALUES (?, ?, ?, ?, ?, ?)",
            (key, entry.stamp, entry.salt, entry.digest, entry.dsn, entry.text),
        )

    def _delete(self, key: str) -> None:
        if self.path is None:
            self._memory.pop(key, None)
            return
        self._conn().execute("DELETE FROM auth_failure WHERE key = ?", (key,))

    # --- public -----------------------------------------------------------------------
    @staticmethod
    def _key(host: str, username: str) -> str:
        return f"{host.lower()};{username}"

    def find(self, host: str, username: str, password: str) -> CachedFailure | None:
        """The remembered failure for this host, user and (unchanged) password, if fresh."""
        key = self._key(host, username)
        entry = self._get(key)
        if entry is None:
            return None
        fresh = bool(entry.salt) and entry.stamp + self.ttl >= self.clock()
        if (
            fresh
            and entry.dsn[:1] in ("4", "5")
            and hmac.compare_digest(entry.digest, _digest(entry.salt, password))
        ):
            return CachedFailure(entry.dsn, entry.text, entry.stamp)
        # Expired, password changed, or malformed: forget it (as Postfix does).
        self._delete(key)
        return None

    def store(self, host: str, username: str, password: str, dsn: str, text: str) -> None:
        salt = secrets.token_bytes(16)
        entry = _Entry(self.clock(), salt, _digest(salt, password), dsn, text)
        self._put(self._key(host, username), entry)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
