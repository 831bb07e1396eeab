"""The queue's commands of `mailcarrier`: ``sendmail`` (Postfix's sendmail(1): submit, -bp,
-q), ``run`` (the scheduler, daemon or --once), ``queue`` (list, show, flush, hold, release,
delete, requeue: mailq, postcat and postsuper), ``mailq`` and ``tlsrpt show`` (the TLS
reports of RFC 8460 as ``run`` would send them). `add_queue_parsers` adds them
to cli.py's parser; `QUEUE_COMMANDS` runs them. Shared helpers are in cli_support.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
from collections.abc import Callable
from typing import BinaryIO, TextIO

from mailcarrier.aio import run_event_loop
from mailcarrier.cli_support import PROG, Parser, add_dsn_options, make_log, parse_overrides
from mailcarrier.config.settings import Settings
from mailcarrier.config.watch import ConfigReloader
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.request import Deliverer, Notify
from mailcarrier.errors import UsageError
from mailcarrier.fleet.gate import check_fleet
from mailcarrier.log import LogSink
from mailcarrier.queue import (
    QueueAdmin,
    QueueLock,
    QueueManager,
    SubmitOptions,
    format_mailq,
    open_spool,
    submit_stream,
)
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.show import Parts, show_message
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import argument_recipients
from mailcarrier.queue.tlsrpt import day_reports, format_reports, yesterday
from mailcarrier.queue.tlsrpt_send import with_daily_reports
from mailcarrier.queue.transcripts import TranscriptNotifier
from mailcarrier.queue.workers import AgentPool, make_agent
from mailcarrier.service import run_daemon, run_once
from mailcarrier.status import EX_TEMPFAIL

__all__ = ["QUEUE_COMMANDS", "add_queue_parsers"]


def add_queue_parsers(add_parser: Callable[..., Parser]) -> None:
    """The queue commands, added with the command parser's `add_parser`."""
    s = add_parser("sendmail", help="submit a message into the queue, like sendmail")
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
        help="sendmail option (-oi: as -i; others ignored)",
    )
    add_dsn_options(s)
    s.add_argument(
        "-C",
        dest="sendmail_config",
        default=None,
        metavar="CONFIG_DIR",
        help="directory of main.cf (as -c)",
    )
    s.add_argument("-B", dest="body_type", default="", metavar="TYPE", help="ignored")
    s.add_argument(
        "-b",
        dest="mode",
        default="m",
        choices=tuple(_SENDMAIL_MODES),
        metavar="MODE",
        help="m: submit (the default); p: list the queue, as mailq; d, s, v: see the README",
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
    r = add_parser("run", help="the scheduler: deliver queued mail (daemon, or --once)")
    r.add_argument("--once", action="store_true", help="deliver what is deliverable now, exit")
    q = add_parser("queue", help="list or manage queued mail, like mailq and postsuper")
    qs = q.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    qs.required = True
    lst = qs.add_parser("list", help="list queued mail like mailq")
    lst.add_argument("--json", action="store_true", help="one JSON object per message")
    show = qs.add_parser("show", help="one message's envelope and content, like postcat")
    show.add_argument("queue_id", metavar="QUEUE_ID", help="the message")
    for flag, text in (
        ("--envelope", "the envelope records (postcat -e)"),
        ("--headers", "the header section (postcat -h)"),
        ("--body", "the body (postcat -b)"),
    ):
        show.add_argument(flag, action="store_true", help=text + "; all three by default")
    m = add_parser("mailq", help="list queued mail, like mailq (queue list)")
    m.add_argument("--json", action="store_true", help="one JSON object per message")
    t = add_parser("tlsrpt", help="TLS reports (RFC 8460): show what would be sent")
    ts = t.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    ts.required = True
    tshow = ts.add_parser("show", help="the reports of one day, per policy domain")
    tshow.add_argument("--date", metavar="YYYY-MM-DD", help="the UTC day (default: yesterday)")
    tshow.add_argument("--json", action="store_true", help="one JSON object per domain")
    qs.add_parser("flush", help="attempt delivery of all deferred mail now")
    for name in ("hold", "release", "delete", "requeue"):
        a = qs.add_parser(name, help=f"{name} messages by queue ID, or ALL")
        a.add_argument("ids", nargs="+", metavar="QUEUE_ID|ALL", help="queue IDs, or ALL")


def _queue_settings(args: argparse.Namespace) -> Settings:
    config_dir = getattr(args, "sendmail_config", None) or args.config_dir
    return Settings.load(config_dir, parse_overrides(args.overrides))


# sendmail -bX: what each mode does here (Postfix's sendmail(1) modes).
_SENDMAIL_MODES: dict[str, str] = {
    "m": "",
    "p": "",
    "d": "-bd: mailcarrier has no SMTP listener; the queue daemon is `mailcarrier run`",
    "s": "-bs: SMTP on standard input is not supported; submit with sendmail or the API",
    "v": "-bv: verification by mail is not supported; use `mailcarrier deliver -bv`",
}


def _cmd_sendmail(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    refused = _SENDMAIL_MODES[args.mode]
    if refused:
        raise UsageError(refused)
    if args.mode == "p":
        args.action, args.json = "list", False
        return _cmd_queue(args, stdin, stdout, stderr)
    if args.queue_run is not None:
        if args.queue_run:
            raise UsageError(f"-q{args.queue_run}: a queue run interval: use `mailcarrier run`")
        args.action = "flush"
        return _cmd_queue(args, stdin, stdout, stderr)
    if not args.recipients and not args.extract:
        raise UsageError(
            "Recipient addresses must be specified on the command line or via the -t option"
        )
    settings = _queue_settings(args)
    ignore_dots = args.ignore_dots or "i" in args.options
    options = SubmitOptions(
        sender=args.sender,
        recipients=tuple(argument_recipients(args.recipients)),
        extract_recipients=args.extract,
        ignore_dots=ignore_dots,
        full_name=args.full_name,
        notify=Notify.parse(args.notify) if args.notify else Notify.NONE,
        ret=args.ret,
        envid=args.envid,
        requiretls=args.requiretls,
    )
    with contextlib.ExitStack() as stack:
        # Like sendmail, say nothing on success: log only to maillog_file when it is set.
        log = make_log(settings, io.StringIO(), stack, errors=stderr)
        spool = open_spool(settings, log=log)
        submit_stream(stdin, options, settings=settings, spool=spool, log=log)
    return 0


def _cmd_run(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    config = ConfigReloader(args.config_dir, parse_overrides(args.overrides))
    settings = config.settings
    check_fleet(settings)  # before agent processes start: one line, exit 78
    with contextlib.ExitStack() as stack:
        log = make_log(settings, stderr, stack, daemon=True)
        spool = open_spool(settings, log=log)
        stack.enter_context(QueueLock(spool.root))
        spool.clean_temporary()
        manager = QueueManager(settings, spool, _queue_deliverer(settings, log, spool), log=log)
        if isinstance(manager.deliverer, AgentPool):
            manager.deliverer.fork()  # before the event loop and any thread exist
        if args.once:
            # Mail left queued because the fleet's Redis could not be asked: 75, try later.
            return EX_TEMPFAIL if run_event_loop(run_once(manager)) else 0

        def deliverer(new: Settings) -> Deliverer:
            return _queue_deliverer(new, log, spool)

        # TLSRPT (RFC 8460): yesterday's reports, once a day (queue/tlsrpt_send.py).
        daemon = run_daemon(manager, config, deliverer)
        run_event_loop(with_daily_reports(daemon, lambda: config.settings, spool, log))
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
        log = make_log(settings, stderr, stack)
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
        if args.action == "show":
            chosen = Parts(args.envelope, args.headers, args.body)
            parts = chosen if (args.envelope or args.headers or args.body) else Parts()
            utf8 = settings.params.smtputf8_enable
            for line in show_message(admin.spool, args.queue_id, parts, utf8=utf8):
                stdout.write(line + "\n")
            stdout.flush()
            return 0
        verbs = {"hold": "Placed on hold", "release": "Released from hold"}
        verbs |= {"delete": "Deleted", "requeue": "Requeued"}
        count = getattr(admin, args.action)(args.ids)
        plural = "" if count == 1 else "s"
        stderr.write(f"{PROG}: {verbs[args.action]}: {count} message{plural}\n")
    return 0


def _cmd_mailq(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    args.action = "list"
    return _cmd_queue(args, stdin, stdout, stderr)


def _cmd_tlsrpt(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    """``tlsrpt show``: the reports of a day (queue/tlsrpt.py), as they would be sent."""
    day = args.date or yesterday()
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        raise UsageError(f"bad --date {day!r}: expected YYYY-MM-DD") from None
    reports = run_event_loop(day_reports(_queue_settings(args), day))
    if args.json:
        stdout.writelines(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in reports)
    else:
        stdout.writelines(line + "\n" for line in format_reports(reports))
    stdout.flush()
    return 0


QUEUE_COMMANDS: dict[str, Callable[[argparse.Namespace, BinaryIO, TextIO, TextIO], int]] = {
    "sendmail": _cmd_sendmail,
    "run": _cmd_run,
    "queue": _cmd_queue,
    "mailq": _cmd_mailq,
    "tlsrpt": _cmd_tlsrpt,
}
