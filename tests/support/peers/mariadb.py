"""A private MariaDB server (Debian mariadb-server) in a temporary directory.

`MariaDb(root).start()` runs mariadb-install-db and mariadbd as ``nobody`` when the tests run
as root (``--user``), listening on 127.0.0.1 at a free port and on a UNIX-domain socket in
``root``, with no grant tables skipped: `sql()` runs statements as root over the socket
(unix_socket authentication), and the tests make password users with it. `stop()` stops it
(SIGTERM, then SIGKILL) and is safe to call twice. `available()` says whether the binaries
are installed; tests skip otherwise.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.peers.aiosmtpd_server import free_port

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"


def available() -> bool:
    return all(os.path.exists(p) for p in (MARIADBD, INSTALL_DB, CLIENT))


class MariaDb:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.socket = root / "mysqld.sock"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    def start(self) -> MariaDb:
        os.chmod(self.root, 0o777)
        self.data.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        init = subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", f"--user={self.user}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {init.stderr}{init.stdout}")
        self.launch()
        return self

    def launch(self) -> None:
        log = self.root / "mariadb.log"
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.data}", f"--user={self.user}",
             f"--socket={self.socket}", "--bind-address=127.0.0.1", f"--port={self.port}",
             f"--pid-file={self.root / 'mariadbd.pid'}", f"--log-error={log}",
             "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--max-connections=40"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"mariadbd exited: {text}")
            done = subprocess.run(
                [CLIENT, "--no-defaults", f"--socket={self.socket}", "-u", "root",
                 "-e", "SELECT 1"],
                capture_output=True, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("mariadbd did not come up")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def sql(self, text: str, database: str = "") -> str:
        args = [CLIENT, "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N", "-B"]
        if database:
            args.append(database)
        done = subprocess.run(
            [*args, "-e", text], capture_output=True, text=True, check=False, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed: {done.stderr}")
        return done.stdout
