"""The `mailcarrier` command: the only place that exits, prints errors or chooses log sinks.

    mailcarrier [-c CONFIG_DIR] [-o NAME=VALUE]... COMMAND ...

Each command returns a sysexits code: 0 success, 64 usage, 65 bad input data, 69 a recipient
bounced (none deferred) or a message larger than message_size_limit (as Postfix's sendmail
says "message file too big"), 75 a recipient deferred or a temporary local failure (a full
disk, a read-only queue: "queue file write error: PATH: reason"), 78 configuration error.
Errors are one line naming what was wrong; no traceback reaches a user. What it prints that
came from outside (error and warning lines quoting values, log lines, JSON) is made printable
or JSON-safe (printable.py): no argument, file name or reply can forge a line or break a JSON
parser. When standard output is a pipe whose reader has gone (``mailcarrier conf -d | head``)
the command stops quietly with status 141, what a shell reports for postconf killed by
SIGPIPE in the same place.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, NoReturn, TextIO, cast

from mailcarrier.aio import run_event_loop
from mailcarrier.api import deliver
from mailcarrier.config.postconf import conf_main
from mailcarrier.config.settings import Settings
from mailcarrier.config.watch import ConfigReloader
from mailcarrier.console import Output, StdoutClosed, discard_output
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.autodetect import ContentScan, MailSource, declare
from mailcarrier.delivery.request import Deliverer, DeliveryRequest, Notify, Recipient
from mailcarrier.errors import (
    ConfigError,
    DataError,
    MailcarrierError,
    MessageTooBigError,
    TemporaryError,
    UsageError,
)
from mailcarrier.fleet.client import servers as fleet_servers
from mailcarrier.fleet.engine import FleetUnavailable
from mailcarrier.fleet.gate import check_fleet
from mailcarrier.fleet.status import format_table, read_status
from mailcarrier.fleet.status import to_json as fleet_json
from mailcarrier.log import HandlerLog, LogSink
from mailcarrier.loghandlers import LineHandler, MaillogHandler, PostfixFormatter, SyslogHandler
from mailcarrier.message_input import read_message
from mailcarrier.postfix.install import postfix_main
from mailcarrier.printable import printable
from mailcarrier.queue import (
    QueueAdmin,
    QueueLock,
    QueueManager,
    SubmitOptions,
    format_mailq,
    open_spool,
    submit_stream,
)
from mailcarrier.queue.addresses import check_address
from mailcarrier.queue.ids import new_queue_id
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.transcripts import TranscriptNotifier
from mailcarrier.queue.workers import AgentPool, make_agent
from mailcarrier.routing.nexthop import parse_nexthop, split_destinations
from mailcarrier.service import run_daemon, run_once
from mailcarrier.status import (
    EX_CONFIG,
    EX_DATAERR,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
)
from mailcarrier.tables.command import map_main

PROG = "mailcarrier"
EX_PIPE = 128 + signal.SIGPIPE  # 141: standard output went away (see the opening paragraph)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit 64 (EX_USAGE)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Postfix-compatible SMTP/LMTP delivery in Python")
    parser.add_argument("-c", dest="config_dir", metavar="CONFIG_DIR", help="directory of main.cf")
    parser.add_argument(
        "-o",
        dest="overrides",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a main.cf parameter for this run",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    d = sub.add_parser("deliver", help="deliver one message now, without the queue")
    d.add_argument("--nexthop", required=True, metavar="DEST", help="destination (see smtp(8))")
    d.add_argument("--transport", choices=("smtp", "lmtp"), default="smtp")
    d.add_argument("-f", dest="sender", required=True, metavar="SENDER", help='"" for <>')
    d.add_argument("-r", dest="recipients", action="append", required=True, metavar="RCPT")
    d.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    d.add_argument(
        "-N",
        dest="notify",
        default="",
        metavar="NOTIFY",
        help="DSN NOTIFY: NEVER or SUCCESS,FAILURE,DELAY",
    )
    d.add_argument(
        "-R",
        dest="ret",
        default="",
        type=str.upper,
        choices=("", "FULL", "HDRS"),
        metavar="full|hdrs",
    )
    d.add_argument("-V", dest="envid", default="", metavar="ENVID")
    d.add_argument(
        "-bv",
        dest="probe",
        action="store_true",
        help="verify the recipients (MAIL, RCPT, RSET) without a message, as sendmail -bv",
    )
    d.add_argument("file", nargs="?", default=None, metavar="FILE|-")
    # conf and map parse their own arguments (postconf and postmap style): see run().
    sub.add_parser("conf", help="show or edit parameters, like postconf", add_help=False)
    sub.add_parser("map", help="build or query a lookup table, like postmap", add_help=False)
    sub.add_parser("postfix", help="install or check mailcarrier-smtp in Postfix", add_help=False)
    _add_queue_parsers(sub.add_parser)
    return parser


_PASSTHROUGH = ("conf", "map", "postfix")


def _say(stderr: TextIO, text: str) -> None:
    """One line of the command's own on stderr, made printable (it may quote a value)."""
    stderr.write(f"{PROG}: {printable(text)}\n")


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``[-c DIR] [-o N=V]... COMMAND ARGS...`` at the command word."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("-c", "-o"):
            i += 2
        elif word.startswith(("-c", "-o")) and len(word) > 2:
            i += 1
        else:
            break
    return argv[:i], argv[i:]


def _parse_overrides(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f'-o "{item}": expected NAME=VALUE')
        out[name] = value.strip()
    return out


def _load_settings(args: argparse.Namespace, stderr: TextIO) -> Settings:
    settings = Settings.load(args.config_dir, _parse_overrides(args.overrides))
    for warning in settings.warnings:
        _say(stderr, f"warning: {warning}")
    return settings


def _make_log(
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
    is reported on `errors` (default: `stderr`). The handlers are closed by `stack`."""
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
    log = HandlerLog(handlers, utf8=utf8)
    stack.callback(log.close)
    return log


def _cmd_deliver(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    settings = _load_settings(args, stderr)
    if args.probe and args.file is not None:
        # As sendmail -bv: "do not collect or deliver a message".
        raise UsageError(f'-bv reads no message, but a message file was given: "{args.file}"')
    hops = split_destinations(args.nexthop)
    if not hops:
        raise UsageError("--nexthop: empty destination")
    for hop in hops:
        parse_nexthop(hop, transport=args.transport, lmtp_tcp_port=settings.params.lmtp_tcp_port)
    notify = Notify.parse(args.notify) if args.notify else Notify.NONE
    # As sendmail: qualified with myorigin, checked before anything is read or sent (65).
    myorigin = QueueParams(settings).myorigin()
    sender = check_address(args.sender, what="sender", myorigin=myorigin, allow_null=True)
    recipients = [check_address(r, what="recipient", myorigin=myorigin) for r in args.recipients]
    with contextlib.ExitStack() as stack:
        if args.probe:
            # An address probe sends no content: nothing is read, and standard input is
            # left alone.
            content: BinaryIO = io.BytesIO()
            scan = ContentScan(settings.params.header_size_limit).finish()
        else:
            content, scan = read_message(args.file or "-", stdin, settings, stack)
        # 8-bit content and SMTPUTF8 as submission finds them (`deliver` is of the sendmail
        # class of smtputf8_autodetect_classes: see delivery/autodetect.py).
        declared = declare(settings, MailSource.SENDMAIL, scan, addresses=(sender, *recipients))
        request = DeliveryRequest(
            queue_id=new_queue_id(),
            nexthop=args.nexthop,
            sender=sender,
            recipients=tuple(Recipient(r, dsn_notify=notify) for r in recipients),
            content=content,
            transport=args.transport,
            encoding=declared.encoding,
            smtputf8=declared.smtputf8,
            dsn_ret=args.ret,
            dsn_envid=args.envid,
            probe=args.probe,
        )
        log = _make_log(settings, stderr, stack)
        result = run_event_loop(deliver(request, config=settings, log=log))
    if args.json:
        stdout.write(json.dumps(result.to_json()) + "\n")
        stdout.flush()
    return result.exit_code


def run(
    argv: Sequence[str] | None = None,
    *,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line and return its exit code (`main()` exits with it)."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    real_stdout = stdout if stdout is not None else sys.stdout
    stdout = cast(TextIO, Output(real_stdout))
    stderr = stderr if stderr is not None else sys.stderr
    try:
        words = list(argv) if argv is not None else sys.argv[1:]
        head, rest = _split_command(words)
        passthrough: list[str] = []
        if rest and rest[0] in _PASSTHROUGH:
            words, passthrough = [*head, rest[0]], rest[1:]
        args = _build_parser().parse_args(words)
        if args.command == "deliver":
            return _cmd_deliver(args, stdin, stdout, stderr)
        if args.command == "conf":
            return conf_main(
                passthrough,
                config_dir=args.config_dir,
                overrides=_parse_overrides(args.overrides),
                stdout=stdout,
                stderr=stderr,
            )
        if args.command == "map":
            keys = io.TextIOWrapper(stdin, encoding="utf-8", errors="surrogateescape")
            return map_main(passthrough, stdout, stderr, keys)
        if args.command == "postfix":
            return postfix_main(passthrough, stdout, stderr)
        if args.command in _QUEUE_COMMANDS:
            return _QUEUE_COMMANDS[args.command](args, stdin, stdout, stderr)
        raise UsageError(f"unknown command {args.command}")
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UsageError as exc:
        _say(stderr, f"fatal: {exc}")
        return EX_USAGE
    except ConfigError as exc:
        _say(stderr, f"fatal: {exc}")
        return EX_CONFIG
    except MessageTooBigError as exc:  # Postfix's sendmail: EX_UNAVAILABLE
        _say(stderr, f"fatal: {exc}")
        return EX_UNAVAILABLE
    except DataError as exc:
        _say(stderr, f"fatal: {exc}")
        return EX_DATAERR
    except TemporaryError as exc:  # try again later, as sysexits means it
        _say(stderr, f"fatal: {exc}")
        return EX_TEMPFAIL
    except StdoutClosed:
        discard_output(real_stdout)
        return EX_PIPE
    except MailcarrierError as exc:
        _say(stderr, f"fatal: {exc}")
        return EX_SOFTWARE
    except KeyboardInterrupt:
        stderr.write(f"{PROG}: interrupted\n")
        return 130


# --- the queue: sendmail, run, queue ---------------------------------------------------------


def _add_queue_parsers(add_parser: Callable[..., _Parser]) -> None:
    """The queue commands, added with the command parser's `add_parser`."""
    s = add_parser("sendmail", help="submit a message into the queue, like sendmail")
    s.add_argument("-t", dest="extract", action="store_true", help="recipients from headers")
    s.add_argument("-f", "-r", dest="sender", default=None, metavar="SENDER", help='"" for <>')
    s.add_argument("-F", dest="full_name", default="", metavar="FULL_NAME")
    s.add_argument("-i", dest="ignore_dots", action="store_true", help='a lone "." is data')
    s.add_argument("-o", dest="options", action="append", default=[], metavar="OPTION")
    s.add_argument("-N", dest="notify", default="", metavar="NOTIFY")
    s.add_argument("-R", dest="ret", default="", type=str.upper, choices=("", "FULL", "HDRS"))
    s.add_argument("-V", dest="envid", default="", metavar="ENVID")
    s.add_argument("-C", dest="sendmail_config", default=None, metavar="CONFIG_DIR")
    s.add_argument("-B", dest="body_type", default="", metavar="TYPE", help="ignored")
    s.add_argument("-b", dest="mode", default="m", choices=("m",), metavar="m")
    s.add_argument("-v", dest="verbose", action="count", default=0, help="ignored")
    s.add_argument("recipients", nargs="*", metavar="RECIPIENT")
    f = add_parser("fleet", help="fleet mode: what the nodes share through Redis")
    fs = f.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    fs.required = True
    st = fs.add_parser("status", help="nodes seen recently, leases and rates per destination")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.add_argument("--recent", type=float, default=300.0, metavar="SECONDS", help="default: 300")
    r = add_parser("run", help="the scheduler: deliver queued mail (daemon, or --once)")
    r.add_argument("--once", action="store_true", help="deliver what is deliverable now, exit")
    q = add_parser("queue", help="list or manage queued mail, like mailq and postsuper")
    qs = q.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    qs.required = True
    lst = qs.add_parser("list", help="list queued mail like mailq")
    lst.add_argument("--json", action="store_true", help="one JSON object per message")
    qs.add_parser("flush", help="attempt delivery of all deferred mail now")
    for name in ("hold", "release", "delete", "requeue"):
        a = qs.add_parser(name, help=f"{name} messages by queue ID, or ALL")
        a.add_argument("ids", nargs="+", metavar="QUEUE_ID|ALL")


def _queue_settings(args: argparse.Namespace) -> Settings:
    config_dir = getattr(args, "sendmail_config", None) or args.config_dir
    return Settings.load(config_dir, _parse_overrides(args.overrides))


def _cmd_sendmail(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    if not args.recipients and not args.extract:
        raise UsageError(
            "Recipient addresses must be specified on the command line or via the -t option"
        )
    settings = _queue_settings(args)
    ignore_dots = args.ignore_dots or "i" in args.options
    options = SubmitOptions(
        sender=args.sender,
        recipients=tuple(args.recipients),
        extract_recipients=args.extract,
        ignore_dots=ignore_dots,
        full_name=args.full_name,
        notify=Notify.parse(args.notify) if args.notify else Notify.NONE,
        ret=args.ret,
        envid=args.envid,
    )
    with contextlib.ExitStack() as stack:
        # Like sendmail, say nothing on success: log only to maillog_file when it is set.
        log = _make_log(settings, io.StringIO(), stack, errors=stderr)
        spool = open_spool(settings, log=log)
        submit_stream(stdin, options, settings=settings, spool=spool, log=log)
    return 0


def _cmd_run(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    config = ConfigReloader(args.config_dir, _parse_overrides(args.overrides))
    settings = config.settings
    check_fleet(settings)  # before agent processes start: one line, exit 78
    with contextlib.ExitStack() as stack:
        log = _make_log(settings, stderr, stack, daemon=True)
        spool = open_spool(settings, log=log)
        stack.enter_context(QueueLock(spool.root))
        spool.clean_temporary()
        manager = QueueManager(settings, spool, _queue_deliverer(settings, log, spool), log=log)
        if isinstance(manager.deliverer, AgentPool):
            manager.deliverer.fork()  # before the event loop and any thread exist
        if args.once:
            run_event_loop(run_once(manager))
            return 0

        def deliverer(new: Settings) -> Deliverer:
            return _queue_deliverer(new, log, spool)

        run_event_loop(run_daemon(manager, config, deliverer))
    return 0


def _queue_deliverer(settings: Settings, log: LogSink, spool: Spool) -> DeliveryAgent | AgentPool:
    """In-process agent, or a pool of agent processes (``delivery_agent_processes``);
    session transcripts for the postmaster are queued in `spool`."""
    notify = TranscriptNotifier(spool, QueueParams(settings), log)
    processes = settings.params.delivery_agent_processes
    if processes > 1:
        return AgentPool(settings, processes, log, notify)
    return make_agent(settings, log, notify)


def _cmd_queue(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    settings = _queue_settings(args)
    with contextlib.ExitStack() as stack:
        log = _make_log(settings, stderr, stack)
        admin = QueueAdmin(open_spool(settings, log=log), log=log)
        if args.action == "list":
            if args.json:
                for entry in admin.list_queue():
                    stdout.write(json.dumps(entry.to_json()) + "\n")
            else:
                utf8 = settings.params.smtputf8_enable
                stdout.write(format_mailq(admin.list_queue(), utf8=utf8))
            stdout.flush()
            return 0
        if args.action == "flush":
            admin.flush()
            return 0
        verbs = {"hold": "Placed on hold", "release": "Released from hold"}
        verbs |= {"delete": "Deleted", "requeue": "Requeued"}
        count = getattr(admin, args.action)(args.ids)
        plural = "" if count == 1 else "s"
        stderr.write(f"{PROG}: {verbs[args.action]}: {count} message{plural}\n")
    return 0


def _cmd_fleet(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    settings = Settings.load(args.config_dir, _parse_overrides(args.overrides))
    if not fleet_servers(settings):
        raise ConfigError(
            "fleet status: shared_state_server is empty (a single node, no fleet)",
            parameter="shared_state_server",
        )
    try:
        report = run_event_loop(read_status(settings, args.recent))
    except FleetUnavailable as exc:
        server = " ".join(fleet_servers(settings))
        raise TemporaryError(f"shared_state_server {server}: {exc}") from None
    if args.json:
        stdout.write(json.dumps(fleet_json(report)) + "\n")
    else:
        stdout.write(format_table(report, settings))
    stdout.flush()
    return 0


_QUEUE_COMMANDS: dict[str, Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int]] = {
    "sendmail": _cmd_sendmail,
    "run": _cmd_run,
    "fleet": _cmd_fleet,
    "queue": _cmd_queue,
}


def sendmail_main() -> NoReturn:
    """The ``mailcarrier-sendmail`` entry point: ``mailcarrier sendmail ARGS...``."""
    sys.exit(run(["sendmail", *sys.argv[1:]]))


def main() -> NoReturn:
    sys.exit(run())


__all__ = ["main", "run", "sendmail_main"]
