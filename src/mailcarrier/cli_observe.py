"""The ``observe`` command of `mailcarrier`: ``observe --postfix[=POSTFIX_CONFIG_DIR]``
serves the metrics, the status page and its JSON of the mailcarrier-smtp/-lmtp agents that
run inside a Postfix instance (observe/native.py), as ``run`` serves its own.

Postfix's main.cf is read as the agents read it (postfix/sendmail.py's `native_settings`,
plus ``-o`` overrides): ``http_listen`` (required here), ``http_listen_allow_remote``,
``http_listen_token_file`` with the rules of ``run`` (loopback only unless allowed; a bad
address exit 78, a port in use exit 75), ``metrics_directory`` (where the agents count;
empty: only the queue is shown). Postfix's queue is read with its ``postqueue -j``. The lines
go to Postfix's log and to standard error. `add_observe_parser` adds it to cli.py's parser,
`OBSERVE_COMMANDS` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from typing import BinaryIO, TextIO

from mailcarrier.cli_support import (
    COMMAND_HELP,
    Parser,
    metrics_missing,
    native_command_log,
    parse_overrides,
)
from mailcarrier.errors import ConfigError, UsageError

__all__ = ["OBSERVE_COMMANDS", "add_observe_parser"]


def add_observe_parser(add_parser: Callable[..., Parser]) -> None:
    o = add_parser("observe", help=COMMAND_HELP["observe"])
    o.add_argument(
        "--postfix",
        nargs="?",
        const="",
        default=None,
        metavar="POSTFIX_CONFIG_DIR",
        help="Postfix-native mode: Postfix's main.cf ($MAIL_CONFIG, /etc/postfix)",
    )


def _cmd_observe(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    if args.postfix is None:
        raise UsageError(
            "observe: give --postfix[=POSTFIX_CONFIG_DIR] (mailcarrier run serves its own "
            "metrics at http_listen)"
        )
    from mailcarrier.aio import run_event_loop
    from mailcarrier.postfix.postqueue import PostqueueReader
    from mailcarrier.postfix.sendmail import native_settings

    settings = native_settings(args.postfix, tuple(parse_overrides(args.overrides).items()))
    try:
        from mailcarrier.observe import ListenConfig, NativeMonitor, serve_native
    except ImportError as exc:
        raise metrics_missing(exc) from None
    config = ListenConfig.from_settings(settings)
    if config is None:
        raise ConfigError(
            "parameter http_listen: empty: observe --postfix needs an address to serve on",
            parameter="http_listen",
        )
    p = settings.params
    if p.metrics_directory and not os.path.isdir(p.metrics_directory):
        raise ConfigError(
            f"parameter metrics_directory: {p.metrics_directory} is not a directory",
            parameter="metrics_directory",
        )
    reader = PostqueueReader(str(settings.config_dir))
    monitor = NativeMonitor(p.metrics_directory, reader.read, node=p.myhostname)
    with contextlib.ExitStack() as stack:
        log = native_command_log(settings, stderr)
        stack.callback(log.close)
        return run_event_loop(serve_native(monitor, config, log))


OBSERVE_COMMANDS: dict[str, Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int]] = {
    "observe": _cmd_observe,
}
