"""`make demo`: mailcarrier delivering to real servers on this machine, end to end.

Starts an SMTP server (aiosmtpd) on 127.0.0.1 and an LMTP server on a unix socket, then runs
the real `mailcarrier deliver` command against each: sample messages with several
recipients, one of which the server rejects, so the log lines, the JSON results and the exit
codes show sent and bounced outcomes. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
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


def run_deliver(title: str, args: list[str], message: Path) -> None:
    print(f"\n=== {title}")
    cmd = [MAILCARRIER, "deliver", *args, "--json", str(message)]
    print("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    print("--- log (stderr)")
    sys.stdout.write(proc.stderr)
    print("--- JSON result (stdout)")
    for line in proc.stdout.splitlines():
        print(json.dumps(json.loads(line), indent=2))
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
            run_deliver(
                "SMTP: two recipients accepted, one rejected (exit 69: a recipient bounced)",
                [
                    "--nexthop",
                    f"[127.0.0.1]:{port}",
                    "-f",
                    "sender@example.org",
                    "-r",
                    "alice@example.net",
                    "-r",
                    "bob@example.net",
                    "-r",
                    "nobody@example.net",
                ],
                message,
            )
            run_deliver(
                "LMTP over a unix socket: one reply per recipient after the final dot (exit 0)",
                [
                    "--transport",
                    "lmtp",
                    "--nexthop",
                    f"unix:{lmtp_path}",
                    "-f",
                    "sender@example.org",
                    "-r",
                    "alice@example.net",
                    "-r",
                    "bob@example.net",
                ],
                message,
            )
            run_deliver(
                "Nobody listening: the recipient is deferred (exit 75)",
                ["--nexthop", f"[127.0.0.1]:{free_port()}", "-f", "", "-r", "carol@example.net"],
                message,
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
