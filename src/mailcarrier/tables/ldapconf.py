"""The configuration of an ``ldap:`` table (ldap_table(5)) as dict_ldap_open() reads it, and
the quoting of keys in LDAP search bases and filters.

`ldap_options(config)` returns `LdapOptions` and Postfix's warnings: ``server_host`` (a list
of LDAP URLs ``ldap://``, ``ldaps://``, ``ldapi://`` or ``host[:port]`` names, with
``server_port`` for the names without a port; localhost), ``version`` (2; 3 is forced, with a
warning, by ldaps:, ldapi: and start_tls), ``timeout`` (10), ``search_base``, ``query_filter``
((mailacceptinggeneralid=%s)), ``result_format`` (or the old ``result_filter``),
``scope`` (sub, one or base), the attribute lists (``terminal_result_attribute``,
``leaf_result_attribute``, ``result_attribute`` (maildrop) and
``special_result_attribute``, in that order: their positions say what each attribute is),
``bind`` (yes/simple, no/none; sasl), ``bind_dn``, ``bind_pw``, ``recursion_limit`` (1000),
``expansion_limit``, ``size_limit`` (expansion_limit), ``dereference`` (0-3),
``chase_referrals``, ``start_tls`` and the ``tls_*`` files, ``sasl_mechs`` and friends.
Malformed values fail with one line naming the file, the line and the parameter.

`filter_quote` escapes a key for a filter as dict_ldap's rfc2254_quote() (RFC 4515): ``*``,
``(``, ``)``, ``\\`` and NUL become ``\\2A`` ``\\28`` ``\\29`` ``\\5C`` ``\\00``;
`dn_quote` escapes it for a search base as rfc2253_quote(): white space, ``"#+,;<>\\``
(and NUL) as ``\\XX``. The search itself is ldapsearch.py's, the table ldap.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig
from mailcarrier.tables.text import split_braced

__all__ = [
    "NAMES",
    "LdapOptions",
    "LdapServer",
    "LdapUrl",
    "dn_quote",
    "filter_quote",
    "ldap_options",
    "parse_ldap_url",
]

NAMES = (
    "server_host",
    "server_port",
    "timeout",
    "search_base",
    "query_filter",
    "result_format",
    "result_filter",
    "domain",
    "result_attribute",
    "special_result_attribute",
    "terminal_result_attribute",
    "leaf_result_attribute",
    "scope",
    "bind",
    "bind_dn",
    "bind_pw",
    "cache",
    "cache_expiry",
    "cache_size",
    "recursion_limit",
    "expansion_limit",
    "size_limit",
    "dereference",
    "chase_referrals",
    "version",
    "debuglevel",
    "sasl_mechs",
    "sasl_realm",
    "sasl_authz_id",
    "sasl_minssf",
    "start_tls",
    "tls_ca_cert_dir",
    "tls_ca_cert_file",
    "tls_cert",
    "tls_key",
    "tls_require_cert",
    "tls_random_file",
    "tls_cipher_suite",
)
SCOPES: Final = {"sub": "SUBTREE", "one": "LEVEL", "base": "BASE"}
BINDS: Final = {"no": "none", "none": "none", "yes": "simple", "simple": "simple", "sasl": "sasl"}
_FILTER_SPECIALS: Final = re.compile(r"[*()\\\0]")
_DN_SPECIALS: Final = re.compile(r"[ \t\"#+,;<>\\\0]")
_URL: Final = re.compile(r"^(ldap|ldaps|ldapi)://", re.IGNORECASE)


def _hex(match: re.Match[str]) -> str:
    return f"\\{ord(match.group()):02X}"


def filter_quote(text: str) -> str:
    """rfc2254_quote(): a key made safe for a search filter."""
    return _FILTER_SPECIALS.sub(_hex, text)


def dn_quote(text: str) -> str:
    """rfc2253_quote(): a key made safe for a search base."""
    return _DN_SPECIALS.sub(_hex, text)


@dataclass(frozen=True, slots=True)
class LdapServer:
    """One member of server_host: `url` as Postfix shows it (``ldap://host:389``)."""

    url: str
    scheme: str  # ldap, ldaps, ldapi
    host: str = ""
    port: int = 0
    path: str = ""  # ldapi: the socket


@dataclass(frozen=True, slots=True)
class LdapUrl:
    """An RFC 4516 URL in a special result attribute: what to search for the recursion."""

    dn: str
    attributes: tuple[str, ...]
    scope: str  # SCOPES values
    filter: str


def _is_url(text: str) -> str | None:
    """ldap_is_ldap_url(): the URL without ``<...>`` and ``URL:``, or None."""
    stripped = text.strip()
    if stripped.startswith("<") and stripped.endswith(">"):
        stripped = stripped[1:-1]
    if stripped[:4].upper() == "URL:":
        stripped = stripped[4:]
    return stripped if _URL.match(stripped) else None


def parse_ldap_url(text: str) -> LdapUrl | None:
    """The URL in `text`, or None when `text` is not an LDAP URL (a DN). ValueError when
    it is one but malformed."""
    url = _is_url(text)
    if url is None:
        return None
    rest = url.split("://", 1)[1]
    _, slash, tail = rest.partition("/")
    parts = tail.split("?") if slash else []
    if len(parts) > 5:
        raise ValueError("Bad URL")
    parts += [""] * (5 - len(parts))
    dn, attrs, scope, filt, _ = parts
    scope_name = scope.lower() or "base"
    if scope_name not in SCOPES:
        raise ValueError("Bad URL scope")
    return LdapUrl(
        dn=unquote(dn),
        attributes=tuple(unquote(a) for a in attrs.split(",") if a),
        scope=SCOPES[scope_name],
        filter=unquote(filt) or "(objectClass=*)",
    )


def _server(text: str, default_port: int) -> LdapServer:
    """A server_host member: an LDAP URL, or ``host[:port]`` made one as Postfix does."""
    if not _URL.match(text):
        text = f"ldap://{text}" if ":" in text else f"ldap://{text}:{default_port}"
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    hostport = rest.split("/", 1)[0]
    if scheme == "ldapi":
        return LdapServer(text, "ldapi", path=unquote(hostport) or "/var/run/ldapi")
    host, port = hostport, ""
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port = after.removeprefix(":")
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if port and not (port.isascii() and port.isdigit()):
        raise ValueError(f"error parsing URL {text}: Bad URL")
    number = int(port) if port else (636 if scheme == "ldaps" else 389)
    return LdapServer(text, scheme, unquote(host) or "localhost", number)


@dataclass(frozen=True, slots=True)
class LdapOptions:
    servers: tuple[LdapServer, ...]
    version: int
    timeout: int
    search_base: str
    query_filter: str
    result_format: str
    scope: str
    attributes: tuple[str, ...]  # terminal, leaf, result, special
    num_terminal: int
    num_leaf: int
    num_attributes: int  # terminal + leaf + result
    bind: str  # none, simple, sasl
    bind_dn: str
    bind_pw: str
    recursion_limit: int
    expansion_limit: int
    size_limit: int
    dereference: int
    chase_referrals: bool
    start_tls: bool
    tls_require_cert: bool
    tls_ca_cert_file: str
    tls_ca_cert_dir: str
    tls_cert: str
    tls_key: str
    tls_cipher_suite: str
    sasl_mechs: str
    sasl_authz_id: str

    @property
    def uses_tls(self) -> bool:
        return self.start_tls or any(s.scheme == "ldaps" for s in self.servers)


def _attributes(config: TableConfig, name: str, default: str = "") -> list[str]:
    return [a for a in re.split(r"[\s,]+", config.string(name, default)) if a]


def _fail(config: TableConfig, name: str, message: str) -> TableError:
    """One line: file:line (the file names the table) or the table's name, then what."""
    setting = config.settings.get(name)
    return TableError(
        message.removeprefix(f"{config.name}: ") if config.filename else message,
        parameter=name if config.filename else f"{config.name}_{name}",
        filename=config.filename,
        lineno=setting.lineno if setting else 0,
    )


def _servers(config: TableConfig, version: int, warn: list[str]) -> tuple[list[LdapServer], int]:
    port = config.integer("server_port", 389)
    servers: list[LdapServer] = []
    for item in split_braced(config.string("server_host", "localhost", min_len=1)):
        try:
            server = _server(item, port)
        except ValueError as exc:
            warn.append(f"dict_ldap_open: {exc}; skipping")  # Postfix: msg_error, skipped
            continue
        if server.scheme != "ldap" and version != 3:
            warn.append(f"dict_ldap_open: URL scheme {server.scheme} requires protocol version 3")
            version = 3
        servers.append(server)
    if not servers:
        raise _fail(config, "server_host", f"{config.name}: no usable server_host")
    return servers, version


def _version(config: TableConfig, warn: list[str]) -> int:
    version = config.integer("version", 2, 2)
    if version not in (2, 3):
        warn.append(f"dict_ldap_open: {config.name} Unknown version {version}, using 2.")
        version = 2
    return version


def _scope(config: TableConfig, warn: list[str]) -> str:
    scope = config.string("scope", "sub", min_len=1).lower()
    if scope not in SCOPES:
        warn.append(
            f"dict_ldap_open: {config.name}: Unrecognized value {scope} specified for scope; "
            "using sub"
        )
        scope = "sub"
    return SCOPES[scope]


def _bind(config: TableConfig) -> str:
    word = config.string("bind", "yes", min_len=1)
    bind = BINDS.get(word.lower())
    if bind is None:
        raise _fail(config, "bind", f"{config.name}: unsupported parameter value: bind = {word}")
    return bind


def _obsolete(config: TableConfig, warn: list[str]) -> None:
    """The cache parameters OpenLDAP dropped: ignored with a warning."""
    if config.boolean("cache", False):
        warn.append(f"dict_ldap_open: {config.name} ignoring cache")
    for obsolete in ("cache_expiry", "cache_size"):
        if config.has(obsolete) and config.integer(obsolete, -1) >= 0:
            warn.append(f"dict_ldap_open: {config.name} ignoring {obsolete}")


def _dereference(config: TableConfig, warn: list[str]) -> int:
    dereference = config.integer("dereference", 0)
    if not 0 <= dereference <= 3:
        warn.append(
            f"dict_ldap_open: {config.name} Unrecognized value {dereference} specified for "
            "dereference; using 0"
        )
        dereference = 0
    return dereference


def ldap_options(config: TableConfig) -> tuple[LdapOptions, list[str]]:
    """The options, and the warnings Postfix gives while reading them (in its order)."""
    warn: list[str] = []
    servers, version = _servers(config, _version(config, warn), warn)
    scope = _scope(config, warn)
    terminal = _attributes(config, "terminal_result_attribute")
    leaf = _attributes(config, "leaf_result_attribute")
    regular = _attributes(config, "result_attribute", "maildrop")
    special = _attributes(config, "special_result_attribute")
    bind = _bind(config)
    _obsolete(config, warn)
    expansion_limit = config.integer("expansion_limit", 0)
    dereference = _dereference(config, warn)
    start_tls = config.boolean("start_tls", False)
    if start_tls and version < 3:
        warn.append(f"dict_ldap_open: {config.name} start_tls requires protocol version 3")
        version = 3
    if bind == "sasl" and version < 3:
        version = 3  # SASL needs LDAPv3 (the manual says to set it; OpenLDAP insists)
    options = LdapOptions(
        servers=tuple(servers),
        version=version,
        timeout=config.integer("timeout", 10),
        search_base=config.string("search_base"),
        query_filter=config.string("query_filter", "(mailacceptinggeneralid=%s)"),
        result_format=_result_format(config),
        scope=scope,
        attributes=tuple(terminal + leaf + regular + special),
        num_terminal=len(terminal),
        num_leaf=len(leaf),
        num_attributes=len(terminal) + len(leaf) + len(regular),
        bind=bind,
        bind_dn=config.string("bind_dn"),
        bind_pw=config.string("bind_pw"),
        recursion_limit=config.integer("recursion_limit", 1000, 1),
        expansion_limit=expansion_limit,
        size_limit=config.integer("size_limit", expansion_limit),
        dereference=dereference,
        chase_referrals=config.boolean("chase_referrals", False),
        start_tls=start_tls,
        tls_require_cert=config.boolean("tls_require_cert", False),
        tls_ca_cert_file=config.string("tls_ca_cert_file"),
        tls_ca_cert_dir=config.string("tls_ca_cert_dir"),
        tls_cert=config.string("tls_cert"),
        tls_key=config.string("tls_key"),
        tls_cipher_suite=config.string("tls_cipher_suite"),
        sasl_mechs=config.string("sasl_mechs"),
        sasl_authz_id=config.string("sasl_authz_id"),
    )
    config.integer("debuglevel", 0)  # checked as Postfix does; ldap3 has no such knob
    config.integer("sasl_minssf", 0, 0, 4096)
    return options, warn


def _result_format(config: TableConfig) -> str:
    if config.has("result_format"):
        return config.string("result_format")
    return config.string("result_filter", "%s", min_len=1)
