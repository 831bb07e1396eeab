"""Protocol ranges, cipher grades, client identity and the session cache (tls/context.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from mailcarrier.config import Settings
from mailcarrier.tls.context import (
    ContextFactory,
    TlsSessionCache,
    load_certificates,
    protocol_range,
)
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from tests.support.clock import FakeClock
from tests.support.settings import make_settings

V = ssl.TLSVersion


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((">=TLSv1.2",), (V.TLSv1_2, V.TLSv1_3)),
        (("!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1"), (V.TLSv1_2, V.TLSv1_3)),
        (("TLSv1.2",), (V.TLSv1_2, V.TLSv1_2)),
        ((">=TLSv1.2", "<=TLSv1.2"), (V.TLSv1_2, V.TLSv1_2)),
        (("TLSv1.2:TLSv1.3",), (V.TLSv1_2, V.TLSv1_3)),
        ((">=TLSv1",), (V.MINIMUM_SUPPORTED, V.TLSv1_3)),
    ],
)
def test_protocol_range(items: tuple[str, ...], expected: tuple[V, V]) -> None:
    assert protocol_range(items) == expected


@pytest.mark.parametrize("items", [("TLSv9",), ("!TLSv1", "!TLSv1.1", "!TLSv1.2", "!TLSv1.3")])
def test_protocol_range_errors(items: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        protocol_range(items)


def _factory(**params: str) -> ContextFactory:
    return ContextFactory(make_settings(**params).for_transport("smtp"))


def test_context_settings_and_cache(tmp_path: Path) -> None:
    ca = trustme.CA()
    client = ca.issue_cert("client.example")
    pem = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(pem))
    factory = _factory(smtp_tls_chain_files=str(pem))
    policy = TlsPolicy(
        SecurityLevel.ENCRYPT, protocols=(">=TLSv1.2",), ciphers="high", exclude=("aNULL",)
    )
    ctx = factory.context(policy)
    assert ctx.minimum_version is V.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
    assert factory.context(policy) is ctx
    assert factory.context(policy, "server-a") is not ctx


def test_context_errors() -> None:
    with pytest.raises(ValueError):
        _factory().context(TlsPolicy(SecurityLevel.MAY, ciphers="shiny"))
    with pytest.raises(ValueError):
        _factory(smtp_tls_cert_file="/nonexistent.pem").context(TlsPolicy(SecurityLevel.MAY))


def test_anchors_from_cafile_and_capath(tmp_path: Path) -> None:
    ca1, ca2 = trustme.CA(), trustme.CA()
    ca1.cert_pem.write_to_path(str(tmp_path / "ca1.pem"))
    (tmp_path / "dir").mkdir()
    ca2.cert_pem.write_to_path(str(tmp_path / "dir" / "ca2.pem"))
    factory = _factory(
        smtp_tls_CAfile=str(tmp_path / "ca1.pem"), smtp_tls_CApath=str(tmp_path / "dir")
    )
    assert len(factory.anchors(TlsPolicy(SecurityLevel.VERIFY))) == 2
    assert (
        len(factory.anchors(TlsPolicy(SecurityLevel.VERIFY, tafile=(str(tmp_path / "ca1.pem"),))))
        == 1
    )
    with pytest.raises(ValueError):
        load_certificates((str(tmp_path / "missing.pem"),))


def test_session_cache_expires() -> None:
    cache = TlsSessionCache(10, clock=FakeClock(0.0))
    cache.store("k", None)
    assert len(cache) == 0


class _Session:
    """Stands in for ssl.SSLSession: `time` and `timeout` as SSL_SESSION_get_time()/
    get_timeout() report them (wall-clock seconds)."""

    def __init__(self, time: float, timeout: float) -> None:
        self.time = time
        self.timeout = timeout


def _cache(timeout: float, clock: FakeClock) -> TlsSessionCache:
    return TlsSessionCache(timeout, clock=clock, wallclock=lambda: 1000 + clock.now)


def _offered(cache: TlsSessionCache, key: str) -> object:
    ctx = ContextFactory(Settings.defaults().for_transport("smtp")).context(
        TlsPolicy(SecurityLevel.MAY), key
    )
    cache.offer(key, ctx)
    return getattr(ctx, "next_session", None)


def test_session_cache_honours_its_timeout() -> None:
    clock = FakeClock(0.0)
    cache = _cache(60, clock)
    session = _Session(time=1000, timeout=7200)
    cache.store("k", session)  # type: ignore[arg-type]
    clock.now = 59
    assert _offered(cache, "k") is session
    clock.now = 61
    assert _offered(cache, "k") is None
    assert len(cache) == 0  # expired entries are dropped when met


def test_session_cache_honours_the_server_lifetime() -> None:
    clock = FakeClock(0.0)
    cache = _cache(3600, clock)
    cache.store("k", _Session(time=1000, timeout=30))  # type: ignore[arg-type]
    clock.now = 29
    assert _offered(cache, "k") is not None
    clock.now = 31
    assert _offered(cache, "k") is None
    cache.store("old", _Session(time=0, timeout=30))  # type: ignore[arg-type]
    assert len(cache) == 0  # already past its server lifetime: not kept


def test_session_cache_timeout_limits() -> None:
    assert TlsSessionCache(10**9).timeout == 100 * 86400  # Postfix's upper limit
    disabled = TlsSessionCache(0)
    disabled.store("k", _Session(time=0, timeout=0))  # type: ignore[arg-type]
    assert len(disabled) == 0
