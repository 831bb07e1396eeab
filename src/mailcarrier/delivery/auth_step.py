"""The AUTH step of a session, as Postfix's smtp_sasl_helo_login() and smtp_sasl_authenticate().

After EHLO (and STARTTLS), with `smtp_sasl_auth_enable` on and AUTH announced: look the
credentials up (sasl/passwords.py; none found: go on unauthenticated, "like strangers"),
choose a mechanism with the security options that fit the connection (sasl/policy.py),
consult the 535 failure cache, run the exchange (`Session.authenticate`) and say what a
failure means. The result is None (go on with the mail transaction) or a `Verdict` with
Postfix's wording; it is 4.x.x unless the server gave a 5xx and `smtp_sasl_auth_soft_bounce`
is off, and the agent treats it as any session failure: a soft one moves the recipients to
the next server, a hard one bounces them (Postfix smtp_sess_fail()).

Credentials are never sent when the TLS policy demands encryption and the session is not
encrypted, whatever the security options say. `session_identity` gives the SASL part of a
connection-reuse key. Nothing secret is logged.

The password lookup runs on the event loop without blocking it (`Maps` async search:
pgsql:, mysql:, ... tables wait on their server in the table loop). `prefetch_credentials`
does it before connecting and keeps the answer in the request's `CredentialMemo`, so the
synchronous callers (the reuse key) and `authenticate` find it there. A table that cannot
answer (server down, timeout: `TableLookupError`) is Postfix's "smtp_sasl_password_maps
lookup error" and a 4.3.0 deferral, never "no credentials".
"""

from __future__ import annotations

import contextlib
import ssl
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.servers import destinations
from mailcarrier.delivery.trouble import Verdict, soften
from mailcarrier.errors import ConfigError, TransportError, UsageError
from mailcarrier.log import LogSink
from mailcarrier.protocol.reply import Reply
from mailcarrier.routing.nexthop import NextHopKind, parse_nexthop
from mailcarrier.sasl.authcache import AuthFailureCache
from mailcarrier.sasl.mechanism import ChannelBinding, Credentials, SaslError
from mailcarrier.sasl.passwords import (
    PasswordMatch,
    lookup_credentials,
    lookup_credentials_async,
    reuse_identity,
)
from mailcarrier.sasl.policy import (
    Choice,
    MechanismFilter,
    NoMechanism,
    SecurityOptions,
    choose_mechanism,
    make_mechanism,
    options_parameter,
)
from mailcarrier.sasl.scram import server_end_point
from mailcarrier.status import DeliveryStatus
from mailcarrier.tables.base import TableError
from mailcarrier.tables.maps import Maps
from mailcarrier.transport.connection import Peer

if TYPE_CHECKING:
    from mailcarrier.fleet.shared import SharedEntries
from mailcarrier.transport.session import Session

# The name of the fleet's shared entries of the 535 failure cache (fleet/shared.py).
SHARED_CACHE: Final = "sasl-auth-failures"  # (fleet_shared_caches)

__all__ = [
    "SHARED_CACHE",
    "CredentialMemo",
    "auth_cache_for",
    "authenticate",
    "current_destination",
    "prefetch_credentials",
    "session_identity",
]

# The credentials found for (server host name, destination) during one request.
CredentialMemo = dict[tuple[str, str], PasswordMatch | None]

# TLS levels under which a plaintext session must never carry credentials.
_MANDATORY_TLS: Final = frozenset({"encrypt", "dane-only", "fingerprint", "verify", "secure"})
# Postfix's client accepts only "cyrus"; mailcarrier's built-in client answers to that name.
_SASL_TYPES: Final = ("cyrus",)

# One failure cache per configuration (its memory, or its open database). Settings objects are
# slotted (no weak references): keep the most recent few, holding the Settings so that its id
# cannot be reused by another while it is a key.
_MAX_CACHES: Final = 16
_CACHES: OrderedDict[int, tuple[Settings, AuthFailureCache]] = OrderedDict()


def auth_cache_for(settings: Settings, agent: AgentSettings) -> AuthFailureCache:
    """The 535 failure cache of this configuration (opened on first use)."""
    key = id(settings)
    held = _CACHES.get(key)
    if held is not None and held[0] is settings:
        _CACHES.move_to_end(key)
        return held[1]
    cache = AuthFailureCache.open(
        agent.params.sasl_auth_cache_name, agent.params.sasl_auth_cache_time, proxy=settings.proxy
    )
    _CACHES[key] = (settings, cache)
    while len(_CACHES) > _MAX_CACHES:
        _CACHES.popitem(last=False)[1][1].close()
    return cache


def current_destination(nexthop: str, agent: AgentSettings, peer: Peer) -> str:
    """The destination (of the request's list and the fallback relays) `peer` came from.

    A ``[host]`` or non-MX destination is recognised by its host and port; an MX domain by
    its port when it is the only candidate. Ambiguous: "" (no destination-key lookup, so the
    credentials of one relay are never sent to another).
    """
    host_matches: list[str] = []
    domain_matches: list[str] = []
    for dest in destinations(nexthop, agent):
        try:
            hop = parse_nexthop(dest.text, transport=agent.transport)
        except UsageError:
            continue
        if hop.kind is NextHopKind.UNIX:
            if hop.host == peer.address:
                host_matches.append(dest.text)
            continue
        if hop.port and peer.port and hop.port != peer.port:
            continue
        if hop.kind is NextHopKind.DOMAIN and not hop.bracketed:
            domain_matches.append(dest.text)
        if hop.host.lower() in (peer.hostname.lower(), peer.address.lower()):
            host_matches.append(dest.text)
    if host_matches:
        return host_matches[0]
    return domain_matches[0] if len(domain_matches) == 1 else ""


def _maps(agent: AgentSettings) -> Maps:
    maps = agent.open_maps("sasl_password_maps")
    if not maps:
        name = agent.name("sasl_password_maps")
        raise ConfigError(
            f"specify a password table via the `{name}' configuration parameter", parameter=name
        )
    return maps


def _search(
    settings: Settings,
    agent: AgentSettings,
    request: DeliveryRequest,
    peer: Peer,
    destination: str | None,
) -> dict[str, object]:
    """The keyword arguments of the password search for this request and server."""
    return {
        "host": peer.hostname,
        "destination": (
            destination
            if destination is not None
            else current_destination(request.nexthop, agent, peer)
        ),
        "sender": request.sender,
        "sender_dependent": agent.params.sender_dependent_authentication,
        "lmtp": agent.is_lmtp,
        "recipient_delimiter": settings.params.recipient_delimiter,
        "send_authzid": settings.params.send_cyrus_sasl_authzid,
    }


def _memo_key(peer: Peer, destination: str | None) -> tuple[str, str]:
    return (peer.hostname.lower(), destination or "")


def _lookup(
    settings: Settings,
    agent: AgentSettings,
    request: DeliveryRequest,
    peer: Peer,
    destination: str | None = None,
    memo: CredentialMemo | None = None,
) -> PasswordMatch | None:
    key = _memo_key(peer, destination)
    if memo is not None and key in memo:
        return memo[key]
    found = lookup_credentials(
        _maps(agent),
        **_search(settings, agent, request, peer, destination),  # type: ignore[arg-type]
    )
    if memo is not None:
        memo[key] = found
    return found


async def _lookup_async(
    settings: Settings,
    agent: AgentSettings,
    request: DeliveryRequest,
    peer: Peer,
    destination: str | None,
    memo: CredentialMemo | None,
    log: LogSink,
) -> PasswordMatch | None:
    key = _memo_key(peer, destination)
    if memo is not None and key in memo:
        return memo[key]
    maps = _maps(agent)
    try:
        found = await lookup_credentials_async(
            maps,
            **_search(settings, agent, request, peer, destination),  # type: ignore[arg-type]
        )
    finally:
        for warning in maps.take_warnings():
            log.warning(agent.transport, warning)
    if memo is not None:
        memo[key] = found
    return found


async def prefetch_credentials(
    settings: Settings,
    agent: AgentSettings,
    request: DeliveryRequest,
    peer: Peer,
    destination: str | None,
    memo: CredentialMemo,
    *,
    log: LogSink,
) -> None:
    """Look the credentials for `peer` up now, on the loop, into `memo` (a failure is left
    for `authenticate` to report)."""
    if not agent.params.sasl_auth_enable:
        return
    with contextlib.suppress(ConfigError):
        await _lookup_async(settings, agent, request, peer, destination, memo, log)


def session_identity(
    settings: Settings,
    agent: AgentSettings,
    request: DeliveryRequest,
    peer: Peer,
    destination: str | None = None,
    memo: CredentialMemo | None = None,
) -> str:
    """The SASL part of a connection-reuse key for this request and server (a table that
    cannot answer gives a key that matches no other session)."""
    enabled = agent.params.sasl_auth_enable
    try:
        match = _lookup(settings, agent, request, peer, destination, memo) if enabled else None
    except TableError:
        return f"sasl=unavailable:{id(request)}"
    return reuse_identity(
        match.credentials if match else None,
        sender=request.sender,
        sender_dependent=enabled and agent.params.sender_dependent_authentication,
    )


def _check_type(agent: AgentSettings) -> None:
    value = agent.params.sasl_type.strip().lower()
    if value not in _SASL_TYPES:
        name = agent.name("sasl_type")
        raise ConfigError(
            f'{name}: unsupported SASL client implementation "{value}": mailcarrier has one '
            'built-in SASL client, named "cyrus" (Dovecot SASL is server-side only)',
            parameter=name,
            value=value,
        )


def _tls_required(agent: AgentSettings) -> bool:
    level = agent.params.tls_security_level.strip().lower()
    if level:
        return level in _MANDATORY_TLS
    return agent.params.enforce_tls


def _tls_state(session: Session) -> tuple[bool, bool, list[ChannelBinding]]:
    """(encrypted, peer verified, channel bindings available)."""
    conn = session.conn
    if not conn.tls:
        return False, False, []
    ssl_object = conn.writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, (ssl.SSLObject, ssl.SSLSocket)):
        return True, False, []
    verified = session.tls_verified  # set by the TLS step (tls_step.py) from its own check
    bindings: list[ChannelBinding] = []
    # RFC 9266 3: tls-unique is not defined for TLS 1.3 (OpenSSL still returns bytes for it).
    legacy = ssl_object.version() in ("TLSv1", "TLSv1.1", "TLSv1.2")
    unique = ssl_object.get_channel_binding("tls-unique") if legacy else None
    if unique:
        bindings.append(ChannelBinding("tls-unique", unique))
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        with contextlib.suppress(SaslError):
            bindings.append(server_end_point(der))
    return True, verified, bindings


def _fail(text: str, dsn: str = "4.7.0") -> Verdict:
    status = DeliveryStatus.BOUNCED if dsn.startswith("5") else DeliveryStatus.DEFERRED
    return Verdict(status, dsn, text)


async def authenticate(
    settings: Settings,
    agent: AgentSettings,
    session: Session,
    peer: Peer,
    request: DeliveryRequest,
    *,
    log: LogSink,
    soft_bounce: bool = False,
    destination: str | None = None,
    memo: CredentialMemo | None = None,
    shared: SharedEntries | None = None,
) -> Verdict | None:
    """Authenticate if configured and possible. None: go on; a Verdict: the session failed.

    `destination` is the next-hop destination the server was found for (the agent knows
    it); without it, it is inferred from the request's next hop. `shared`: the fleet's
    copy of the 535 failure cache (fleet mode)."""
    if not agent.params.sasl_auth_enable:
        return None
    _check_type(agent)
    caps = session.proto.capabilities
    if not caps.has("AUTH"):
        return None  # Postfix authenticates only to servers that announce AUTH
    process = agent.transport
    try:
        match = await _lookup_async(settings, agent, request, peer, destination, memo, log)
    except TableError as exc:
        log.warning(process, f"{request.queue_id}: {agent.name('sasl_password_maps')} lookup error")
        return _fail(f"local data error while talking to {peer.namaddr}: {exc}", "4.3.0")
    if match is None:
        return None  # no credentials for this server: talk like strangers
    verdict = await _login(settings, agent, session, peer, match, log=log, shared=shared)
    if verdict is not None and soft_bounce:
        verdict = soften(verdict)
    return verdict


async def _login(
    settings: Settings,
    agent: AgentSettings,
    session: Session,
    peer: Peer,
    match: PasswordMatch,
    *,
    log: LogSink,
    shared: SharedEntries | None = None,
) -> Verdict | None:
    """Choose a mechanism, consult the failure cache, run the exchange, judge its reply."""
    creds = match.credentials
    tls, verified, bindings = _tls_state(session)
    if _tls_required(agent) and not tls:
        return _fail(
            f"SASL authentication failed: TLS is required for server {peer.namaddr}, "
            "but the session is not encrypted; credentials not sent"
        )
    options = _security_options(agent, tls, verified)
    choice = _choose(agent, session, peer, options, tls, bindings, log)
    if isinstance(choice, Verdict):
        return choice
    cache = auth_cache_for(settings, agent)
    try:
        cached = await cache.find_async(peer.hostname, creds.username, creds.password, shared)
    except TableError as exc:
        log.warning(agent.transport, str(exc))
        log.warning(
            agent.transport,
            f"SASL auth failure map {cache.name}: lookup failed for "
            f"{peer.hostname.lower()};{creds.username}",
        )
        cached = None
    finally:
        for warning in cache.take_warnings():
            log.warning(agent.transport, warning)
    if cached is not None:
        return _fail(
            f"SASL [CACHED] authentication failed; server {peer.hostname} said: {cached.text}",
            _auth_dsn(agent, cached.dsn),
        )
    try:
        mechanism = make_mechanism(choice, creds)
    except SaslError as exc:
        return _fail(
            f"SASL authentication failed; cannot authenticate to server {peer.namaddr}: {exc}"
        )
    try:
        outcome = await session.authenticate(mechanism)
    except TransportError as exc:
        session.broken = True
        return Verdict(DeliveryStatus.DEFERRED, "4.4.2", exc.reason)
    if outcome.problem:
        if outcome.problem == "authentication protocol loop":
            return _fail(
                "SASL authentication failed; authentication protocol loop with server "
                f"{peer.namaddr}",
                "4.3.0",
            )
        return _fail(
            f"SASL authentication failed; cannot authenticate to server {peer.namaddr}: "
            f"{outcome.problem}"
        )
    reply = outcome.reply
    assert reply is not None
    if reply.code // 100 != 2:
        await _remember(agent, peer, reply, cache, creds, log, shared)
        return _refused(agent, peer, reply)
    if options.mutual_auth and not mechanism.server_verified:
        return _fail(
            f"SASL authentication failed; cannot authenticate to server {peer.namaddr}: "
            "the server did not prove its identity (mutual_auth)"
        )
    return None


async def _remember(
    agent: AgentSettings,
    peer: Peer,
    reply: Reply,
    cache: AuthFailureCache,
    creds: Credentials,
    log: LogSink,
    shared: SharedEntries | None = None,
) -> None:
    """The server refused the credentials: remember a 535 (smtp_sasl_auth_cache_name),
    and tell the fleet (`shared`).
    Postfix ignores a failed update; it is logged here, as the table's own error."""
    if reply.code != 535:
        return
    try:
        await cache.store_async(
            peer.hostname, creds.username, creds.password, reply.dsn, reply.text, shared
        )
    except TableError as exc:
        log.warning(agent.transport, f"SASL auth failure map {cache.name}: update failed: {exc}")
    finally:
        for warning in cache.take_warnings():
            log.warning(agent.transport, warning)


def _refused(agent: AgentSettings, peer: Peer, reply: Reply) -> Verdict:
    """The verdict on refused credentials."""
    dsn = reply.dsn if reply.code // 100 in (4, 5) else "4.7.0"
    text = f"SASL authentication failed; server {peer.namaddr} said: {reply.text}"
    return _fail(text, _auth_dsn(agent, dsn))


def _auth_dsn(agent: AgentSettings, dsn: str) -> str:
    """smtp_sasl_auth_soft_bounce: an authentication failure defers rather than bounces."""
    if agent.params.sasl_auth_soft_bounce and dsn.startswith("5"):
        return "4" + dsn[1:]
    return dsn


def _security_options(agent: AgentSettings, tls: bool, verified: bool) -> SecurityOptions:
    """The SASL security options for this connection's protection (sasl/policy.py)."""
    suffix = options_parameter(tls, verified)
    p = agent.params
    chosen = {
        "sasl_security_options": p.sasl_security_options,
        "sasl_tls_security_options": p.sasl_tls_security_options,
        "sasl_tls_verified_security_options": p.sasl_tls_verified_security_options,
    }[suffix]
    return SecurityOptions.parse(chosen, agent.name(suffix))


def _choose(
    agent: AgentSettings,
    session: Session,
    peer: Peer,
    options: SecurityOptions,
    tls: bool,
    bindings: list[ChannelBinding],
    log: LogSink,
) -> Choice | Verdict:
    """The mechanism to use, or the verdict when the server offers none that may be."""
    p = agent.params
    mech_filter = MechanismFilter(p.sasl_mechanism_filter, agent.name("sasl_mechanism_filter"))
    offered = session.proto.capabilities.auth_mechanisms
    certificate = bool(p.tls_cert_file or p.tls_chain_files)
    choice = choose_mechanism(
        offered,
        mechanism_filter=mech_filter,
        options=options,
        bindings=bindings,
        client_certificate=tls and certificate,
    )
    if not isinstance(choice, NoMechanism):
        return choice
    if choice.compatible:
        return _fail(
            f"SASL authentication failed; cannot authenticate to server {peer.namaddr}: "
            f"{choice.detail}"
        )
    words = " ".join(offered)
    log.warning(
        agent.transport,
        f"{peer.relay} offered no supported AUTH mechanisms: '{words}'"
        if words
        else f"{peer.relay} offered null AUTH mechanism list",
    )
    return _fail(
        f"SASL authentication failed: server {peer.namaddr} offered no compatible "
        "authentication mechanisms for this type of connection security"
    )
