"""Connections of an ``ldap:`` table: ldap3 (a pure-Python client) behind netcore.HostPool.

`LdapConnector(options, where)` connects to one server_host member as dict_ldap_connect()
does: the protocol ``version``, TLS for ldaps: or after ``start_tls`` (the ``tls_*`` files;
``tls_require_cert = yes`` checks the chain and the name, ``no`` checks nothing), then the
bind: none, simple (``bind_dn``, ``bind_pw``) or SASL (the first of ``sasl_mechs`` that ldap3
speaks: EXTERNAL, PLAIN, DIGEST-MD5; ``bind_dn`` is the authentication identity,
``sasl_authz_id`` the authorization identity). A failure is a `HostError` with Postfix's
warning (``Unable to bind to server ldap://h:389 with dn cn=x: 49 (Invalid credentials)``),
so the pool tries the next server.

ldap3 blocks: connecting and each lookup (ldapsearch.py) run in the table's worker threads,
with ldap3's socket timeouts a little longer than the pool's ``timeout``, so a thread left
behind by a timed-out lookup ends soon after and its connection is closed; neither the
table loop nor a caller's loop ever waits on the server. ldap3 is optional (the ``ldap``
extra): without it the table cannot be opened, and says so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
from collections.abc import Callable
from typing import Any, Final, TypeVar

from mailcarrier.tables.base import TableError
from mailcarrier.tables.ldapconf import LdapOptions, LdapServer, filter_quote
from mailcarrier.tables.ldapsearch import err2string
from mailcarrier.tables.netcore import Host, HostError

__all__ = ["LdapConnection", "LdapConnector", "require_ldap3"]

SASL_MECHANISMS: Final = ("EXTERNAL", "PLAIN", "DIGEST-MD5")
SERVER_DOWN: Final = -1
CONNECT_ERROR: Final = -11
LOCAL_ERROR: Final = -2
T = TypeVar("T")


def require_ldap3(spec: str) -> None:
    try:
        import ldap3  # noqa: F401
    except ImportError:
        raise TableError(
            f"{spec}: LDAP support needs ldap3: pip install 'mailcarrier[ldap]'"
        ) from None


class LdapConnection:
    """An open, bound ldap3 connection (HostPool's `Connection`)."""

    def __init__(self, conn: Any, server: LdapServer, connector: LdapConnector) -> None:
        self.conn = conn
        self.server = server
        self.connector = connector

    def quote(self, text: str) -> str:
        return filter_quote(text)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        return await self.connector.in_thread(func, *args)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection: nothing to report
            await self.connector.in_thread(self.conn.unbind)


class LdapConnector:
    def __init__(self, options: LdapOptions, config_name: str) -> None:
        self.options = options
        self.tls = _tls(options, config_name) if options.uses_tls else None
        self.sasl = _sasl_mechanism(options, config_name) if options.bind == "sasl" else ""
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="mailcarrier-ldap"
        )

    async def in_thread(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, func, *args)

    async def connect(self, host: Host, timeout: float) -> LdapConnection:
        server: LdapServer = host.target
        conn = await self.in_thread(self._connect, server)
        return LdapConnection(conn, server, self)

    def _dn_shown(self) -> str:
        return self.options.bind_dn or "empty or implicit"

    def _bind_failed(self, server: LdapServer, code: int, text: str) -> HostError:
        return HostError(
            f"dict_ldap_connect: Unable to bind to server {server.url} with dn "
            f"{self._dn_shown()}: {code} ({text})"
        )

    def _unreachable(self, server: LdapServer) -> HostError:
        if self.options.bind == "none":
            text = err2string(SERVER_DOWN)
            return HostError(f"dict_ldap_lookup: Search error {SERVER_DOWN}: {text} ")
        return self._bind_failed(server, SERVER_DOWN, err2string(SERVER_DOWN))

    def _connection(self, server: LdapServer) -> Any:
        import ldap3

        opts = self.options
        wait = opts.timeout + 1 if opts.timeout else None
        if server.scheme == "ldapi":
            target = ldap3.Server(f"ldapi://{server.path}", get_info=ldap3.NONE)
        else:
            target = ldap3.Server(
                server.host,
                port=server.port,
                use_ssl=server.scheme == "ldaps",
                tls=self.tls,
                get_info=ldap3.NONE,
                connect_timeout=wait,
            )
        params: dict[str, Any] = {
            "version": opts.version,
            "auto_bind": ldap3.AUTO_BIND_NONE,
            "raise_exceptions": False,
            "read_only": True,
            "receive_timeout": wait,
            "check_names": False,
            "auto_escape": False,
            "auto_encode": False,
            "auto_referrals": opts.chase_referrals,
            "return_empty_attributes": False,
        }
        if opts.bind == "simple" and opts.bind_dn:
            params.update(user=opts.bind_dn, password=opts.bind_pw, authentication=ldap3.SIMPLE)
        elif opts.bind == "simple":
            params.update(authentication=ldap3.ANONYMOUS)  # a simple bind with an empty DN
        elif opts.bind == "sasl":
            params.update(
                authentication=ldap3.SASL,
                sasl_mechanism=self.sasl,
                sasl_credentials=_sasl_credentials(self.sasl, opts),
            )
        return ldap3.Connection(target, **params)

    def _connect(self, server: LdapServer) -> Any:
        from ldap3.core.exceptions import LDAPCommunicationError, LDAPException

        conn = self._connection(server)
        stage = "connect"
        try:
            conn.open()
            if self.options.start_tls:
                stage = "starttls"
                if not conn.start_tls():
                    code = int((conn.result or {}).get("result", CONNECT_ERROR))
                    raise self._starttls_failed(code)
            if self.options.bind != "none":
                stage = "bind"
                if not conn.bind():
                    result = conn.result or {}
                    code = int(result.get("result", SERVER_DOWN))
                    text = err2string(code, str(result.get("description", "")))
                    raise self._bind_failed(server, code, text)
        except HostError:
            _unbind(conn)
            raise
        except (LDAPException, OSError, ssl.SSLError) as exc:
            _unbind(conn)
            if stage == "starttls":
                raise self._starttls_failed(CONNECT_ERROR) from None
            if stage == "bind" and not isinstance(exc, (LDAPCommunicationError, OSError)):
                text = f"{err2string(LOCAL_ERROR)}: {exc}"
                raise self._bind_failed(server, LOCAL_ERROR, text) from None
            raise self._unreachable(server) from None
        return conn

    def _starttls_failed(self, code: int) -> HostError:
        return HostError(f"dict_ldap_connect: Unable to set STARTTLS: {code}: {err2string(code)}")


def _unbind(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.unbind()


def _tls(options: LdapOptions, name: str) -> Any:
    import ldap3
    from ldap3.core.exceptions import LDAPSSLConfigurationError

    try:
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if options.tls_require_cert else ssl.CERT_NONE,
            ca_certs_file=options.tls_ca_cert_file or None,
            ca_certs_path=options.tls_ca_cert_dir or None,
            local_certificate_file=options.tls_cert or None,
            local_private_key_file=options.tls_key or None,
            ciphers=options.tls_cipher_suite or None,
        )
    except (LDAPSSLConfigurationError, OSError, ssl.SSLError) as exc:
        raise TableError(f"{name}: unusable TLS settings: {exc}") from None


def _sasl_mechanism(options: LdapOptions, name: str) -> str:
    for mechanism in options.sasl_mechs.replace(",", " ").upper().split():
        if mechanism in SASL_MECHANISMS:
            return mechanism
    raise TableError(
        f"{name}: sasl_mechs = {options.sasl_mechs}: none of the SASL mechanisms this client "
        f"supports ({', '.join(SASL_MECHANISMS)})",
        parameter="sasl_mechs",
    )


def _sasl_credentials(mechanism: str, options: LdapOptions) -> Any:
    authzid = options.sasl_authz_id or None
    if mechanism == "EXTERNAL":
        return authzid or ""  # the initial response: the authorization identity, or empty
    if mechanism == "PLAIN":
        return (authzid, options.bind_dn, options.bind_pw)
    return (None, options.bind_dn, options.bind_pw, authzid)  # DIGEST-MD5: realm, user, ...
