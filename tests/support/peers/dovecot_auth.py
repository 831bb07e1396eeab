"""A private Dovecot (Debian dovecot-core) whose only job is an auth socket for Postfix's smtpd.

`DovecotAuth(root, {"alice": "secret"}).start()` writes a dovecot.conf under `root` (base_dir,
state and log there, ``protocols = none``, no SSL), a passwd-file with ``{PLAIN}`` passwords
(so every mechanism can be checked, SCRAM included), and starts the master with ``-c``; the
auth service listens on ``root/run/smtp-auth`` (mode 0666) for ``smtpd_sasl_type = dovecot``.
Same approach as tests/support/peers/dovecot.py (the LMTP server). The master must run as root:
`available()` says whether this machine can, so tests skip cleanly.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import time
from pathlib import Path

from tests.support.peers.dovecot import DOVECOT, DovecotProcess

MECHANISMS = "plain login scram-sha-1 scram-sha-256"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
protocols = none
ssl = no
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
auth_verbose = yes
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service auth {{
  unix_listener smtp-auth {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    return os.path.exists(DOVECOT) and os.geteuid() == 0


class DovecotAuth(DovecotProcess):
    what = "dovecot auth"

    def __init__(self, root: Path, users: dict[str, str], mechanisms: str = MECHANISMS) -> None:
        super().__init__(root)
        self.users = users
        self.mechanisms = mechanisms

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "smtp-auth"

    def _render(self, nobody: pwd.struct_passwd) -> str:
        lines = [
            f"{user}:{{PLAIN}}{password}:{nobody.pw_uid}:{nobody.pw_gid}::{self.root}\n"
            for user, password in self.users.items()
        ]
        users = self.root / "users"
        users.write_text("".join(lines))
        os.chmod(users, 0o644)
        return CONFIG.format(
            root=self.root, user="nobody", group="nogroup", mechanisms=self.mechanisms
        )

    def _ready(self) -> bool:
        return self._answers()

    def start(self) -> DovecotAuth:
        self._launch()
        return self

    def _answers(self) -> bool:
        """Whether the auth socket accepts a connection and greets (VERSION line)."""
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            try:
                s.connect(str(self.socket_path))
                s.sendall(b"VERSION\t1\t1\nCPID\t1\n")
                return s.recv(4096).startswith(b"VERSION")
            except OSError:
                return False

    def offered(self) -> set[str]:
        """The mechanisms the auth service offers (its handshake's MECH lines)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(b"VERSION\t1\t1\nCPID\t1\n")
            data = b""
            while b"\nDONE" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return {
            line.split("\t")[1].upper()
            for line in data.decode().splitlines()
            if line.startswith("MECH\t")
        }

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of the regular expression `pattern` in Dovecot's log."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in Dovecot's log:\n{self.log}")
            time.sleep(0.1)
