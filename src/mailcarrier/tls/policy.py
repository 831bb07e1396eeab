"""Which TLS policy applies to a next-hop destination, as Postfix's smtp_tls_policy.c decides.

`resolve_policy()` is pure: from the agent's settings, the destination as the request names
it (``example.com``, ``[mx.example.com]:587``) and the server's host name it returns a
`TlsPolicy`. Sources, most specific first: ``smtp_tls_policy_maps`` (exact next hop, then
parent domains as ``.example.com``), else the obsolete ``smtp_tls_per_site`` (next hop, then
server host name; NONE, MAY, MUST_NOPEERMATCH, MUST), else ``smtp_tls_security_level``, and
when that is empty the obsolete ``smtp_use_tls``/``smtp_enforce_tls``/
``smtp_tls_enforce_peername``. An unusable table entry gives a policy with `error` set:
the client then defers ("client TLS configuration problem"), never sends in plaintext.
A table entry may be the answer of a Postfix 3.10+ MTA-STS policy plugin (``policy_type=sts
policy_domain=... mx_host_pattern=... policy_failure=...``): checked as Postfix checks it,
and with ``smtp_tls_enforce_sts_mx_patterns`` its patterns restrict the MX hosts and the
certificate is matched against the MX host name. Our own MTA-STS is delivery/sts_step.py's.

`resolve_policy_async()` is the same decision with the tables asked on the event loop
without blocking it (pgsql:, mysql:, ... wait on their server in the table loop). A table
that cannot answer now (`TableLookupError`) is Postfix's "policy table lookup error" (or,
for smtp_tls_per_site, "Temporary lookup error"): a policy with `error` set, so the
delivery is deferred with 4.7.5 or 4.3.0, never made in plaintext or with a weaker policy.
`warnings` collects what the lookups logged, for the caller to log. What depends only on
the configuration (the tables opened, the policy without a table entry, each table answer
parsed) is found once per Settings object and transport (`_Tables`; a reload makes new
settings); the tables themselves are asked on every call.

`resolve_not_required()` is the policy of a message with "TLS-Required: No" (RFC 8689 4.3,
Postfix's tls_required_enable): no table is asked, and the global level is capped at ``may``
(``encrypt`` in wrapper mode, which never goes plaintext).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from typing import Final

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.errors import ConfigError
from mailcarrier.tables.base import TableLookupError
from mailcarrier.tables.maps import Maps, Match
from mailcarrier.tables.search import domain_keys
from mailcarrier.tls.levels import SecurityLevel, parse_level

__all__ = [
    "POLICY_FAILURES",
    "POLICY_TYPES",
    "TlsPolicy",
    "level_defaults",
    "nexthop_domain",
    "parse_policy_entry",
    "resolve_not_required",
    "resolve_policy",
    "resolve_policy_async",
    "untabled_policy",
]

_ATTRIBUTES = frozenset(
    {"match", "protocols", "ciphers", "exclude", "tafile", "servername", "connection_reuse"}
)
# What a Postfix 3.10+ MTA-STS policy plugin adds to its answer (smtp_tls_policy.c): one
# instance each, except policy_string and mx_host_pattern.
_EXTERNAL = frozenset(
    {
        "policy_type",
        "policy_domain",
        "policy_string",
        "mx_host_pattern",
        "policy_failure",
        "policy_ttl",
    }
)
_EXTERNAL_SINGLE = frozenset({"policy_type", "policy_domain", "policy_failure", "policy_ttl"})
# RFC 8460 names, as Postfix's tlsrpt_wrapper.c validates them.
POLICY_TYPES = frozenset({"sts", "no-policy-found"})
POLICY_FAILURES = frozenset(
    {"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid", "validation-failure"}
)
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?"
)


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """The TLS rules for one destination. `matches` holds match names (verify, secure),
    fingerprints (fingerprint) or nothing; `source` says where the level came from."""

    level: SecurityLevel
    matches: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    ciphers: str = "medium"
    exclude: tuple[str, ...] = ()
    tafile: tuple[str, ...] = ()
    servername: str = ""
    connection_reuse: bool = False
    source: str = "smtp_tls_security_level"
    error: str = ""
    dsn: str = "4.7.5"  # of the deferral when `error` is set
    # MTA-STS (RFC 8461): "sts" when the policy came from one (native, or the answer of a
    # Postfix STS policy plugin); its domain; the MX host patterns that restrict which MX
    # hosts may be used (empty: any); the plugin's policy_failure (the certificate check
    # then fails, as in Postfix); `sts_mode` "enforce" or "testing" for our own MTA-STS.
    policy_type: str = ""
    policy_domain: str = ""
    mx_patterns: tuple[str, ...] = ()
    policy_failure: str = ""
    sts_mode: str = ""
    # This server's MX host name was authenticated by an MTA-STS policy in enforce mode (it
    # matches the policy's mx patterns): RFC 8689 (REQUIRETLS) accepts such an MX as one
    # that "came from DNSSEC or MTA-STS" (tls/requiretls.py's mx_authenticated() reads it
    # beside the MX's DNSSEC status). Set per server by delivery/sts_step.py.
    mx_authenticated_by_sts: bool = field(default=False, repr=False)
    # Not part of the policy (reuse keys print it): how it was found.
    warnings: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # Made once (policies are frozen, and cached per configuration): its part of a
    # connection-reuse label, and whether that label must also name the server and next
    # hop (the certificate was checked by name or TLSA: verify, secure, dane).
    reuse_text: str = field(init=False, repr=False, compare=False)
    pins_peer: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plaintext = self.level is SecurityLevel.NONE and not self.error
        text = "tls=none" if plaintext else f"tls={self!r}"
        object.__setattr__(self, "reuse_text", text)
        object.__setattr__(self, "pins_peer", self.level.must_trust or self.level.is_dane)

    @property
    def feature_name(self) -> str:
        """The name of the policy in the tls= log field: the level, or "sts" when our own
        MTA-STS policy in enforce mode applies."""
        return "sts" if self.sts_mode == "enforce" else self.level.value


def nexthop_domain(destination: str) -> str:
    """``[mx.example.com]:587`` -> ``mx.example.com``; ``example.com:25`` -> ``example.com``."""
    text = destination.strip()
    for prefix in ("inet:", "unix:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
        return text.removeprefix("ipv6:").removeprefix("IPv6:").lower()
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".").lower()


def _global_level(agent: AgentSettings) -> SecurityLevel:
    text = agent.params.tls_security_level.strip()
    if text:
        return parse_level(text) or SecurityLevel.NONE
    # Postfix's backwards-compatible mapping of the pre-2.3 switches.
    if agent.params.enforce_tls:
        return SecurityLevel.VERIFY if agent.params.tls_enforce_peername else SecurityLevel.ENCRYPT
    return SecurityLevel.MAY if agent.params.use_tls else SecurityLevel.NONE


def _split(value: str, separators: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(f"[{re.escape(separators)}\\s]+", value) if item)


def parse_policy_entry(value: str) -> tuple[SecurityLevel | None, dict[str, list[str]], str]:
    """``verify match=hostname:nexthop protocols=>=TLSv1.2`` -> level, attributes, error."""
    words = value.split()
    if not words:
        return None, {}, "empty policy"
    level = parse_level(words[0])
    if level is None:
        return None, {}, f'invalid TLS security level "{words[0]}"'
    attrs: dict[str, list[str]] = {}
    for word in words[1:]:
        name, eq, val = word.partition("=")
        name = name.lower()
        if not eq or name not in _ATTRIBUTES | _EXTERNAL:
            return None, {}, f'invalid attribute "{word}"'
        if name in _EXTERNAL_SINGLE and name in attrs:
            return None, {}, f'attribute "{name}" is specified multiple times'
        attrs.setdefault(name, []).append(val)
    return level, attrs, _external_problem(attrs)


def _external_problem(attrs: dict[str, list[str]]) -> str:
    """Postfix's checks of a policy plugin's attributes (smtp_tls_policy.c)."""
    kind = attrs.get("policy_type", [""])[0]
    if kind and kind not in POLICY_TYPES:
        return f'attribute "policy_type" has an unexpected value: "{kind}"'
    failure = attrs.get("policy_failure", [""])[0]
    if failure and failure not in POLICY_FAILURES:
        return f'attribute "policy_failure" has an unexpected value: "{failure}"'
    domain = attrs.get("policy_domain", [""])[0]
    if "policy_domain" in attrs and not _HOSTNAME.fullmatch(domain):
        return f'attribute "policy_domain" has a malformed value: "{domain}"'
    ttl = attrs.get("policy_ttl", ["0"])[0]
    if not (ttl.isascii() and ttl.isdigit()):
        return f'attribute "policy_ttl" has a malformed value: "{ttl}"'
    if not kind and any(name in attrs for name in _EXTERNAL):
        return (
            "built-in policy has unexpected attribute policy_ttl, policy_domain, "
            "policy_string, mx_host_pattern or policy_failure"
        )
    return ""


def _policy_keys(destination: str) -> list[str]:
    """Exact next hop first (with its port, then without), as the request names it."""
    text = destination.strip().lower()
    keys = [text]
    if text.startswith("[") and "]:" in text:
        keys.append(text[: text.index("]") + 1])
    elif not text.startswith("[") and text.count(":") == 1:
        keys.append(text.split(":", 1)[0])
    return keys


def _defaults(agent: AgentSettings, level: SecurityLevel, source: str) -> TlsPolicy:
    # Every delivery asks for its policy: built once per configuration (TlsPolicy is
    # immutable; a reload makes a new Settings object, hence new entries).
    return _cached_defaults(agent.settings, agent.transport, level, source)


@functools.lru_cache(maxsize=256)
def _cached_defaults(
    settings: Settings, transport: str, level: SecurityLevel, source: str
) -> TlsPolicy:
    return _build_defaults(AgentSettings(settings, transport), level, source)


def _build_defaults(agent: AgentSettings, level: SecurityLevel, source: str) -> TlsPolicy:
    mandatory = level.mandatory
    if level is SecurityLevel.FINGERPRINT:
        matches = _split(" ".join(agent.params.tls_fingerprint_cert_match), ",|")
    elif level is SecurityLevel.SECURE:
        matches = agent.params.tls_secure_cert_match
    elif level is SecurityLevel.VERIFY:
        matches = agent.params.tls_verify_cert_match
    else:
        matches = ()
    p = agent.params
    return TlsPolicy(
        level=level,
        matches=tuple(m for m in matches if m),
        protocols=p.tls_mandatory_protocols if mandatory else p.tls_protocols,
        ciphers=p.tls_mandatory_ciphers if mandatory else p.tls_ciphers,
        exclude=p.tls_mandatory_exclude_ciphers if mandatory else p.tls_exclude_ciphers,
        tafile=agent.params.tls_trust_anchor_file,
        servername=agent.params.tls_servername,
        connection_reuse=agent.params.tls_connection_reuse,
        source=source,
    )


def _from_table(agent: AgentSettings, value: str, source: str) -> TlsPolicy:
    """The policy of a table answer (`_Tables.answer()` keeps it per configuration)."""
    level, attrs, error = parse_policy_entry(value)
    if level is None or error:
        return TlsPolicy(SecurityLevel.NONE, source=source, error=error)
    policy = _defaults(agent, level, source)
    if "match" in attrs:
        separators = "|" if level is SecurityLevel.FINGERPRINT else ":"
        matches = tuple(m for v in attrs["match"] for m in _split(v, separators))
        policy = replace(policy, matches=matches)
    if "protocols" in attrs:
        policy = replace(policy, protocols=_split(" ".join(attrs["protocols"]), ":,"))
    if "ciphers" in attrs:
        policy = replace(policy, ciphers=attrs["ciphers"][-1].lower())
    if "exclude" in attrs:
        policy = replace(policy, exclude=_split(" ".join(attrs["exclude"]), ":,"))
    if "tafile" in attrs:
        policy = replace(policy, tafile=_split(" ".join(attrs["tafile"]), ":,"))
    if "servername" in attrs:
        policy = replace(policy, servername=attrs["servername"][-1])
    if "connection_reuse" in attrs:
        reuse = attrs["connection_reuse"][-1].lower()
        if reuse not in ("yes", "no"):
            return replace(policy, error=f'invalid connection_reuse value "{reuse}"')
        policy = replace(policy, connection_reuse=reuse == "yes")
    return _external(agent, policy, attrs)


def _external(agent: AgentSettings, policy: TlsPolicy, attrs: dict[str, list[str]]) -> TlsPolicy:
    """The answer of a Postfix STS policy plugin. With smtp_tls_enforce_sts_mx_patterns
    (Postfix 3.10.5, default yes), a verify/secure policy with MX host patterns admits only
    MX hosts that match one, and the certificate is matched against the MX host name."""
    kind = attrs.get("policy_type", [""])[0]
    if not kind:
        return policy
    patterns = tuple(p.lower() for p in attrs.get("mx_host_pattern", ()))
    policy = replace(
        policy,
        policy_type=kind,
        policy_domain=attrs.get("policy_domain", [""])[0].lower().rstrip("."),
        policy_failure=attrs.get("policy_failure", [""])[0],
    )
    enforce = agent.params.tls_enforce_sts_mx_patterns
    if enforce and kind == "sts" and patterns and policy.level.must_trust:
        policy = replace(policy, matches=("hostname",), mx_patterns=patterns)
    return policy


def level_defaults(agent: AgentSettings, level: SecurityLevel, source: str) -> TlsPolicy:
    """The policy of `level` with main.cf's settings for it (protocols, ciphers, ...)."""
    return _defaults(agent, level, source)


def _per_site(agent: AgentSettings, keys: list[str], level: SecurityLevel) -> SecurityLevel:
    """The obsolete smtp_tls_per_site table, combined as Postfix's tls_site_lookup() does."""
    maps = agent.open_maps("tls_per_site")
    return _combine_sites([maps.find(key) if key else None for key in keys], level)


def _combine_sites(found_list: list[Match | None], level: SecurityLevel) -> SecurityLevel:
    site: SecurityLevel | None = None
    for found in found_list:
        if found is None:
            continue
        word = found.value.strip().upper()
        if word == "NONE":
            # NONE beats a less specific MAY and the global switches.
            if site is None or site.rank <= SecurityLevel.MAY.rank:
                site = SecurityLevel.NONE
        elif word == "MAY":
            if site is None:
                site = SecurityLevel.MAY
        elif word == "MUST_NOPEERMATCH":
            if site is None or site.rank < SecurityLevel.ENCRYPT.rank:
                site = SecurityLevel.ENCRYPT
        elif word == "MUST" and (site is None or site.rank < SecurityLevel.VERIFY.rank):
            site = SecurityLevel.VERIFY
    if site is None:
        return level
    if site is SecurityLevel.MAY:
        # MAY yields to the more specific global smtp_enforce_tls/enforce_peername.
        return level if level.rank > SecurityLevel.MAY.rank else SecurityLevel.MAY
    return site


def resolve_policy(agent: AgentSettings, destination: str, server_hostname: str = "") -> TlsPolicy:
    """The policy for `destination` (and, for smtp_tls_per_site, the server's host name)."""
    tables = _tables(agent.settings, agent.transport)
    if tables.same is not None:
        return tables.same
    maps = tables.policy_maps
    if maps:
        try:
            for key, partial in _policy_searches(destination):
                found = maps.find(key, partial=partial)
                if found is not None:
                    return tables.answer(found.value)
        except TableLookupError:
            return _lookup_error(agent, maps, destination)
        return tables.fallback
    level = _global_level(agent)
    if agent.open_maps("tls_per_site"):
        keys = [nexthop_domain(destination), server_hostname.lower()]
        sites = agent.open_maps("tls_per_site")
        try:
            site = _combine_sites([sites.find(k) if k else None for k in keys], level)
        except TableLookupError:
            return _site_error(agent, sites, keys)
        if site is not level:
            return _defaults(agent, site, agent.name("tls_per_site"))
    return _defaults(agent, level, agent.name("tls_security_level"))


def untabled_policy(agent: AgentSettings) -> TlsPolicy | None:
    """`resolve_policy()`'s answer for every destination and server when no table decides
    (neither smtp_tls_policy_maps nor smtp_tls_per_site is set); None when one does, or
    cannot be opened (`resolve_policy()` reports that where a policy is asked for)."""
    try:
        return _tables(agent.settings, agent.transport).same
    except ConfigError:  # a TableError, or any other reason the tables are unusable
        return None


def resolve_not_required(agent: AgentSettings) -> TlsPolicy:
    """The policy of a "TLS-Required: No" message (see the module docstring)."""
    level = _global_level(agent)
    cap = SecurityLevel.ENCRYPT if agent.params.tls_wrappermode else SecurityLevel.MAY
    if level.rank > cap.rank:
        level = cap
    return _defaults(agent, level, agent.name("tls_security_level"))


async def resolve_policy_async(
    agent: AgentSettings, destination: str, server_hostname: str = ""
) -> TlsPolicy:
    """`resolve_policy` with the tables asked on the loop without blocking it."""
    tables = _tables(agent.settings, agent.transport)
    if tables.same is not None:
        return tables.same
    maps = tables.policy_maps
    if tables.has_policy_maps:
        # Every delivery asks (smtp(8) keeps its policy cache for one request): only the
        # table answers are looked up here, the rest was found once per configuration.
        try:
            for key, partial in _policy_searches(destination):
                value = await maps.find_value_async(key, partial=partial)
                if value is not None:
                    policy = tables.answer(value)
                    break
            else:
                policy = tables.fallback
        except TableLookupError:
            return _lookup_error(agent, maps, destination)
        # Only tables that ask a server have warnings of their lookups.
        if maps.network and (warnings := maps.take_warnings()):
            policy = replace(policy, warnings=tuple(warnings))
        return policy
    level = _global_level(agent)
    sites = agent.open_maps("tls_per_site")
    if sites:
        keys = [nexthop_domain(destination), server_hostname.lower()]
        try:
            hits = [await sites.find_async(k) if k else None for k in keys]
        except TableLookupError:
            return _site_error(agent, sites, keys)
        site = _combine_sites(hits, level)
        if site is not level:
            return _with_warnings(_defaults(agent, site, agent.name("tls_per_site")), sites)
    return _defaults(agent, level, agent.name("tls_security_level"))


@functools.lru_cache(maxsize=1024)
def _policy_searches(destination: str) -> tuple[tuple[str, bool], ...]:
    """(key, is partial) in the order the tables are searched: the exact next hop (with its
    port, then without), then, unless the next hop is a [literal], the domain and its
    parent domains as ``.example.com`` (partial keys, which pattern tables never see). The
    domain itself is not asked again when it was an exact key (``example.com``): the same
    key of the same tables, one query of a network table less when it is not found."""
    exact = _policy_keys(destination)
    out = [(key, False) for key in exact]
    if not destination.strip().startswith("["):
        for key in domain_keys(nexthop_domain(destination)):
            if key.partial or key.text not in exact:
                out.append((key.text, key.partial))
    return tuple(out)


def _with_warnings(policy: TlsPolicy, maps: Maps) -> TlsPolicy:
    warnings = maps.take_warnings()
    return replace(policy, warnings=tuple(warnings)) if warnings else policy


def _lookup_error(agent: AgentSettings, maps: Maps, destination: str) -> TlsPolicy:
    """smtp_tls_policy.c: "<maps>, next-hop destination "<dest>": policy table lookup
    error", and the 4.7.5 "client TLS configuration problem" deferral."""
    where = f'{agent.name("tls_policy_maps")}, next-hop destination "{destination.strip()}"'
    return TlsPolicy(
        SecurityLevel.NONE,
        source=agent.name("tls_policy_maps"),
        error="policy table lookup error",
        warnings=(*maps.take_warnings(), f"{where}: policy table lookup error"),
    )


def _site_error(agent: AgentSettings, maps: Maps, keys: list[str]) -> TlsPolicy:
    """tls_site_lookup(): "per-site table lookup error", deferred 4.3.0 "Temporary lookup
    error"."""
    name = agent.name("tls_per_site")
    return TlsPolicy(
        SecurityLevel.NONE,
        source=name,
        error="Temporary lookup error",
        dsn="4.3.0",
        warnings=(
            *maps.take_warnings(),
            f'{name} next-hop destination "{keys[0]}": per-site table lookup error',
        ),
    )


class _Tables:
    """What policy resolution reads from one configuration (settings and transport), found
    once: the global policy when no table is set (`same`), else smtp_tls_policy_maps, the
    policy without a table entry (`fallback`) and the table answers parsed so far (each
    answer is parsed once per configuration: TlsPolicy is immutable, and a reload makes a
    new Settings object, hence new entries)."""

    __slots__ = (
        "_answers",
        "agent",
        "fallback",
        "has_policy_maps",
        "policy_maps",
        "same",
        "source",
    )

    _ANSWERS: Final = 256  # distinct table answers kept (more: parsed again)

    def __init__(self, agent: AgentSettings) -> None:
        self.agent = agent
        self.policy_maps = agent.open_maps("tls_policy_maps")
        self.has_policy_maps = bool(self.policy_maps)
        self.source = agent.name("tls_policy_maps")
        self.fallback = _defaults(agent, _global_level(agent), agent.name("tls_security_level"))
        # Neither smtp_tls_policy_maps nor smtp_tls_per_site: every destination's policy.
        same = not self.policy_maps and not agent.open_maps("tls_per_site")
        self.same = self.fallback if same else None
        self._answers: dict[str, TlsPolicy] = {}

    def answer(self, value: str) -> TlsPolicy:
        """The policy of a smtp_tls_policy_maps answer (`_from_table`)."""
        known = self._answers.get(value)
        if known is None:
            if len(self._answers) >= self._ANSWERS:
                self._answers.clear()
            known = self._answers[value] = _from_table(self.agent, value, self.source)
        return known


@functools.lru_cache(maxsize=64)
def _tables(settings: Settings, transport: str) -> _Tables:
    # A table that cannot be opened raises here, and nothing is kept: the next call tries
    # again, as settings.open_maps() does.
    return _Tables(AgentSettings(settings, transport))
