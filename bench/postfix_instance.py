"""A private, throw-away Postfix instance for the queue-drain benchmarks (drain, native).

`PostfixInstance(root, relay_port)` writes its own config_directory (main.cf, master.cf),
queue_directory and data_directory under `root`, listens only on loopback, and runs only the
services a relay needs: smtpd (for injection, on a loopback port), pickup, cleanup, qmgr,
trivial-rewrite, bounce/defer/trace, smtp (maxproc 20), scache, showq, flush, proxymap,
anvil, error/retry and postlogd (maillog_file in the instance directory). Messages are
injected with smtp-source through the instance's smtpd while a header_checks rule puts every
one on hold; `release()` then moves them to the deferred queue (``postsuper -H ALL``) and
`flush()` asks qmgr to deliver everything now (``postqueue -f``), so the timed part (from
`flush()` to an empty queue) is only the queue manager and smtp(8) draining the queue.
`set_smtp_command()` puts another program behind the ``smtp`` service (mailcarrier-smtp, for
bench/bench_native.py) and reloads; `reload()` waits until master has read its configuration
again; `master_pid()` finds master, whose children are the agents. `stop()` stops the
instance, also when the `with` block ends. Everything runs as root (Postfix requires it).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Final

from bench.common import LOOPBACK, RECIPIENT, SENDER, SMTP_SOURCE, free_port, run_bounded

POSTFIX: Final = "/usr/sbin/postfix"
POSTSUPER: Final = "/usr/sbin/postsuper"
POSTQUEUE: Final = "/usr/sbin/postqueue"
QUEUES: Final = ("maildrop", "incoming", "active", "deferred", "hold")

MASTER_CF: Final = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{smtpd_endpoint} inet n - n - 20 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       20      {smtp_command}
relay     unix  -       -       n       -       20      smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    def __init__(self, root: Path, relay_port: int, *, concurrency: int = 20) -> None:
        self.root = root
        self.config = root / "etc"
        self.queue = root / "spool"
        self.data = root / "data"
        self.maillog = root / "maillog"
        self.relay_port = relay_port
        self.concurrency = concurrency
        self.smtpd_port = free_port()
        self.smtp_command = "smtp"
        self.running = False

    # --- set-up -------------------------------------------------------------------------
    def main_cf(self) -> str:
        relay = f"[{LOOPBACK}]:{self.relay_port}"
        return "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {self.queue}",
                f"data_directory = {self.data}",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "inet_interfaces = loopback-only",
                "inet_protocols = ipv4",
                "myhostname = bench.localdomain",
                "mydomain = localdomain",
                "mydestination =",
                "mynetworks = 127.0.0.0/8",
                "local_recipient_maps =",
                "alias_maps =",
                "alias_database =",
                "biff = no",
                f"maillog_file = {self.maillog}",
                f"maillog_file_prefixes = {self.root}",
                f"relayhost = {relay}",
                f"default_destination_concurrency_limit = {self.concurrency}",
                f"smtp_destination_concurrency_limit = {self.concurrency}",
                "default_process_limit = 100",
                "smtp_connection_cache_on_demand = yes",
                f"smtp_connection_cache_destinations = {relay}",
                "in_flow_delay = 0",
                f"header_checks = regexp:{self.config}/hold_checks",
                "smtpd_relay_restrictions = permit_mynetworks, reject",
                "smtp_tls_security_level = none",
                "smtpd_tls_security_level = none",
                "",
            ]
        )

    def create(self) -> None:
        for path in (self.config, self.queue, self.data):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        (self.config / "main.cf").write_text(self.main_cf(), encoding="ascii")
        self.write_master_cf()
        # Every injected message waits on hold until release(): the drain alone is timed.
        (self.config / "hold_checks").write_text("/^Subject:/ HOLD benchmark\n", encoding="ascii")
        self.maillog.touch()
        os.chown(self.data, _uid("postfix"), -1)
        self._postfix("check")

    def write_master_cf(self) -> None:
        endpoint = f"{LOOPBACK}:{self.smtpd_port}"
        text = MASTER_CF.format(smtpd_endpoint=endpoint, smtp_command=self.smtp_command)
        (self.config / "master.cf").write_text(text, encoding="ascii")

    def _postfix(self, *args: str, timeout: float = 60) -> str:
        try:
            _, output = run_bounded([POSTFIX, "-c", str(self.config), *args], timeout)
        except RuntimeError as exc:
            log = self.maillog.read_text(errors="replace") if self.maillog.exists() else ""
            raise RuntimeError(f"{exc} {log[-800:]}") from exc
        return output

    def start(self) -> None:
        self._postfix("start")
        self.running = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            import socket

            with socket.socket() as s:
                if s.connect_ex((LOOPBACK, self.smtpd_port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("the Postfix instance's smtpd did not start")

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        try:
            self._postfix("stop", timeout=30)
        except RuntimeError:
            pid = self.queue / "pid" / "master.pid"
            if pid.exists():
                with contextlib.suppress(ValueError, OSError):
                    os.kill(int(pid.read_text().split()[0]), 9)
        # Give master's children a moment to go before the directory is removed.
        for _ in range(50):
            if not (self.queue / "pid" / "master.pid").exists():
                break
            time.sleep(0.1)

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def reload(self, timeout: float = 30) -> None:
        """``postfix reload``, and wait until master says it has read the configuration."""
        reloads = self.maillog.read_text(errors="replace").count("]: reload -- version ")
        self._postfix("reload")
        deadline = time.monotonic() + timeout
        while self.maillog.read_text(errors="replace").count("]: reload -- version ") <= reloads:
            if time.monotonic() > deadline:
                raise RuntimeError(f"master did not reload within {timeout:.0f} s")
            time.sleep(0.05)

    def set_smtp_command(self, command: str) -> None:
        """Make `command` (relative to daemon_directory, as master.cf's command field) the
        program of the ``smtp`` service, every other setting unchanged; reload if running."""
        self.smtp_command = command
        self.write_master_cf()
        if self.running:
            self.reload()

    def __enter__(self) -> PostfixInstance:
        self.create()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the benchmark steps ---------------------------------------------------------------
    def inject(self, messages: int, length: int, *, timeout: float = 600) -> None:
        """Queue `messages` on hold through the instance's smtpd (smtp-source, 20 sessions)."""
        args = [SMTP_SOURCE, "-4", "-d", "-s", "20", "-m", str(messages), "-l", str(length)]
        args += ["-S", "benchmark", "-M", "localhost", "-f", SENDER, "-t", RECIPIENT]
        run_bounded([*args, f"{LOOPBACK}:{self.smtpd_port}"], timeout)
        deadline = time.monotonic() + timeout
        while self.count("hold") < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count('hold')} of {messages} messages on hold")
            time.sleep(0.2)

    def release(self) -> None:
        """Move every held message to the deferred queue (not yet delivered)."""
        run_bounded([POSTSUPER, "-c", str(self.config), "-H", "ALL"], 120)

    def flush(self) -> None:
        """Ask qmgr to deliver the deferred queue now (``postqueue -f``)."""
        run_bounded([POSTQUEUE, "-c", str(self.config), "-f"], 60)

    def count(self, *queues: str) -> int:
        """Queue files in the named queues (all of them by default)."""
        total = 0
        for name in queues or QUEUES:
            for _, _, files in os.walk(self.queue / name):
                total += len(files)
        return total

    def empty(self) -> bool:
        """No message in any queue; stops at the first file (cheaper than `count()` while
        thousands are queued: the benchmark must not compete with what it measures)."""
        for name in QUEUES:
            for _, _, files in os.walk(self.queue / name):
                if files:
                    return False
        return True

    def wait_empty(self, timeout: float, interval: float = 0.05) -> float:
        """Seconds until no message is left in any queue."""
        start = time.perf_counter()
        while not self.empty():
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{self.count()} messages still queued after {timeout:.0f} s")
            time.sleep(interval)
        return time.perf_counter() - start

    def delivered(self) -> int:
        """Lines with status=sent in the instance's maillog."""
        text = self.maillog.read_text(encoding="utf-8", errors="replace")
        return text.count(" status=sent ")


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def postfix_available() -> str:
    """Empty when this machine can run a private Postfix instance; else why not."""
    for program in (POSTFIX, POSTSUPER, POSTQUEUE):
        if not os.path.exists(program):
            return f"{program} not installed (Debian package postfix; `make peers`)"
    if os.geteuid() != 0:
        return "a Postfix instance must be started as root"
    try:
        _uid("postfix")
    except KeyError:
        return "no postfix user (the Debian package creates it)"
    return ""
