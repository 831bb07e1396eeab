"""A private Postfix instance for the test suite (Debian postfix), on loopback only.

`PostfixInstance(root)` writes its own config_directory, queue_directory and data_directory
under `root` (a directory the postfix user can reach: `private_dir()`), listens only on
127.0.0.1 (ipv4; it also starts inside scripts/loopback-only's private network namespace),
never uses DNS (``smtp_dns_support_level = disabled``: next hops are ``[127.0.0.1]:port``),
runs chroot ``n`` everywhere and logs through its own postlogd to ``root/maillog``. It runs
the services a mail relay needs: smtpd on a free loopback port (`smtpd_port`) for
submission, pickup, cleanup, qmgr, trivial-rewrite, bounce/defer/trace, verify, flush,
proxymap, showq, error/retry, discard, anvil, scache, postlog, and Postfix's own smtp, relay
and lmtp clients.

Helpers: `set_main()` and `set_service()` change main.cf and master.cf (and ``postfix
reload`` when it runs; inside ``with changes():`` once, at the end); `program()` writes a
program for master.cf's command field, whose value is always ``daemon_directory/command``
(so it returns a path relative to daemon_directory), with this interpreter as its absolute
``#!`` line (master gives children no PATH); `submit()` sends a message through the
instance's smtpd and returns its queue id (`submit_batch()` many in one session),
`sendmail()` through ``sendmail -C``; `program_pids()` finds the running processes of a
program; `queue()` is ``postqueue -j``, `flush()` ``postqueue -f``, `wait_empty()` and
`wait_deferred()` wait on it; `log`, `log_mark()` and `wait_log()` read the maillog;
`sink()` starts a Postfix smtp-sink on a free loopback port (accepting and dumping with
``-d``, 4xx with ``-r RCPT``, 5xx with ``-f RCPT``). `stop()` stops master, every process
of the instance (by the ``MAIL_CONFIG`` master gives its children) and every sink.
`running_instance()` does it all around a ``with`` block (tests/postfix/conftest.py makes
it a module fixture). `unavailable()` says why this machine cannot run one (not root, no
postfix), so tests skip cleanly. tests/support/peers/postfix_smtpd.py builds its receiving
smtpd on this class.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tests.support.peers.aiosmtpd_server import free_port
from tests.support.peers.postfix_sink import SMTP_SINK, SmtpSink

POSTFIX: Final = "/usr/sbin/postfix"
POSTCONF: Final = "/usr/sbin/postconf"
POSTQUEUE: Final = "/usr/sbin/postqueue"
SENDMAIL: Final = "/usr/sbin/sendmail"
LOOPBACK: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parents[2]

# name -> "type private unpriv chroot wakeup maxproc command args" (chroot n everywhere).
SERVICES: Final[Mapping[str, str]] = {
    "pickup": "unix n - n 60 1 pickup",
    "cleanup": "unix n - n - 0 cleanup",
    "qmgr": "unix n - n 300 1 qmgr",
    "rewrite": "unix - - n - - trivial-rewrite",
    "bounce": "unix - - n - 0 bounce",
    "defer": "unix - - n - 0 bounce",
    "trace": "unix - - n - 0 bounce",
    "verify": "unix - - n - 1 verify",
    "flush": "unix n - n 1000? 0 flush",
    "proxymap": "unix - - n - - proxymap",
    "showq": "unix n - n - - showq",
    "error": "unix - - n - - error",
    "retry": "unix - - n - - error",
    "discard": "unix - - n - - discard",
    "anvil": "unix - - n - 1 anvil",
    "scache": "unix - - n - 1 scache",
    "postlog": "unix-dgram n - n - 1 postlogd",
    "smtp": "unix - - n - - smtp",
    "relay": "unix - - n - - smtp",
    "lmtp": "unix - - n - - lmtp",
}


def unavailable() -> str:
    """Empty when this machine can run a private Postfix instance; else why not."""
    for program in (POSTFIX, POSTCONF, POSTQUEUE, SENDMAIL, SMTP_SINK):
        if not os.path.exists(program):
            return f"{program} not installed (Debian package postfix; `make peers`)"
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


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def processes_with_env(assignment: str) -> list[int]:
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


def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((LOOPBACK, port)) == 0


def _run(args: Sequence[str], timeout: float = 60, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        list(args),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {proc.returncode}: {output.strip()}")
    return output


def _transaction(
    s: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    content: bytes,
    mail_options: Sequence[str] = (),
    rcpt_options: Sequence[str] = (),
) -> str:
    """One MAIL/RCPT/DATA transaction on an open session; the queue id smtpd replied."""
    code, reply = s.mail(sender, list(mail_options))
    if code != 250:
        raise RuntimeError(f"MAIL FROM: {code} {reply!r}")
    for recipient in recipients:
        code, reply = s.rcpt(recipient, list(rcpt_options))
        if code not in (250, 251):
            raise RuntimeError(f"RCPT TO:<{recipient}>: {code} {reply!r}")
    code, reply = s.data(content)
    found = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
    if code != 250 or not found:
        raise RuntimeError(f"DATA: {code} {reply!r}")
    return found.group(1).decode()


def daemon_directory() -> str:
    """Where master(8) finds its programs (Postfix's compiled-in default)."""
    return _run([POSTCONF, "-d", "-h", "daemon_directory"]).strip()


class PostfixInstance:
    def __init__(
        self,
        root: Path,
        *,
        myhostname: str = "mta.test.local",
        main: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.config = root / "etc"
        self.spool = root / "spool"
        self.data = root / "data"
        self.bin = root / "bin"
        self.maillog = root / "maillog"
        self.myhostname = myhostname
        self.smtpd_port = free_port()
        self.daemon_directory = daemon_directory()
        self.main: dict[str, str] = {**self.base_main(), **(main or {})}
        self.services: dict[str, str] = {
            f"{LOOPBACK}:{self.smtpd_port}": "inet n - n - - smtpd",
            **SERVICES,
        }
        self.sinks: list[SmtpSink] = []
        self.running = False
        self._batching = 0

    # --- configuration --------------------------------------------------------------------
    def base_main(self) -> dict[str, str]:
        domain = self.myhostname.split(".", 1)[-1]
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "myhostname": self.myhostname,
            "mydomain": domain,
            "myorigin": domain,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtp_dns_support_level": "disabled",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            # A crashing agent stalls its service this long (default 60s).
            "service_throttle_time": "2s",
            "notify_classes": "",
            "delay_warning_time": "0",
            "in_flow_delay": "0",
            "smtpd_error_sleep_time": "0",
        }

    def main_cf(self) -> str:
        return "".join(f"{name} = {value}\n" for name, value in self.main.items())

    def master_cf(self) -> str:
        return "".join(f"{name} {line}\n" for name, line in self.services.items())

    def write_config(self) -> None:
        """main.cf and master.cf, dated two seconds back: Postfix reads a file only once it
        is a second old (dict_load_file: it pauses 300 ms at a time until then), which made
        every ``postfix`` command and every daemon started just after a change wait."""
        self.config.mkdir(parents=True, exist_ok=True)
        past = time.time() - 2
        for name, text in (("main.cf", self.main_cf()), ("master.cf", self.master_cf())):
            path = self.config / name
            path.write_text(text, encoding="utf-8")
            os.utime(path, (past, past))

    def set_main(self, settings: Mapping[str, str | None]) -> None:
        """Set main.cf parameters (None removes one); reload when running."""
        for name, value in settings.items():
            if value is None:
                self.main.pop(name, None)
            else:
                self.main[name] = value
        self._changed()

    def set_service(
        self,
        name: str,
        command: str,
        *args: str,
        kind: str = "unix",
        private: str = "-",
        unpriv: str = "-",
        wakeup: str = "-",
        maxproc: str = "-",
    ) -> None:
        """Add or replace a master.cf service (chroot n); reload when running. `args`
        are written as given: ``"-o", "{ name = a b }"`` keeps its grouping."""
        fields = [kind, private, unpriv, "n", wakeup, maxproc, command, *args]
        self.services[name] = " ".join(fields)
        self._changed()

    def remove_service(self, name: str) -> None:
        self.services.pop(name, None)
        self._changed()

    @contextlib.contextmanager
    def changes(self) -> Iterator[None]:
        """The set_main(), set_service() and remove_service() calls inside the block take
        effect together, with one reload at its end."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            self._changed()

    def _changed(self) -> None:
        if self._batching:
            return
        self.write_config()
        if self.running:
            self.reload()

    def program(self, name: str, entry: str) -> str:
        """Write ``bin/NAME``, a program that calls `entry` (``module:function``, its
        return value the exit status) under this Python, and return the master.cf command
        that runs it (a path relative to daemon_directory)."""
        module, _, function = entry.partition(":")
        self.bin.mkdir(parents=True, exist_ok=True)
        os.chmod(self.bin, 0o755)
        path = self.bin / name
        path.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            f"from {module} import {function}\n"
            f"sys.exit({function}())\n",
            encoding="utf-8",
        )
        path.chmod(0o755)
        return self.command(path)

    def command(self, path: Path | str) -> str:
        """master.cf's command field for an executable anywhere: relative to
        daemon_directory, since master runs ``daemon_directory/command``."""
        return os.path.relpath(path, self.daemon_directory)

    # --- running ----------------------------------------------------------------------------
    def postfix(self, *args: str, timeout: float = 60) -> str:
        try:
            return _run([POSTFIX, "-c", str(self.config), *args], timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log[-1500:]}") from None

    def launch(self) -> None:
        """Create the directories, write the configuration and ``postfix start`` (which
        creates the queue directories; no ``postfix check``: start checks what matters)."""
        for path in (self.config, self.spool, self.data):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        self.maillog.touch()
        self.write_config()
        self.postfix("start")
        self.running = True

    def start(self) -> PostfixInstance:
        """`launch()`, and wait until the smtpd listens."""
        self.launch()
        try:
            self.wait_until(lambda: listening(self.smtpd_port), "smtpd listening")
        except AssertionError:
            self.stop()
            raise
        return self

    def reload(self) -> None:
        """``postfix reload``, and wait until master has read the new configuration: it
        logs the reload first and then applies it, so wait for that too (the sockets of
        the unix services to be there and those of removed services gone)."""
        reloads = self.log.count("]: reload -- version ")
        self.postfix("reload")
        self.wait_until(
            lambda: self.log.count("]: reload -- version ") > reloads, "master's reload"
        )
        self.wait_until(self._sockets_match, "the sockets of master.cf's unix services")

    def _sockets_match(self) -> bool:
        """Each unix service of master.cf has its socket (``private/NAME``, or
        ``public/NAME`` when its private column is n), and no other socket is there."""
        wanted = set()
        for name, line in self.services.items():
            kind, private = line.split()[:2]
            if kind in ("unix", "unix-dgram"):
                wanted.add(f"{'public' if private == 'n' else 'private'}/{name}")
        present = set()
        for folder in ("private", "public"):
            with contextlib.suppress(OSError):
                for entry in (self.spool / folder).iterdir():
                    if entry.is_socket():
                        present.add(f"{folder}/{entry.name}")
        return present == wanted

    def master_pid(self) -> int | None:
        try:
            return int((self.spool / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop master and everything the instance started; never raises."""
        for sink in self.sinks:
            sink.stop()
        self.sinks.clear()
        if not self.running:
            return
        self.running = False
        pid = self.master_pid()
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.postfix("stop", timeout=30)
        deadline = time.monotonic() + 15
        while pid is not None and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None and alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        # Leftovers of this instance: master passes MAIL_CONFIG to every child it starts.
        for child in processes_with_env(f"MAIL_CONFIG={self.config}"):
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)

    def program_pids(self, name: str) -> list[int]:
        """The running processes of this instance started from `program(name, ...)`'s file
        (the kernel gives the interpreter the script's path as master exec'd it)."""
        script = str(self.bin / name)
        found = []
        for pid in processes_with_env(f"MAIL_CONFIG={self.config}"):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and os.path.normpath(os.fsdecode(argv[1])) == script and alive(pid):
                found.append(pid)
        return found

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- mail -------------------------------------------------------------------------------
    def submit(
        self,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
        *,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> str:
        """Send one message through the instance's smtpd; its queue id."""
        with self._smtp() as s:
            return _transaction(s, sender, recipients, content, mail_options, rcpt_options)

    def submit_batch(
        self, sender: str, messages: Sequence[tuple[Sequence[str], bytes]]
    ) -> list[str]:
        """Send (recipients, content) messages through the instance's smtpd in one session,
        one transaction each; their queue ids in order."""
        with self._smtp() as s:
            return [_transaction(s, sender, rcpts, content) for rcpts, content in messages]

    def _smtp(self) -> smtplib.SMTP:
        s = smtplib.SMTP(LOOPBACK, self.smtpd_port, local_hostname="client.test", timeout=30)
        s.ehlo()
        return s

    def sendmail(self, sender: str, recipients: Sequence[str], content: bytes) -> None:
        """``sendmail -C config -f SENDER -- RECIPIENTS`` (through pickup)."""
        _run([SENDMAIL, "-C", str(self.config), "-f", sender, "--", *recipients], stdin=content)

    def queue(self) -> list[dict[str, Any]]:
        """``postqueue -j``: one object per queued message."""
        output = _run([POSTQUEUE, "-c", str(self.config), "-j"])
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def flush(self) -> None:
        """``postqueue -f``: qmgr tries every queued message now, whatever its time stamp."""
        _run([POSTQUEUE, "-c", str(self.config), "-f"])

    def wait_empty(self, timeout: float = 30) -> None:
        self.wait_until(lambda: not self.queue(), "an empty queue", timeout)

    def wait_deferred(self, queue_id: str, timeout: float = 30) -> dict[str, Any]:
        """The ``postqueue -j`` entry of `queue_id` once it is deferred with a reason for
        every recipient."""
        found: list[dict[str, Any]] = []

        def deferred() -> bool:
            found[:] = [
                m
                for m in self.queue()
                if m["queue_id"] == queue_id
                and m["queue_name"] == "deferred"
                and all(r.get("delay_reason") for r in m["recipients"])
            ]
            return bool(found)

        self.wait_until(deferred, f"{queue_id} deferred", timeout)
        return found[0]

    def sink(self, *options: str) -> SmtpSink:
        """A started smtp-sink on a free loopback port, stopped with the instance. With
        ``-d``, give a directory under `root` (made writable for the sink's user)."""
        if "-d" in options:
            dump = Path(options[options.index("-d") + 1]).parent
            dump.mkdir(parents=True, exist_ok=True)
            os.chmod(dump, 0o1777)
        sink = SmtpSink(*options).start()
        self.sinks.append(sink)
        return sink

    # --- the log ----------------------------------------------------------------------------
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
        found: list[re.Match[str]] = []

        def matched() -> bool:
            match = regex.search(self.log, since)
            if match:
                found.append(match)
            return match is not None

        self.wait_until(matched, f"{pattern!r} in the Postfix log", timeout)
        return found[0]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll `condition()` (a generous ceiling: only "it happened", never how fast)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout} s; the log:\n{self.log[-3000:]}")
            time.sleep(0.05)


@contextlib.contextmanager
def running_instance(
    prefix: str = "mailcarrier-postfix-", **kwargs: Any
) -> Iterator[PostfixInstance]:
    """A started instance in a fresh private directory; stopped and removed afterwards,
    whatever happened inside."""
    root = private_dir(prefix)
    instance = PostfixInstance(root, **kwargs)
    try:
        yield instance.start()
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)
