"""A private Dovecot LMTP server (Debian dovecot-lmtpd) in a temporary directory.

`DovecotLmtp(root).start()` writes a minimal dovecot.conf under `root` (base_dir, state and
log there, ``protocols = lmtp``, no SSL), a passwd-file with the known users (uid nobody,
maildir homes under ``root/mail``), and starts the master process with ``-c``. It listens on
a unix socket in base_dir and on 127.0.0.1 at a free port. Dovecot's master must run as root,
so `available()` says whether this machine can; tests skip cleanly otherwise.
"""

from __future__ import annotations

import abc
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.peers.aiosmtpd_server import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
LMTP_BINARY = "/usr/lib/dovecot/lmtp"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
protocols = lmtp
ssl = no
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
mail_location = maildir:~/Maildir
auth_username_format = %Ln
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    return os.path.exists(DOVECOT) and os.path.exists(LMTP_BINARY) and os.geteuid() == 0


class DovecotProcess(abc.ABC):
    """A private Dovecot master under `root`: writes the configuration a subclass renders
    (`_render`), starts the master, waits until `_ready()`, stops it (SIGKILL as a last
    resort). Shared by the LMTP server here and the auth service (dovecot_auth.py)."""

    what = "dovecot"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "dovecot.conf"
        self.started = False

    @property
    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @abc.abstractmethod
    def _render(self, nobody: pwd.struct_passwd) -> str:
        """The dovecot.conf text (and any files it names, written here)."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the service answers."""

    def _launch(self) -> None:
        nobody = pwd.getpwnam("nobody")
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.config.write_text(self._render(nobody))
        # The master daemonizes and keeps inherited descriptors: no pipes, or run() waits.
        errors = self.root / "start-errors.txt"
        with errors.open("wb") as err:
            proc = subprocess.run(
                [DOVECOT, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=30,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"dovecot did not start: {errors.read_text()}{self.log}")
        self.started = True
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.what} did not come up: {self.log}")

    def stop(self) -> None:
        if not self.started:
            return
        pid_file = self.root / "run" / "master.pid"
        try:
            pid: int | None = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        subprocess.run(
            [DOVECOT, "-c", str(self.config), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None and pid_file.exists():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.started = False


class DovecotLmtp(DovecotProcess):
    what = "dovecot LMTP"

    def __init__(self, root: Path, users: tuple[str, ...] = ("known",)) -> None:
        super().__init__(root)
        self.users = users
        self.port = free_port()

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "lmtp"

    @property
    def unix_nexthop(self) -> str:
        return f"unix:{self.socket_path}"

    @property
    def inet_nexthop(self) -> str:
        return f"inet:[127.0.0.1]:{self.port}"

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"

    def delivered(self, user: str) -> list[bytes]:
        """The messages in `user`'s INBOX (new/ and cur/), oldest first."""
        files: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.maildir(user) / sub
            if folder.is_dir():
                files.extend(folder.iterdir())
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.name)]

    def _render(self, nobody: pwd.struct_passwd) -> str:
        mail = self.root / "mail"
        mail.mkdir(parents=True, exist_ok=True)
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        lines = [
            f"{u}:{{PLAIN}}unused:{nobody.pw_uid}:{nobody.pw_gid}::{mail / u}\n" for u in self.users
        ]
        (self.root / "users").write_text("".join(lines))
        return CONFIG.format(root=self.root, port=self.port, user="nobody", group="nogroup")

    def _ready(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self) -> DovecotLmtp:
        self._launch()
        return self
