"""The queue's commands of `mailcarrier`: ``run`` (the scheduler, daemon or --once),
``queue`` (list, show, shape, flush, hold, release, delete, requeue: mailq, postcat, qshape
and postsuper; in cli_queue_admin.py), ``mailq``, and ``tlsrpt show`` and ``send`` (the TLS
reports of RFC 8460 as ``run`` sends them, or now: from cron, also in Postfix-native mode).
`add_queue_parsers` adds them to cli.py's parser; `QUEUE_COMMANDS` runs them. A reload of
``run`` keeps its http_listen listener as it started (`listener_changes` says, in one
warning line per parameter, what waits for a restart). ``sendmail``
is in cli_sendmail.py (it lists and flushes the queue through cli_queue_admin.py); shared
helpers are in cli_support.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, TextIO

from mailcarrier.cli_queue_admin import add_queue_admin_parsers, cmd_queue
from mailcarrier.cli_support import (
    COMMAND_HELP,
    Command,
    Parser,
    ProgressLog,
    make_log,
    metrics_missing,
    native_command_log,
    parse_overrides,
    queue_settings,
)
from mailcarrier.config.settings import Settings
from mailcarrier.errors import UsageError
from mailcarrier.progress import terminal_progress
from mailcarrier.queue.spool import open_spool
from mailcarrier.status import EX_TEMPFAIL

if TYPE_CHECKING:
    from mailcarrier.delivery.agent import DeliveryAgent
    from mailcarrier.log import LogSink
    from mailcarrier.observe import HttpListener
    from mailcarrier.queue.scheduler import QueueManager
    from mailcarrier.queue.spool import Spool
    from mailcarrier.queue.tlsrpt_send import Mailer
    from mailcarrier.queue.workers import AgentPool

__all__ = ["QUEUE_COMMANDS", "add_queue_parsers", "listener_changes"]


def add_queue_parsers(add_parser: Callable[..., Parser]) -> None:
    """The queue commands, added with the command parser's `add_parser`."""
    r = add_parser("run", help=COMMAND_HELP["run"])
    r.add_argument("--once", action="store_true", help="deliver what is deliverable now, exit")
    q = add_parser("queue", help=COMMAND_HELP["queue"])
    qs = q.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    qs.required = True
    add_queue_admin_parsers(qs.add_parser)
    m = add_parser("mailq", help=COMMAND_HELP["mailq"])
    m.add_argument("--json", action="store_true", help="one JSON object per message")
    t = add_parser("tlsrpt", help=COMMAND_HELP["tlsrpt"])
    ts = t.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    ts.required = True
    tshow = ts.add_parser("show", help="the reports of one day, per policy domain")
    tshow.add_argument("--date", metavar="YYYY-MM-DD", help="the UTC day (default: yesterday)")
    tshow.add_argument("--json", action="store_true", help="one JSON object per domain")
    tsend = ts.add_parser(
        "send", help="send the reports of a day now, and the POSTs due for a retry (cron)"
    )
    tsend.add_argument(
        "--date", metavar="YYYY-MM-DD", help="this UTC day, even if sent (default: yesterday, once)"
    )
    tsend.add_argument(
        "--postfix",
        nargs="?",
        const="",
        default=None,
        metavar="POSTFIX_CONFIG_DIR",
        help="Postfix-native mode: Postfix's main.cf ($MAIL_CONFIG, /etc/postfix), reports "
        "by mail through Postfix's sendmail",
    )


def _cmd_run(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    from mailcarrier.aio import run_event_loop
    from mailcarrier.config.watch import ConfigReloader
    from mailcarrier.delivery.request import Deliverer
    from mailcarrier.fleet.gate import check_fleet
    from mailcarrier.queue.daemon import QueueLock
    from mailcarrier.queue.names import QMGR
    from mailcarrier.queue.scheduler import QueueManager
    from mailcarrier.queue.tlsrpt_send import with_daily_reports
    from mailcarrier.queue.workers import AgentPool
    from mailcarrier.service import run_daemon, run_once

    config = ConfigReloader(args.config_dir, parse_overrides(args.overrides))
    settings = config.settings
    check_fleet(settings)  # before agent processes start: one line, exit 78
    with contextlib.ExitStack() as stack:
        log = ProgressLog(make_log(settings, stderr, stack, daemon=True))
        spool = open_spool(settings, log=log)
        stack.enter_context(QueueLock(spool.root))
        spool.clean_temporary()
        manager = QueueManager(settings, spool, _queue_deliverer(settings, log, spool), log=log)
        http = _http_listener(settings, manager, log)
        if isinstance(manager.deliverer, AgentPool):
            manager.deliverer.fork()  # before the event loop and any thread exist
        if args.once:
            # On a terminal: messages done of those found, rate, time left (progress.py).
            with terminal_progress(stderr, "run --once", "msg") as progress:
                log.progress = manager.progress = progress
                left = run_event_loop(run_once(manager, http))
            # Mail left queued because the fleet's Redis could not be asked: 75, try later.
            return EX_TEMPFAIL if left else 0

        def deliverer(new: Settings) -> Deliverer:
            for line in listener_changes(settings, new):
                log.warning(QMGR, line)
            return _queue_deliverer(new, log, spool)

        # TLSRPT (RFC 8460): yesterday's reports, once a day (queue/tlsrpt_send.py).
        daemon = run_daemon(manager, config, deliverer, http)
        run_event_loop(with_daily_reports(daemon, lambda: config.settings, spool, log))
    return 0


_LISTENER_PARAMETERS = ("http_listen", "http_listen_allow_remote", "http_listen_token_file")


def listener_changes(started: Settings, new: Settings) -> list[str]:
    """A reload keeps the http_listen listener as ``run`` started it (its address, its
    token): one line per listener parameter that the new configuration changed, saying so."""
    lines = []
    for name in _LISTENER_PARAMETERS:
        old, now = getattr(started.params, name), getattr(new.params, name)
        if old != now:
            shown = [
                ("yes" if v else "no") if isinstance(v, bool) else f'"{v}"' for v in (old, now)
            ]
            lines.append(
                f"reload: {name} changed from {shown[0]} to {shown[1]}: the listener keeps "
                "its old setting until mailcarrier run is restarted"
            )
    return lines


def _http_listener(settings: Settings, manager: QueueManager, log: LogSink) -> HttpListener | None:
    """The metrics and status listener of http_listen (observe/), made the scheduler's
    observer; None when http_listen is empty. prometheus-client is imported only here."""
    if not settings.params.http_listen.strip():
        return None
    try:
        from mailcarrier.observe import HttpListener, ListenConfig, Monitor
    except ImportError as exc:
        raise metrics_missing(exc) from None
    config = ListenConfig.from_settings(settings)
    if config is None:
        return None
    monitor = Monitor.from_settings(settings, manager.spool, manager.statistics)
    manager.observer = monitor
    return HttpListener(config, monitor, log)


def _queue_deliverer(settings: Settings, log: LogSink, spool: Spool) -> DeliveryAgent | AgentPool:
    """In-process agent, or a pool of agent processes (``delivery_agent_processes``);
    session transcripts for the postmaster are queued in `spool`."""
    from mailcarrier.queue.params import QueueParams
    from mailcarrier.queue.transcripts import TranscriptNotifier
    from mailcarrier.queue.workers import AgentPool, make_agent

    notify = TranscriptNotifier(spool, QueueParams(settings), log)
    processes = settings.params.delivery_agent_processes
    if processes > 1:
        return AgentPool(settings, processes, log, notify)
    return make_agent(settings, log, notify)


def _cmd_mailq(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    args.action = "list"
    return cmd_queue(args, stdin, stdout, stderr)


def _cmd_tlsrpt(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    """``tlsrpt show``: the reports of a day (queue/tlsrpt.py), as they would be sent;
    ``tlsrpt send``: send them (`_tlsrpt_send`)."""
    from mailcarrier.aio import run_event_loop
    from mailcarrier.queue.tlsrpt import day_reports, format_reports, yesterday

    day = args.date or yesterday()
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        raise UsageError(f"bad --date {day!r}: expected YYYY-MM-DD") from None
    if args.action == "send":
        return _tlsrpt_send(args, stderr)
    reports = run_event_loop(day_reports(queue_settings(args), day))
    if args.json:
        stdout.writelines(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in reports)
    else:
        stdout.writelines(line + "\n" for line in format_reports(reports))
    stdout.flush()
    return 0


def _tlsrpt_send(args: argparse.Namespace, stderr: TextIO) -> int:
    """``tlsrpt send``: one round of queue/tlsrpt_send.py's `send_due()`. With mailcarrier's
    queue, reports by mail are queued there (``run`` delivers them); with ``--postfix``,
    Postfix's main.cf is read as the native agent reads it and reports by mail go through
    Postfix's sendmail (postfix/sendmail.py), the log to Postfix's log and stderr."""
    from mailcarrier.aio import run_event_loop
    from mailcarrier.postfix.sendmail import native_settings, sendmail_mailer
    from mailcarrier.queue.tlsrpt_send import send_due

    with contextlib.ExitStack() as stack:
        log: LogSink
        mailer: Mailer | Spool
        if args.postfix is not None:
            overrides = tuple(parse_overrides(args.overrides).items())
            settings = native_settings(args.postfix, overrides)
            log = native_command_log(settings, stderr)
            stack.callback(log.close)
            mailer = sendmail_mailer(settings)
        else:
            settings = queue_settings(args)
            log = make_log(settings, stderr, stack)
            mailer = open_spool(settings, log=log)
        return run_event_loop(send_due(settings, mailer, log, day=args.date))


QUEUE_COMMANDS: dict[str, Command] = {
    "run": _cmd_run,
    "queue": cmd_queue,
    "mailq": _cmd_mailq,
    "tlsrpt": _cmd_tlsrpt,
}
