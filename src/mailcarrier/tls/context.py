"""Client `ssl.SSLContext` objects built from a `TlsPolicy` and the agent's settings.

`ContextFactory` turns the protocol list (``TLSv1.2``, ``!TLSv1``, Postfix 3.6's
``>=TLSv1.2``/``<=TLSv1.3``) into a version range, a cipher grade plus exclusions into an
OpenSSL cipher list (``tls_<grade>_cipherlist``), and loads the client identity
(``smtp_tls_cert_file``/``key_file``, ``eccert``/``eckey``, ``smtp_tls_chain_files``).
Contexts verify nothing during the handshake (verify.py judges the chain afterwards, as
Postfix does) and are cached per distinct setting. CA loading is here too, and the trust
anchors of ``smtp_tls_trust_anchor_file``/``tafile=``: PEM certificates and bare PEM public
keys ("-----BEGIN PUBLIC KEY-----"), as Postfix's tls_dane_load_trustfile() accepts.

`TlsSessionCache` keeps TLS sessions for resumption in process memory only. Postfix's
``smtp_tls_session_cache_database`` is a table shared by all smtp(8) processes through
tlsmgr(8), holding DER-serialised sessions. That cannot be done with Python's ssl module:
`ssl.SSLSession` has no serialisation (no i2d_SSL_SESSION/d2i_SSL_SESSION binding, and
pickling it raises TypeError), and asyncio's TLS transport accepts only an in-process
session object. So the parameter only switches caching on (any non-empty value, whatever
its type:name), sessions live as long as the agent process, and each is kept for
``smtp_tls_session_cache_timeout`` (at most Postfix's limit of 100 days, 0 disables
caching) or until the lifetime the server gave the session, whichever ends first.

cryptography is imported when certificates or keys are first loaded, not with this module:
it is slow to import, and a run without TLS verification never needs it.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcarrier.config.settings import AgentSettings
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.verify import TrustAnchors

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "MAX_SESSION_CACHE_TIMEOUT",
    "ContextFactory",
    "TlsSessionCache",
    "load_certificates",
    "load_trust_anchors",
    "protocol_range",
]

# Postfix refuses smtp_tls_session_cache_timeout values above 100 days (tls_mgr.h).
MAX_SESSION_CACHE_TIMEOUT: float = 100 * 86400

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)

_VERSIONS = ("sslv2", "sslv3", "tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3")
_SSL_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


def protocol_range(items: tuple[str, ...]) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """Postfix protocol list -> (minimum, maximum). ValueError names a bad item."""
    words = [w for item in items for w in re.split(r"[\s,:]+", item) if w]
    enabled = set(_VERSIONS)
    positives: set[str] = set()
    for word in words:
        low = word.lower()
        for op in (">=", "<=", "!"):
            if low.startswith(op):
                name = low[len(op) :]
                break
        else:
            op, name = "", low
        if name not in _VERSIONS:
            raise ValueError(f'invalid TLS protocol "{word}"')
        index = _VERSIONS.index(name)
        if op == ">=":
            enabled -= set(_VERSIONS[:index])
        elif op == "<=":
            enabled -= set(_VERSIONS[index + 1 :])
        elif op == "!":
            enabled.discard(name)
        else:
            positives.add(name)
    if positives:
        enabled &= positives
    usable = [v for v in _VERSIONS if v in enabled and v in _SSL_VERSIONS]
    if not usable:
        raise ValueError("no TLS protocol left enabled")
    low = _SSL_VERSIONS[usable[0]]
    # Naming TLSv1 as the floor means "whatever OpenSSL still allows" (and avoids the
    # deprecated constant); its security level may refuse TLSv1/1.1 anyway.
    return (
        ssl.TLSVersion.MINIMUM_SUPPORTED if low is ssl.TLSVersion.TLSv1 else low
    ), _SSL_VERSIONS[usable[-1]]


def load_certificates(paths: tuple[str, ...]) -> tuple[x509.Certificate, ...]:
    """PEM certificates from files and (CApath-style) directories; ValueError if unreadable."""
    from cryptography import x509

    out: list[x509.Certificate] = []
    for path in paths:
        files = sorted(Path(path).iterdir()) if os.path.isdir(path) else [Path(path)]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {file}: {exc.strerror}") from exc
            if b"-----BEGIN CERTIFICATE-----" in data:
                out.extend(x509.load_pem_x509_certificates(data))
    return tuple(out)


def load_trust_anchors(paths: tuple[str, ...]) -> TrustAnchors:
    """Trust anchors from PEM files: certificates and bare public keys. ValueError names a
    file that cannot be read, a PEM object that cannot be parsed, or a file with no anchor
    (Postfix then marks the policy invalid: the delivery defers)."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    certs: list[x509.Certificate] = []
    keys: list[PublicKeyTypes] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
        found = 0
        for block in _PEM_BLOCK.finditer(data):
            kind = block.group(1)
            try:
                if kind == b"CERTIFICATE":
                    certs.append(x509.load_pem_x509_certificate(block.group(0)))
                elif kind == b"PUBLIC KEY":
                    keys.append(load_pem_public_key(block.group(0)))
                else:
                    continue  # private keys, parameters, ...: not trust anchors
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise ValueError(f"{path}: bad PEM {kind.decode()}: {exc}") from exc
            found += 1
        if not found:
            raise ValueError(f"{path}: no trust-anchor certificate or public key found")
    return TrustAnchors(tuple(certs), tuple(keys))


class _ResumingContext(ssl.SSLContext):
    """An SSLContext that offers a cached session on the next wrap (asyncio has no
    ``session=`` argument for start_tls; it calls wrap_bio)."""

    next_session: ssl.SSLSession | None = None

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        if self.next_session is not None and kwargs.get("session") is None:
            kwargs["session"] = self.next_session
        self.next_session = None
        return super().wrap_bio(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class _ContextKey:
    protocols: tuple[str, ...]
    ciphers: str
    exclude: tuple[str, ...]
    session_key: str = ""


class ContextFactory:
    """Builds and caches client contexts for one transport's settings."""

    def __init__(self, agent: AgentSettings) -> None:
        self.agent = agent
        self._contexts: dict[_ContextKey, _ResumingContext] = {}
        self._anchors: dict[tuple[str, ...], tuple[x509.Certificate, ...]] = {}
        self._trust_anchors: dict[tuple[str, ...], TrustAnchors] = {}

    def context(self, policy: TlsPolicy, session_key: str = "") -> ssl.SSLContext:
        """ValueError (bad protocols, ciphers or key files) makes the TLS engine unavailable.

        With a `session_key` (session caching on) each server gets its own context, so a
        cached session is only ever offered to the server it came from.
        """
        key = _ContextKey(policy.protocols, policy.ciphers, policy.exclude, session_key)
        ctx = self._contexts.get(key)
        if ctx is None:
            if len(self._contexts) >= 256:
                self._contexts.clear()
            ctx = self._build(key)
            self._contexts[key] = ctx
        return ctx

    def _build(self, key: _ContextKey) -> _ResumingContext:
        ctx = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version, ctx.maximum_version = protocol_range(key.protocols)
        main = self.agent.settings.params
        grade = key.ciphers.lower() or "medium"
        grades = {
            "export": main.tls_export_cipherlist,
            "low": main.tls_low_cipherlist,
            "medium": main.tls_medium_cipherlist,
            "high": main.tls_high_cipherlist,
            "null": main.tls_null_cipherlist,
        }
        if grade not in grades:
            raise ValueError(f'invalid cipher grade "{key.ciphers}"')
        cipherlist = grades[grade]
        excluded = "".join(
            f":!{c}" for item in key.exclude for c in re.split(r"[\s,:]+", item) if c
        )
        try:
            ctx.set_ciphers(cipherlist + excluded)
        except ssl.SSLError as exc:
            raise ValueError(f'invalid cipher list "{cipherlist + excluded}"') from exc
        self._load_identity(ctx)
        return ctx

    def _load_identity(self, ctx: ssl.SSLContext) -> None:
        pairs = [
            (self.agent.params.tls_cert_file, self.agent.params.tls_key_file),
            (self.agent.params.tls_eccert_file, self.agent.params.tls_eckey_file),
        ]
        pairs += [(chain, chain) for chain in self.agent.params.tls_chain_files]
        for cert, key in pairs:
            if not cert:
                continue
            try:
                ctx.load_cert_chain(cert, key or cert)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load client certificate {cert}: {exc}") from exc

    def anchors(self, policy: TlsPolicy) -> tuple[x509.Certificate, ...]:
        """Trust anchors: the policy's tafile, else CAfile + CApath (+ system CAs when
        tls_append_default_CA = yes, or for MTA-STS when neither is set)."""
        if policy.tafile:
            paths = policy.tafile
        else:
            paths = tuple(
                p for p in (self.agent.params.tls_CAfile, self.agent.params.tls_CApath) if p
            )
            # MTA-STS (RFC 8461 4.2) trusts WebPKI: the system's CAs unless CAfile or
            # CApath names others.
            webpki = bool(policy.sts_mode) and not paths
            if self.agent.settings.params.tls_append_default_CA or webpki:
                system = ssl.get_default_verify_paths()
                paths += tuple(p for p in (system.cafile, system.capath) if p and os.path.exists(p))
        found = self._anchors.get(paths)
        if found is None:
            found = load_certificates(paths)
            self._anchors[paths] = found
        return found

    def trust_anchors(self, policy: TlsPolicy) -> TrustAnchors:
        """The policy's trust-anchor files (tafile= or smtp_tls_trust_anchor_file), with
        bare public keys; empty when none is configured. ValueError if unusable."""
        if not policy.tafile:
            return TrustAnchors()
        found = self._trust_anchors.get(policy.tafile)
        if found is None:
            found = load_trust_anchors(policy.tafile)
            self._trust_anchors[policy.tafile] = found
        return found


class TlsSessionCache:
    """In-process TLS session cache: key -> (session, expiry). See the module docstring
    for why it cannot persist across processes."""

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = min(timeout, MAX_SESSION_CACHE_TIMEOUT)
        self.clock = clock
        self.wallclock = wallclock
        self._sessions: dict[str, tuple[ssl.SSLSession, float]] = {}

    def offer(self, key: str, ctx: ssl.SSLContext) -> None:
        entry = self._sessions.get(key)
        if entry is None:
            return
        if entry[1] < self.clock():
            del self._sessions[key]
            return
        if isinstance(ctx, _ResumingContext):
            ctx.next_session = entry[0]

    def store(self, key: str, session: ssl.SSLSession | None) -> None:
        if session is None or self.timeout <= 0:
            return
        if len(self._sessions) > 1000:
            now = self.clock()
            self._sessions = {k: v for k, v in self._sessions.items() if v[1] >= now}
        lifetime = self.timeout
        # The server's own limit: SSL_SESSION_get_time() + SSL_SESSION_get_timeout()
        # (wall-clock seconds); a session past it would not resume anyway.
        server_end = float(session.time) + float(session.timeout)
        if session.timeout > 0:
            lifetime = min(lifetime, server_end - self.wallclock())
        if lifetime <= 0:
            self._sessions.pop(key, None)
            return
        self._sessions[key] = (session, self.clock() + lifetime)

    def __len__(self) -> int:
        return len(self._sessions)
