"""A private OpenLDAP server (Debian slapd) in a temporary directory.

`Slapd(root, ldif).start()` writes a slapd.conf under `root` (the core, cosine,
inetorgperson, misc and dyngroup schemas, a small schema of mailcarrier's own for TLS
policy entries, one mdb database for ``dc=example,dc=com`` with ``cn=admin`` as its root),
loads `ldif` with slapadd, and runs slapd in the foreground with ``-d stats``: its log (each
search's base, scope and filter as the server received them) is `log()`. It listens on
127.0.0.1 at a free port (`url`), on a UNIX-domain socket in `root` (`ldapi_url`) and, with
`tls` (a trustme leaf certificate), on an ldaps port (`ldaps_url`) with StartTLS offered on
the plain port too. `stop()` stops it and is safe to call twice; `available()` says whether
this machine has slapd and slapadd (Debian's slapd package). slapd does not need root.
`running_slapd(ldif, tls)` does it all around a ``with`` block, in a short directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

import trustme

from tests.support.peers.aiosmtpd_server import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "rootsecret"

# RFC 5612's documentation enterprise number: an arc nobody else uses.
MAILCARRIER_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.32473.1.1.1 NAME 'mcTlsPolicy'
    DESC 'a Postfix TLS policy (smtp_tls_policy_maps value)'
    EQUALITY caseExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.2 NAME 'mcDomain'
    DESC 'a next-hop destination'
    EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'mcTlsPolicyEntry' SUP top STRUCTURAL
    MUST ( cn $ mcDomain $ mcTlsPolicy ) )
"""

CONFIG = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {schema}/misc.schema
include {schema}/dyngroup.schema
include {root}/mailcarrier.schema
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
{tls}
database mdb
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {root}/db
maxsize 10485760
index objectClass eq
index mail,mailLocalAddress,mcDomain eq
"""


def available() -> bool:
    return os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)


class Slapd:
    def __init__(self, root: Path, ldif: str, tls: trustme.LeafCert | None = None) -> None:
        self.root = root
        self.ldif = ldif
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else 0
        self.socket = root / "ldapi"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + quote(str(self.socket), safe="")

    def _tls_lines(self) -> str:
        if self.tls is None:
            return ""
        cert, key = self.root / "server.pem", self.root / "server.key"
        self.tls.cert_chain_pems[0].write_to_path(str(cert))
        self.tls.private_key_pem.write_to_path(str(key))
        return f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n"

    def _configure(self) -> Path:
        (self.root / "db").mkdir(parents=True, exist_ok=True)
        (self.root / "mailcarrier.schema").write_text(MAILCARRIER_SCHEMA)
        conf = self.root / "slapd.conf"
        conf.write_text(
            CONFIG.format(
                schema=SCHEMA_DIR,
                root=self.root,
                tls=self._tls_lines(),
                suffix=SUFFIX,
                rootdn=ROOT_DN,
                rootpw=ROOT_PW,
            )
        )
        data = self.root / "data.ldif"
        data.write_text(self.ldif)
        added = subprocess.run(
            [SLAPADD, "-q", "-f", str(conf), "-l", str(data)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if added.returncode != 0:
            raise RuntimeError(f"slapadd failed: {added.stderr}")
        return conf

    def _ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return self.socket.exists()
        return False

    def start(self) -> Slapd:
        conf = self._configure()
        urls = [f"{self.url}/", f"{self.ldapi_url}/"]
        if self.tls is not None:
            urls.append(f"{self.ldaps_url}/")
        self._log = (self.root / "slapd.log").open("wb")
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-h", " ".join(urls), "-d", "stats"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.log()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not come up: {self.log()}")

    def log(self) -> str:
        path = self.root / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def filters(self) -> list[str]:
        """The filters of the searches slapd received, in order, as it logs them."""
        out = []
        for line in self.log().splitlines():
            if " SRCH base=" in line and ' filter="' in line:
                out.append(line.split(' filter="', 1)[1].rsplit('"', 1)[0])
        return out

    def bases(self) -> list[str]:
        out = []
        for line in self.log().splitlines():
            if " SRCH base=" in line:
                out.append(line.split(' SRCH base="', 1)[1].split('" scope=', 1)[0])
        return out

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running_slapd(ldif: str, tls: trustme.LeafCert | None = None) -> Iterator[Slapd]:
    """A started `Slapd` in a short temporary directory (the ldapi socket path must fit a
    sockaddr_un), stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="mc-ldap-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = Slapd(root, ldif, tls)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
