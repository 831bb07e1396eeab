"""What ``mailcarrier tlsrpt send --postfix`` needs of a Postfix instance: the settings the
native agent runs with, and Postfix's sendmail(1) to take the TLS reports that go by mail.

In Postfix-native mode mailcarrier-smtp counts TLS attempts in Postfix's ``data_directory``
but no ``mailcarrier run`` exists to send the reports, and mailcarrier's own queue is not
delivered by anyone. A Postfix operator expects mail made on the host to enter Postfix's
queue, through sendmail(1) (``sendmail_path``): then it is cleaned up, passed to the
milters, logged, shown by mailq, retried by qmgr(8) and delivered by the smtp service, which
is mailcarrier-smtp itself. `native_settings(config_dir)` loads main.cf as the agent does
(options.py's `load_settings`, with the instance's ``queue_directory`` from postconf);
`sendmail_mailer(settings)` answers a mailer that runs ``$sendmail_path -i -f SENDER --
RECIPIENT`` with ``MAIL_CONFIG`` naming the instance and the message on its input, as
Postfix's own programs submit mail. A postconf that cannot answer is a `ConfigError`, a
sendmail that fails a `MailcarrierError`, each in one line. Neighbours:
queue/tlsrpt_send.py builds and signs the reports; cli_queue.py joins them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.postfix.options import DEFAULT_CONFIG_DIRECTORY, load_settings, parse_argv
from mailcarrier.postfix.postconf import PostconfError, run_postconf, run_program

__all__ = ["native_settings", "sendmail_mailer"]

_TIMEOUT = 120.0


def _postconf(directory: str, name: str) -> str:
    """A parameter's value from Postfix; a Postfix that cannot answer is a configuration
    problem of ``--postfix`` (one line, exit 78)."""
    try:
        return run_postconf(directory, "-h", name)
    except PostconfError as exc:
        raise ConfigError(f"--postfix: {exc}") from exc


def native_settings(config_dir: str, overrides: Sequence[tuple[str, str]] = ()) -> Settings:
    """Postfix's main.cf in `config_dir` ("" for $MAIL_CONFIG or /etc/postfix), as the
    native agent loads it, with `overrides` (``-o``)."""
    directory = config_dir or os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIRECTORY
    argv = ["mailcarrier-smtp", "-t", "unix"]
    for name, value in overrides:
        argv += ["-o", f"{name}={value}"]
    queue = _postconf(directory, "queue_directory")
    return load_settings(parse_argv(argv), {"MAIL_CONFIG": directory}, cwd=queue)


def sendmail_mailer(settings: Settings) -> Callable[[bytes, str, str], str]:
    """A mailer through Postfix's sendmail (see the module docstring); its answer is ""
    (Postfix's sendmail prints no queue id; the maillog has it)."""
    directory = str(settings.config_dir or DEFAULT_CONFIG_DIRECTORY)
    program = _postconf(directory, "sendmail_path")

    def submit(data: bytes, sender: str, recipient: str) -> str:
        command = [program, "-i", "-f", sender, "--", recipient]
        env = {**os.environ, "MAIL_CONFIG": directory}
        run_program(command, timeout=_TIMEOUT, data=data, env=env)
        return ""

    return submit
