"""`make demo`: mailcarrier delivering to real servers on this machine, end to end.

Starts an SMTP server (aiosmtpd) on 127.0.0.1 and an LMTP server on a unix socket. First the
main job, through the durable queue: `mailcarrier sendmail` queues a message (one recipient
will be rejected), `mailcarrier queue list` shows it, `mailcarrier run --once` delivers it
(and the bounce notice for the rejected recipient) and the queue ends empty. Then
`mailcarrier deliver` sends straight to the LMTP server (one reply per recipient) and to a
port where nobody listens (a deferral, exit 75). Last, the one-call Python API,
`mailcarrier.send_sync(...)`, sends an `EmailMessage` to the SMTP server: the code is printed
as a shell can run it (the Python of the demo's venv, the code in a here-document), then run
exactly as printed. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP

HERE = Path(__file__).resolve().parent
MAILCARRIER = shutil.which("mailcarrier", path=str(Path(sys.executable).parent)) or "mailcarrier"

MESSAGE = b"""From: Demo Sender <sender@example.org>
To: alice@example.net, bob@example.net
Subject: mailcarrier demo

Hello from mailcarrier.
.This line starts with a dot: it is dot-stuffed on the wire and restored by the server.
"""


class SmtpHandler:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], int]] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), len(envelope.original_content))
        )
        return "250 2.0.0 Ok: queued as DEMO%d" % len(self.received)


class LmtpHandler(SmtpHandler):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), len(envelope.original_content))
        )
        # RFC 2033: one reply per accepted recipient, in RCPT order.
        return "\r\n".join(f"250 2.0.0 <{r}> delivered" for r in envelope.rcpt_tos)


class LmtpController(UnixSocketController):
    def factory(self) -> LMTP:
        return LMTP(self.handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cmd(
    title: str, args: list[str], stdin: bytes | None = None, stdin_file: Path | None = None
) -> None:
    """Run a command and show it as it can be pasted into a shell (quoted, with the real
    file names) while the demo's servers run."""
    print(f"\n=== {title}")
    cmd = [MAILCARRIER, *args]
    redirect = f" < {shlex.quote(str(stdin_file))}" if stdin_file is not None else ""
    print("$ " + shlex.join(cmd) + redirect)
    if stdin_file is not None:
        stdin = stdin_file.read_bytes()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    if err:
        print("--- log (stderr)")
        sys.stdout.write(err)
    if out:
        print("--- output")
        for line in out.splitlines():
            try:
                print(json.dumps(json.loads(line), indent=2))
            except ValueError:
                print(line)
    print(f"--- exit code {proc.returncode}")


def run_deliver(title: str, args: list[str], message: Path) -> None:
    run_cmd(title, ["deliver", *args, "--json", str(message)])


SEND_CODE = """\
import mailcarrier
from email.message import EmailMessage

msg = EmailMessage()
msg["From"], msg["To"] = "sender@example.org", "alice@example.net, bob@example.net"
msg["Subject"] = "Grüße from mailcarrier.send_sync()"
msg.set_content("Hello from the one-call API.\\n")
# tls="may": the demo's server has no TLS; the default, "verify", insists on it.
result = mailcarrier.send_sync(msg, host="[127.0.0.1]:{port}", tls="may")
for r in result.recipients:
    print(r.address, r.status, r.dsn, r.diagnostic)
"""


def run_python(title: str, code: str) -> None:
    """Show `code` as a shell runs it (this Python, the code in a here-document), run it."""
    print(f"\n=== {title}")
    print(f"$ {shlex.quote(sys.executable)} - <<'EOF'\n{code}EOF")
    proc = subprocess.run(
        [sys.executable, "-"], input=code.encode(), capture_output=True, timeout=120, check=False
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    if err:
        print("--- stderr")
        sys.stdout.write(err)
    print("--- output")
    sys.stdout.write(out)
    print(f"--- exit code {proc.returncode}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mailcarrier-demo-") as tmp:
        message = Path(tmp) / "message.eml"
        message.write_bytes(MESSAGE)
        smtp = SmtpHandler()
        port = free_port()
        smtp_server = Controller(smtp, hostname="127.0.0.1", port=port)
        lmtp = LmtpHandler()
        lmtp_path = os.path.join(tmp, "lmtp.sock")
        lmtp_server = LmtpController(lmtp, unix_socket=lmtp_path)
        smtp_server.start()
        lmtp_server.start()
        try:
            print(f"SMTP server (aiosmtpd) on 127.0.0.1:{port}; LMTP server on unix:{lmtp_path}")
            queue = [
                "-o", f"queue_directory={tmp}/queue",
                "-o", f"relayhost=[127.0.0.1]:{port}",
                "-o", "myorigin=example.org",
            ]  # fmt: skip
            run_cmd(
                "Queue a message: alice and bob will be accepted, nobody rejected",
                [*queue, "sendmail", "-f", "sender@example.org",
                 "alice@example.net", "bob@example.net", "nobody@example.net"],
                stdin_file=message,
            )  # fmt: skip
            run_cmd("The queue, like mailq", [*queue, "queue", "list"])
            run_cmd(
                "Deliver what is deliverable now (the bounce notice for nobody is queued "
                "and delivered to the sender too)",
                [*queue, "run", "--once"],
            )
            run_cmd("The queue is empty again", [*queue, "queue", "list"])
            run_deliver(
                "LMTP over a unix socket, no queue: one reply per recipient after the dot",
                ["--transport", "lmtp", "--nexthop", f"unix:{lmtp_path}",
                 "-f", "sender@example.org", "-r", "alice@example.net", "-r", "bob@example.net"],
                message,
            )  # fmt: skip
            run_deliver(
                "Nobody listening: the recipient is deferred (exit 75)",
                ["--nexthop", f"[127.0.0.1]:{free_port()}", "-f", "", "-r", "carol@example.net"],
                message,
            )
            run_python(
                "The one-call Python API: mailcarrier.send_sync() (await mailcarrier.send() "
                "in async code), envelope from the headers",
                SEND_CODE.format(port=port),
            )
        finally:
            smtp_server.stop()
            lmtp_server.stop()
        print("\n=== What the servers received")
        for name, handler in (("SMTP", smtp), ("LMTP", lmtp)):
            for sender, rcpts, size in handler.received:
                print(f"{name}: from=<{sender}> to={rcpts} size={size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
