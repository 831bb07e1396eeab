"""A private Postfix instance (Debian postfix) whose smtpd is a real receiving server.

`PostfixSmtpd(root, ...)` writes its own config_directory, queue_directory and data_directory
under `root` (a directory the postfix user can reach, see `private_dir()`), listens only on
127.0.0.1 (ipv4), and runs only what a receiving server needs: smtpd on a free high port, a
second smtpd (``plain_port``) without TLS so AUTH may be offered in the clear, pickup,
cleanup, qmgr, trivial-rewrite, bounce/defer/trace, tlsmgr, anvil, postlogd (``maillog_file``
in `root`, there is no syslog here) and ``discard`` as the default and relay transport, so
accepted mail is dropped. Optional: a TLS certificate (``smtpd_tls_security_level = may``)
and SASL through a Dovecot auth socket. Same approach as bench/postfix_instance.py (the
benchmark's private relay instance). Postfix refuses to run unprivileged: `unavailable()` says
why this machine cannot, so tests skip cleanly.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from tests.support.peers.aiosmtpd_server import free_port

POSTFIX: Final = "/usr/sbin/postfix"
SMTPD: Final = "/usr/lib/postfix/sbin/smtpd"
LOOPBACK: Final = "127.0.0.1"

MASTER_CF: Final = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{loopback}:{port} inet n - n - 10 smtpd
{loopback}:{plain_port} inet n - n - 10 smtpd
  -o smtpd_tls_security_level=none
  -o smtpd_tls_auth_only=no
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str:
    """Empty when this machine can run a private Postfix instance; else why not."""
    for program in (POSTFIX, SMTPD):
        if not os.path.exists(program):
            return f"{program} not installed (Debian package postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (the Debian package creates it)"
    return ""


def private_dir(prefix: str) -> Path:
    """A fresh directory directly under /tmp: pytest's tmp_path sits below 0700 directories
    that the postfix user (and Dovecot's unprivileged processes) cannot traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


class PostfixSmtpd:
    def __init__(
        self,
        root: Path,
        *,
        cert_file: str = "",
        key_file: str = "",
        sasl_path: str = "",
        myhostname: str = "mx.postfix.test",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.config = root / "etc"
        self.queue = root / "spool"
        self.data = root / "data"
        self.maillog = root / "maillog"
        self.cert_file = cert_file
        self.key_file = key_file
        self.sasl_path = sasl_path
        self.myhostname = myhostname
        self.extra = extra  # more main.cf lines ("name = value")
        self.port = free_port()
        self.plain_port = free_port()
        while self.plain_port == self.port:
            self.plain_port = free_port()
        self.running = False

    # --- addresses ------------------------------------------------------------------------
    @property
    def nexthop(self) -> str:
        """The smtpd with STARTTLS (when a certificate was given) and TLS-only AUTH."""
        return f"[{LOOPBACK}]:{self.port}"

    @property
    def plain_nexthop(self) -> str:
        """The smtpd without STARTTLS, offering AUTH in the clear."""
        return f"[{LOOPBACK}]:{self.plain_port}"

    # --- set-up ---------------------------------------------------------------------------
    def main_cf(self) -> str:
        lines = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue}",
            f"data_directory = {self.data}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            f"myhostname = {self.myhostname}",
            "mydomain = postfix.test",
            "myorigin = postfix.test",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "biff = no",
            "default_transport = discard",
            "relay_transport = discard",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject",
            f"maillog_file = {self.maillog}",
            f"maillog_file_prefixes = {self.root}",
            "in_flow_delay = 0",
            "smtpd_error_sleep_time = 0",
            "smtpd_soft_error_limit = 100",
            "smtpd_hard_error_limit = 100",
            "smtp_tls_security_level = none",
        ]
        if self.cert_file:
            lines += [
                "smtpd_tls_security_level = may",
                f"smtpd_tls_cert_file = {self.cert_file}",
                f"smtpd_tls_key_file = {self.key_file}",
                "smtpd_tls_loglevel = 1",
                "smtpd_tls_received_header = yes",
            ]
        else:
            lines.append("smtpd_tls_security_level = none")
        if self.sasl_path:
            lines += [
                "smtpd_sasl_auth_enable = yes",
                "smtpd_sasl_type = dovecot",
                f"smtpd_sasl_path = {self.sasl_path}",
                "smtpd_sasl_security_options = noanonymous",
                "smtpd_sasl_tls_security_options = noanonymous",
                f"smtpd_tls_auth_only = {'yes' if self.cert_file else 'no'}",
            ]
        return "\n".join([*lines, *self.extra, ""])

    def create(self) -> None:
        for path in (self.config, self.queue, self.data):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        (self.config / "main.cf").write_text(self.main_cf(), encoding="ascii")
        (self.config / "master.cf").write_text(
            MASTER_CF.format(loopback=LOOPBACK, port=self.port, plain_port=self.plain_port),
            encoding="ascii",
        )
        self.maillog.touch()
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        self._postfix("check")

    def _postfix(self, *args: str, timeout: float = 60) -> str:
        proc = subprocess.run(
            [POSTFIX, "-c", str(self.config), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        output = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {output} {self.log[-1500:]}")
        return output

    def start(self) -> PostfixSmtpd:
        self.create()
        self._postfix("start")
        self.running = True
        deadline = time.monotonic() + 30
        probes = 0  # each successful probe is an smtpd session in the log
        while time.monotonic() < deadline:
            up = [_listening(port) for port in (self.port, self.plain_port)]
            probes += sum(up)
            if all(up):
                # Let the probes' sessions reach the log, so that tests see only their own.
                while time.monotonic() < deadline:
                    if self.log.count("]: disconnect from ") >= probes:
                        return self
                    time.sleep(0.05)
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the private Postfix smtpd did not start: {self.log[-1500:]}")

    def master_pid(self) -> int | None:
        path = self.queue / "pid" / "master.pid"
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        pid = self.master_pid()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._postfix("stop", timeout=30)
        deadline = time.monotonic() + 15
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        # Leftovers of this instance: master passes MAIL_CONFIG to every child it starts.
        for child in _processes_with_env(f"MAIL_CONFIG={self.config}"):
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)

    def __enter__(self) -> PostfixSmtpd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the log --------------------------------------------------------------------------
    @property
    def log(self) -> str:
        try:
            return self.maillog.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_mark(self) -> int:
        """The log's current length: pass it to `wait_log` to see only what follows."""
        return len(self.log)

    def wait_log(self, pattern: str, since: int = 0, timeout: float = 30) -> re.Match[str]:
        """The first match of the regular expression `pattern` in the log after `since`
        (postlogd writes asynchronously: wait for it)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log, since)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} in the Postfix log after {timeout} s:\n{self.log[since:]}"
                )
            time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((LOOPBACK, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _processes_with_env(assignment: str) -> list[int]:
    """Processes whose environment holds exactly `assignment` (NAME=value)."""
    found = []
    wanted = assignment.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            found.append(int(entry.name))
    return found


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
