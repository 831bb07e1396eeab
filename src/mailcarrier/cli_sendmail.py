"""``mailcarrier sendmail`` (and ``mailcarrier-sendmail``): Postfix's sendmail(1).

Modes (``-b``): ``m`` submits the message on standard input (the default), ``p`` lists the
queue (as mailq), ``s`` speaks SMTP on standard input and output (queue/smtpd.py), ``v``
verifies the recipients: no message is read, an address probe is queued and ``mailcarrier
run`` mails a report to the sender (queue/finalize.py); ``h`` and ``H`` are accepted and
do nothing, as in Postfix; ``d`` is refused with one line. ``-q`` flushes the queue. The
options are Postfix's: ``-B 7BIT|8BITMIME`` the body type (anything else: one line, exit
64), ``-N``, ``-R``, ``-V`` (DSN), ``-O requiretls=yes|no``, ``-O smtputf8=yes|no``
(others ignored), ``-o`` (``-oi``; others ignored), ``-X LOG_FILE`` (ignored, as Postfix's
sendmail ignores it; ``-XV``, VERP, is refused), and -bv refuses -t, -N and -R as Postfix's
does. cli.py adds the parser (`add_sendmail_parser`) and runs `cmd_sendmail`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, TextIO

from mailcarrier.cli_support import (
    COMMAND_HELP,
    Parser,
    add_dsn_options,
    make_log,
    queue_settings,
    say,
)
from mailcarrier.errors import UsageError
from mailcarrier.log import LogSink, NullLog
from mailcarrier.notify import Notify
from mailcarrier.queue.spool import open_spool
from mailcarrier.queue.submit import SubmitOptions, argument_recipients, submit_stream

if TYPE_CHECKING:
    from mailcarrier.config.settings import Settings

__all__ = ["add_sendmail_parser", "cmd_sendmail"]

# sendmail -bX: what each mode does here (Postfix's sendmail(1) modes); "" runs it.
_MODES: dict[str, str] = {
    "m": "",
    "p": "",
    "s": "",
    "v": "",
    "h": "",
    "H": "",
    "d": "-bd: mailcarrier has no SMTP listener; the queue daemon is `mailcarrier run`",
}
_BODY_TYPES = ("7BIT", "8BITMIME")


def add_sendmail_parser(add_parser: Callable[..., Parser]) -> None:
    """``sendmail``, added with the command parser's `add_parser`."""
    s = add_parser("sendmail", help=COMMAND_HELP["sendmail"])
    s.add_argument("-t", dest="extract", action="store_true", help="recipients from headers")
    s.add_argument("-f", "-r", dest="sender", default=None, metavar="SENDER", help='"" for <>')
    s.add_argument(
        "-F", dest="full_name", default="", metavar="FULL_NAME", help="the sender's full name"
    )
    s.add_argument("-i", dest="ignore_dots", action="store_true", help='a lone "." is data')
    s.add_argument(
        "-o",
        dest="options",
        action="append",
        default=[],
        metavar="OPTION",
        help="sendmail option: -oi as -i; -o7, -o8, -om, -oA... and others ignored",
    )
    s.add_argument(
        "-O",
        dest="named_options",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="requiretls=yes|no (as --requiretls), smtputf8=yes|no; others ignored",
    )
    add_dsn_options(s)
    s.add_argument(
        "-C",
        dest="sendmail_config",
        default=None,
        metavar="CONFIG_DIR",
        help="directory of main.cf (as -c), or the main.cf file",
    )
    s.add_argument(
        "-B",
        dest="body_type",
        default="",
        metavar="TYPE",
        help="the body type: 7BIT or 8BITMIME (sent as BODY=8BITMIME)",
    )
    s.add_argument(
        "-X",
        dest="log_file",
        default=None,
        metavar="LOG_FILE",
        help="ignored, as Postfix's sendmail ignores it (see debug_peer_list)",
    )
    s.add_argument(
        "-b",
        dest="mode",
        default="m",
        choices=tuple(_MODES),
        metavar="MODE",
        help="m: submit (the default); p: list the queue, as mailq; s: SMTP on standard "
        "input and output; v: verify the recipients, a report by mail; h, H: ignored",
    )
    s.add_argument(
        "-q",
        dest="queue_run",
        nargs="?",
        const="",
        default=None,
        metavar="INTERVAL",
        help="attempt delivery of all deferred mail now (as queue flush); no interval",
    )
    s.add_argument("-v", dest="verbose", action="count", default=0, help="ignored")
    s.add_argument(
        "--requiretls",
        action="store_true",
        help="REQUIRETLS (RFC 8689): kept with the queued message",
    )
    s.add_argument("recipients", nargs="*", metavar="RECIPIENT", help="recipient addresses")


def _check_options(args: argparse.Namespace) -> None:
    """What Postfix's sendmail refuses before it reads anything (exit 64)."""
    refused = _MODES[args.mode]
    if refused:
        raise UsageError(refused)
    envid = args.envid
    if len(envid) > 100 or not all("!" <= c <= "~" for c in envid):
        # RFC 3461 4.4 (Postfix's sendmail: printable, at most 100): an argument, so 64.
        raise UsageError(f"-V {envid!r}: an envelope ID is at most 100 printable characters")
    if args.body_type and args.body_type.upper() not in _BODY_TYPES:
        raise UsageError(f'-B "{args.body_type}": the body type is 7BIT or 8BITMIME')
    log_file = args.log_file or ""
    if log_file == "V" or (log_file.startswith("V") and len(log_file) == 3):
        raise UsageError(f"-X{log_file}: VERP is not supported")
    if args.mode == "v":
        for flag, given in (("-t", args.extract), ("-N", args.notify), ("-R", args.ret)):
            if given:
                raise UsageError(f"{flag} option cannot be used with -bv")
    if args.mode == "s" and args.recipients:
        raise UsageError("stand-alone mode (-bs) takes no recipient")


def _named_options(
    values: list[str], requiretls: bool, settings: Settings, stderr: TextIO
) -> tuple[bool, bool]:
    """-O NAME=VALUE, as Postfix 3.11's sendmail: REQUIRETLS and SMTPUTF8 (names and values
    case-insensitive), each ignored with a warning when main.cf turns the feature off; any
    other name is ignored. Returns (requiretls, smtputf8)."""
    smtputf8 = False
    enabled = {
        "requiretls": settings.params.requiretls_enable,
        "smtputf8": settings.params.smtputf8_enable,
    }
    for item in values:
        name, _, value = item.partition("=")
        name, value = name.strip().lower(), value.strip().lower()
        if name not in enabled:
            continue
        if value not in ("yes", "no"):
            raise UsageError(f'-O "{item}": {name} is yes or no')
        if not enabled[name]:
            say(stderr, f'warning: ignoring "-O {item}": {name}_enable = no')
        elif name == "requiretls":
            requiretls = value == "yes"
        else:
            smtputf8 = value == "yes"
    return requiretls, smtputf8


def cmd_sendmail(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    _check_options(args)
    if args.mode in ("h", "H"):
        return 0
    if args.mode == "p" or args.queue_run is not None:
        return _queue_command(args, stdin, stdout, stderr)
    if args.mode == "s":
        return _standalone(args, stdin, stdout, stderr)
    if not args.recipients and not args.extract:
        raise UsageError(
            "Recipient addresses must be specified on the command line or via the -t option"
        )
    settings = queue_settings(args)
    requiretls, smtputf8 = _named_options(args.named_options, args.requiretls, settings, stderr)
    options = SubmitOptions(
        sender=args.sender,
        recipients=tuple(argument_recipients(args.recipients)),
        extract_recipients=args.extract,
        ignore_dots=args.ignore_dots or "i" in args.options,
        full_name=args.full_name,
        notify=Notify.parse(args.notify) if args.notify else Notify.NONE,
        ret=args.ret,
        envid=args.envid,
        requiretls=requiretls,
        body_type=args.body_type.upper(),
        smtputf8=smtputf8,
        probe=args.mode == "v",
    )
    with contextlib.ExitStack() as stack:
        log = _quiet_log(settings, stack, stderr)
        spool = open_spool(settings, log=log)
        # -bv reads no message ("do not collect or deliver a message"): standard input is
        # left alone, and submit.py writes the probe's header instead.
        submit_stream(
            io.BytesIO() if options.probe else stdin,
            options,
            settings=settings,
            spool=spool,
            log=log,
        )
    return 0


def _queue_command(
    args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO
) -> int:
    """-bp lists the queue, -q flushes it: the queue's commands (cli_queue_admin.py)."""
    from mailcarrier.cli_queue_admin import cmd_queue

    if args.mode == "p":
        args.action, args.json = "list", False
        return cmd_queue(args, stdin, stdout, stderr)
    if args.queue_run:
        raise UsageError(f"-q{args.queue_run}: a queue run interval: use `mailcarrier run`")
    args.action = "flush"
    return cmd_queue(args, stdin, stdout, stderr)


def _quiet_log(settings: Settings, stack: contextlib.ExitStack, stderr: TextIO) -> LogSink:
    """Like sendmail, say nothing on success: log only to maillog_file and event_log_file
    when they are set (`make_log`'s lines for standard error are discarded). With neither
    set nothing is logged at all, and no log handler is loaded."""
    params = settings.params
    if params.maillog_file in ("", "/dev/stderr") and not params.event_log_file:
        return NullLog()
    return make_log(settings, io.StringIO(), stack, errors=stderr)


def _standalone(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    """-bs: one SMTP session on standard input and output (queue/smtpd.py). A session that
    ended inside a transaction (its message not queued) is one line on stderr, exit 75."""
    from mailcarrier.queue.smtpd import SessionEnd, serve_pipe
    from mailcarrier.status import EX_TEMPFAIL

    settings = queue_settings(args)
    out = getattr(stdout, "binary", None)
    binary = out() if callable(out) else getattr(stdout, "buffer", None)
    if binary is None:
        raise UsageError("-bs needs a binary standard output")
    with contextlib.ExitStack() as stack:
        log = _quiet_log(settings, stack, stderr)
        spool = open_spool(settings, log=log)
        end = serve_pipe(stdin, binary, settings=settings, spool=spool, log=log)
    if end is SessionEnd.LOST:
        say(stderr, "warning: the SMTP session ended inside a transaction; its mail was not queued")
        return EX_TEMPFAIL
    return 0
