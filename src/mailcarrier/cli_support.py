"""What every `mailcarrier` command shares: the argument parser that reports usage errors as
one line (exit 64), ``-o NAME=VALUE`` overrides, loading the settings with their warnings,
and where log lines go (`make_log`: stderr, maillog_file, syslog for the daemon; event
records to event_log_file). cli.py runs the commands; cli_queue.py has the queue's
(sendmail, run, queue, mailq). `ProgressLog` keeps log lines and a progress line
(progress.py) apart on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, Final, NoReturn, TextIO

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, UsageError
from mailcarrier.printable import printable
from mailcarrier.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    import logging

    from mailcarrier.events import Event
    from mailcarrier.log import HandlerLog, LogSink

__all__ = [
    "COMMAND_HELP",
    "PROG",
    "Command",
    "Parser",
    "ProgressLog",
    "add_dsn_options",
    "load_settings",
    "make_log",
    "metrics_missing",
    "native_command_log",
    "parse_overrides",
    "queue_settings",
    "say",
]

PROG = "mailcarrier"

# Every command's help line, in the order `mailcarrier --help` lists them (cli.py adds each
# command's arguments only when it runs: these are all the others need).
COMMAND_HELP: Final = {
    "deliver": "deliver one message now, without the queue",
    "conf": "show or edit parameters, like postconf (conf --help)",
    "map": "build or query a lookup table, like postmap (map --help)",
    "postfix": "install or check mailcarrier-smtp in Postfix (postfix --help)",
    "sendmail": "submit a message into the queue, like sendmail",
    "run": "the scheduler: deliver queued mail (daemon, or --once)",
    "queue": "list, shape or manage queued mail, like mailq, qshape, postsuper",
    "mailq": "list queued mail, like mailq (queue list)",
    "tlsrpt": "TLS reports (RFC 8460): show what would be sent",
    "fleet": "fleet mode: what the nodes share through Redis",
    "observe": "serve the metrics and status page of mailcarrier-smtp in Postfix",
}
# A command: (arguments, stdin, stdout, stderr) -> its exit code.
Command = Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit 64 (EX_USAGE)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def say(stderr: TextIO, text: str) -> None:
    """One line of the command's own on stderr, made printable (it may quote a value)."""
    stderr.write(f"{PROG}: {printable(text)}\n")


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f'-o "{item}": expected NAME=VALUE')
        out[name] = value.strip()
    return out


def load_settings(args: argparse.Namespace, stderr: TextIO) -> Settings:
    settings = Settings.load(args.config_dir, parse_overrides(args.overrides))
    for warning in settings.warnings:
        say(stderr, f"warning: {warning}")
    return settings


def queue_settings(args: argparse.Namespace) -> Settings:
    """The settings of a queue command: ``-c``, or sendmail's ``-C``, which names the
    directory of main.cf or, as Postfix's sendmail takes it too, the main.cf file."""
    config_dir = getattr(args, "sendmail_config", None) or args.config_dir
    if config_dir and os.path.basename(config_dir) == "main.cf":
        config_dir = os.path.dirname(config_dir) or "."
    return Settings.load(config_dir, parse_overrides(args.overrides))


def make_log(
    settings: Settings,
    stderr: TextIO,
    stack: contextlib.ExitStack,
    *,
    daemon: bool = False,
    errors: TextIO | None = None,
) -> LogSink:
    """Where log lines go (the handlers of loghandlers.py): stderr, and maillog_file when
    set. The queue daemon (`daemon`) logs only to maillog_file when it is set, as Postfix's
    daemons do, and writes it in blocks (once per event-loop turn) rather than once per
    line. maillog_file is opened again when logrotate moved it; one that cannot be written
    is reported on `errors` (default: `stderr`). event_log_file, when set, gets the event
    records (eventlog.py) the same way. The handlers are closed by `stack`."""
    from mailcarrier.eventlog import event_handlers
    from mailcarrier.log import HandlerLog
    from mailcarrier.loghandlers import LineHandler, MaillogHandler, PostfixFormatter, SyslogHandler

    hostname = settings.params.myhostname
    name = settings.params.syslog_name
    maillog = settings.params.maillog_file
    utf8 = settings.params.smtputf8_enable  # Postfix's util_utf8_enable
    lines = PostfixFormatter(hostname, name, utf8=utf8)
    handlers: list[logging.Handler] = [LineHandler(stderr, lines)]
    if daemon and maillog and maillog != "/dev/stderr":
        handlers = []
    if daemon and not maillog and SyslogHandler.available():
        # As Postfix's daemons: to syslog when no maillog_file is set (and to stderr, for a
        # run in the foreground).
        try:
            handlers.append(SyslogHandler(name, settings.params.syslog_facility, utf8=utf8))
        except ValueError as exc:
            raise ConfigError(
                f"parameter syslog_facility: {exc}",
                parameter="syslog_facility",
                value=settings.params.syslog_facility,
            ) from None
    if maillog and maillog not in ("/dev/stderr",):
        if maillog == "/dev/stdout":
            handlers.append(LineHandler(sys.stdout, lines, batched=daemon))
        else:
            try:
                file = MaillogHandler(maillog, lines, batched=daemon, errors=errors or stderr)
            except OSError as exc:
                raise ConfigError(
                    f"parameter maillog_file: cannot open {maillog}: {exc.strerror}",
                    parameter="maillog_file",
                    value=maillog,
                ) from exc
            handlers.append(file)
    events = event_handlers(settings, batched=daemon, errors=errors or stderr)
    log = HandlerLog(handlers, utf8=utf8, event_handlers=events)
    stack.callback(log.close)
    return log


def metrics_missing(exc: ImportError) -> ConfigError:
    """The error of a listener that cannot start: prometheus-client is not installed."""
    return ConfigError(
        f"parameter http_listen: the metrics listener needs prometheus-client "
        f"(pip install 'mailcarrier[metrics]'): {exc}",
        parameter="http_listen",
    )


def native_command_log(settings: Settings, stderr: TextIO) -> HandlerLog:
    """A command's log in Postfix-native mode (``tlsrpt send --postfix``, ``observe
    --postfix``): Postfix's log (postlogd or syslog, as the agent's), and `stderr` too
    (cron mails it; a terminal shows it)."""
    from mailcarrier.log import HandlerLog
    from mailcarrier.loghandlers import LineHandler, PostfixFormatter
    from mailcarrier.postfix.maillog import native_log

    native = native_log(settings)
    p = settings.params
    formatter = PostfixFormatter(p.myhostname, p.syslog_name, utf8=p.smtputf8_enable)
    return HandlerLog([*native.handlers, LineHandler(stderr, formatter)])


class ProgressLog:
    """A `LogSink` whose lines make way for a progress line on the same terminal: each is
    written with the bar taken away and drawn again after (progress.py). `progress` is set
    when the bar opens (after agent processes are forked: tqdm may start a thread)."""

    def __init__(self, log: LogSink) -> None:
        self.log = log
        self.progress: Progress = NULL_PROGRESS

    def info(self, process: str, text: str) -> None:
        with self.progress.outside():
            self.log.info(process, text)

    def warning(self, process: str, text: str) -> None:
        with self.progress.outside():
            self.log.warning(process, text)

    def event(self, process: str, text: str, event: Event) -> None:
        """A line and its event record (log.py `log_event`), passed on together."""
        from mailcarrier.log import log_event

        with self.progress.outside():
            log_event(self.log, process, text, event)


def add_dsn_options(parser: argparse.ArgumentParser) -> None:
    """-N, -R and -V as sendmail(1) has them (RFC 3461 NOTIFY, RET and ENVID)."""
    parser.add_argument(
        "-N",
        dest="notify",
        default="",
        metavar="NOTIFY",
        help="DSN NOTIFY: NEVER or SUCCESS,FAILURE,DELAY",
    )
    parser.add_argument(
        "-R",
        dest="ret",
        default="",
        type=str.upper,
        choices=("", "FULL", "HDRS"),
        metavar="full|hdrs",
        help="DSN RET: what a bounce returns of the message",
    )
    parser.add_argument("-V", dest="envid", default="", metavar="ENVID", help="DSN envelope ID")
