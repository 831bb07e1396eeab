"""A private PostgreSQL server (Debian postgresql) in a temporary directory.

`PgServer(root).start()` runs initdb and pg_ctl as a non-root user (``nobody`` when the tests
run as root: PostgreSQL refuses to run as root), listening on 127.0.0.1 at a free port and on
a UNIX-domain socket in ``root/run``, with password logins (scram-sha-256) for the roles the
tests make with `sql()`. `stop()` stops it (immediate mode) and is safe to call twice.
`available()` says whether this machine has the server binaries; tests skip otherwise.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.peers.aiosmtpd_server import free_port

SUPERUSER = "mc"


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def available() -> bool:
    return bindir() is not None and shutil.which("psql") is not None


class PgServer:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.run = root / "run"
        self.port = port or free_port()
        self.started = False
        self.user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

    def _as_user(
        self, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        ids = self.user
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            user=ids.pw_uid if ids else None,
            group=ids.pw_gid if ids else None,
            extra_groups=[] if ids else None,
        )

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def start(self) -> PgServer:
        tools = bindir()
        assert tools is not None
        os.chmod(self.root, 0o755)
        self.run.mkdir(exist_ok=True)
        self._chown(self.run)
        self.data.mkdir(exist_ok=True)
        self._chown(self.data)
        pwfile = self.root / "pw"
        pwfile.write_text("superpw\n")
        self._chown(pwfile)
        init = self._as_user(
            [str(tools / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
             "-A", "scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"],
            env={"PATH": os.environ.get("PATH", "")},
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        self.restart_server()
        return self

    def restart_server(self) -> None:
        tools = bindir()
        assert tools is not None
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.run} -c fsync=off -c max_connections=40 "
            "-c shared_buffers=16MB"
        )
        started = self._as_user(
            [str(tools / "pg_ctl"), "-D", str(self.data), "-l", str(self.run / "log"),
             "-o", options, "-w", "-t", "60", "start"],
        )  # fmt: skip
        if started.returncode != 0:
            log = (
                (self.run / "log").read_text(errors="replace")
                if (self.run / "log").exists()
                else ""
            )
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}{log}")
        self.started = True

    def stop(self) -> None:
        if not self.started:
            return
        tools = bindir()
        assert tools is not None
        self._as_user(
            [str(tools / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        )
        self.started = False

    def pid(self) -> int:
        """The postmaster's process id (the first line of postmaster.pid)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def sql(self, text: str, database: str = "postgres") -> str:
        """Run SQL as the superuser (psql over the UNIX-domain socket); its output."""
        env = dict(os.environ, PGPASSWORD="superpw")
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.run), "-p",
             str(self.port), "-U", SUPERUSER, "-d", database, "-A", "-t", "-c", text],
            capture_output=True, text=True, env=env, check=False, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def wait_stopped(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.05)
