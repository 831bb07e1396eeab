"""A private Postfix instance (Debian postfix) whose smtpd is a real receiving server.

`PostfixSmtpd(root, ...)` is tests/support/postfix.py's `PostfixInstance` (its own
config_directory, queue_directory and data_directory under `root`, a directory the postfix
user can reach, see `private_dir()`; 127.0.0.1 only; postlogd logging to ``root/maillog``;
stopped with every process it started) set up to receive: smtpd on a free high port, a
second smtpd (``plain_port``) without TLS so AUTH may be offered in the clear, tlsmgr, and
``discard`` as the default and relay transport, so accepted mail is dropped. Optional: a TLS
certificate (``smtpd_tls_security_level = may``) and SASL through a Dovecot auth socket.
Postfix refuses to run unprivileged: `unavailable()` says why this machine cannot, so tests
skip cleanly.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Final

from tests.support import postfix
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.postfix import LOOPBACK, PostfixInstance, listening, private_dir

__all__ = ["LOOPBACK", "PostfixSmtpd", "private_dir", "remove", "unavailable"]

SMTPD: Final = "/usr/lib/postfix/sbin/smtpd"


def unavailable() -> str:
    """Empty when this machine can run a private Postfix instance; else why not."""
    if not os.path.exists(SMTPD):
        return f"{SMTPD} not installed (Debian package postfix)"
    return postfix.unavailable()


class PostfixSmtpd(PostfixInstance):
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
        super().__init__(root, myhostname=myhostname)
        self.port = self.smtpd_port
        self.plain_port = free_port()
        while self.plain_port == self.port:
            self.plain_port = free_port()
        self.services[f"{LOOPBACK}:{self.port}"] = "inet n - n - 10 smtpd"
        self.services[f"{LOOPBACK}:{self.plain_port}"] = (
            "inet n - n - 10 smtpd -o smtpd_tls_security_level=none -o smtpd_tls_auth_only=no"
        )
        self.services["tlsmgr"] = "unix - - n 1000? 1 tlsmgr"
        self.main.update(_receiving(cert_file, key_file, sasl_path))
        for line in extra:  # more main.cf lines ("name = value")
            name, _, value = line.partition("=")
            self.main[name.strip()] = value.strip()

    # --- addresses ------------------------------------------------------------------------
    @property
    def nexthop(self) -> str:
        """The smtpd with STARTTLS (when a certificate was given) and TLS-only AUTH."""
        return f"[{LOOPBACK}]:{self.port}"

    @property
    def plain_nexthop(self) -> str:
        """The smtpd without STARTTLS, offering AUTH in the clear."""
        return f"[{LOOPBACK}]:{self.plain_port}"

    def start(self) -> PostfixSmtpd:
        self.launch()
        deadline = time.monotonic() + 30
        probes = 0  # each successful probe is an smtpd session in the log
        while time.monotonic() < deadline:
            up = [listening(port) for port in (self.port, self.plain_port)]
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

    def __enter__(self) -> PostfixSmtpd:
        return self.start()


def _receiving(cert_file: str, key_file: str, sasl_path: str) -> dict[str, str]:
    """main.cf of a receiving server that drops what it accepts."""
    main = {
        "default_transport": "discard",
        "relay_transport": "discard",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject",
        "smtpd_soft_error_limit": "100",
        "smtpd_hard_error_limit": "100",
    }
    if cert_file:
        main.update(
            {
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": cert_file,
                "smtpd_tls_key_file": key_file,
                "smtpd_tls_loglevel": "1",
                "smtpd_tls_received_header": "yes",
            }
        )
    if sasl_path:
        main.update(
            {
                "smtpd_sasl_auth_enable": "yes",
                "smtpd_sasl_type": "dovecot",
                "smtpd_sasl_path": sasl_path,
                "smtpd_sasl_security_options": "noanonymous",
                "smtpd_sasl_tls_security_options": "noanonymous",
                "smtpd_tls_auth_only": "yes" if cert_file else "no",
            }
        )
    return main


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
