"""``mailcarrier queue``: list, show, shape, flush, hold, release, delete, requeue (what
Postfix's mailq, postcat, qshape, postqueue and postsuper do). `add_queue_admin_parsers`
adds the actions to the ``queue`` parser; `cmd_queue` runs them (cli_queue.py's sendmail
-bp and -q, and mailq, come here too).

``list`` and the bulk actions take selections (``--domain``, ``--sender``, ``--older-than``,
``--reason``: queue/select.py); the actions act on the queue IDs named, or ``ALL``, or with
a selection and no IDs on every message it chooses. ``--dry-run`` prints one line per
message an action would touch (``ID: would be placed on hold``) and touches none. On a
terminal, an action shows a progress line (progress.py) on standard error. ``shape`` is
qshape(1): queue/shape.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, TextIO

from mailcarrier.cli_support import PROG, Parser, make_log, queue_settings
from mailcarrier.errors import UsageError
from mailcarrier.progress import terminal_progress
from mailcarrier.queue.select import Selection, parse_selection
from mailcarrier.queue.shape import DEFAULT_SHAPE_QUEUES, Shape, format_shape, shape_queue
from mailcarrier.queue.show import Parts, show_message
from mailcarrier.queue.spool import open_spool

if TYPE_CHECKING:
    from mailcarrier.queue.admin import QueueAdmin

__all__ = ["add_queue_admin_parsers", "cmd_queue"]

_ACTIONS = ("flush", "hold", "release", "delete", "requeue")
_SHAPE_QUEUES = ("incoming", "active", "deferred", "hold")
_DONE = {
    "hold": "Placed on hold",
    "release": "Released from hold",
    "delete": "Deleted",
    "requeue": "Requeued",
    "flush": "Flushed",
}


def _add_selections(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--domain",
        dest="select_domains",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a pending recipient in DOMAIN (.DOMAIN: its subdomains); repeat for any of them",
    )
    parser.add_argument(
        "--sender",
        dest="select_senders",
        action="append",
        default=[],
        metavar="SENDER",
        help="the sender is user@domain, @domain, domain, user@ or <>; repeat for any of them",
    )
    parser.add_argument(
        "--older-than",
        dest="select_older_than",
        default=None,
        metavar="TIME",
        help="arrived longer ago than TIME (30m, 2h, 1d; a bare number is seconds)",
    )
    parser.add_argument(
        "--reason",
        dest="select_reasons",
        action="append",
        default=[],
        metavar="REGEX",
        help="a pending recipient's last deferral reason matches REGEX (Python syntax)",
    )


def _add_shape(add_parser: Callable[..., Parser]) -> None:
    shape = add_parser("shape", help="domains (or senders) against message ages, like qshape")
    shape.add_argument(
        "queues",
        nargs="*",
        metavar="QUEUE",
        help="incoming, active, deferred, hold (default: incoming and active)",
    )
    shape.add_argument("-s", dest="senders", action="store_true", help="sender domains")
    shape.add_argument("-p", dest="parents", action="store_true", help="parent domains too")
    for flag, dest, default, text in (
        ("-m", "min_subdomains", 5, "with -p: a parent's least subdomains shown (5)"),
        ("-b", "buckets", 10, "the number of age buckets (10)"),
        ("-t", "bucket_time", 5, "the first bucket's age limit in minutes (5)"),
        ("-w", "width", 80, "the width of the table (80)"),
        ("-n", "top", 0, "show the N biggest rows after TOTAL (0: all)"),
    ):
        shape.add_argument(flag, dest=dest, type=int, default=default, metavar="N", help=text)
    shape.add_argument(
        "-l", dest="linear", action="store_true", help="buckets grow linearly, not doubling"
    )


def add_queue_admin_parsers(add_parser: Callable[..., Parser]) -> None:
    """The actions of ``queue``, added with its subparsers' `add_parser`."""
    lst = add_parser("list", help="list queued mail like mailq")
    lst.add_argument("--json", action="store_true", help="one JSON object per message")
    _add_selections(lst)
    show = add_parser("show", help="one message's envelope and content, like postcat")
    show.add_argument("queue_id", metavar="QUEUE_ID", help="the message")
    for flag, text in (
        ("--envelope", "the envelope records (postcat -e)"),
        ("--headers", "the header section (postcat -h)"),
        ("--body", "the body (postcat -b)"),
    ):
        show.add_argument(flag, action="store_true", help=text + "; all three by default")
    _add_shape(add_parser)
    for name in _ACTIONS:
        text = (
            "make deferred mail due now (all of it by default)"
            if name == "flush"
            else f"{name} messages by queue ID, ALL, or a selection"
        )
        a = add_parser(name, help=text)
        a.add_argument("ids", nargs="*", metavar="QUEUE_ID|ALL", help="queue IDs, or ALL")
        _add_selections(a)
        a.add_argument(
            "--dry-run", action="store_true", help="print what would be touched; touch nothing"
        )


def _selection(args: argparse.Namespace) -> Selection:
    """The selection options (their own names: sendmail's -f is `args.sender`)."""
    return parse_selection(
        getattr(args, "select_domains", []),
        getattr(args, "select_senders", []),
        getattr(args, "select_older_than", None),
        getattr(args, "select_reasons", []),
    )


def _shape(args: argparse.Namespace) -> Shape:
    for queue in args.queues:
        if queue not in _SHAPE_QUEUES:
            raise UsageError(f"queue shape: {queue!r}: not one of {', '.join(_SHAPE_QUEUES)}")
    for name, least in (("buckets", 1), ("bucket_time", 1), ("min_subdomains", 1), ("top", 0)):
        if getattr(args, name) < least:
            flag = {"buckets": "-b", "bucket_time": "-t", "min_subdomains": "-m", "top": "-n"}
            raise UsageError(f"queue shape: {flag[name]} must be at least {least}")
    return Shape(
        senders=args.senders,
        parents=args.parents,
        min_subdomains=args.min_subdomains,
        buckets=args.buckets,
        bucket_time=args.bucket_time,
        linear=args.linear,
        width=args.width,
        top=args.top,
    )


def cmd_queue(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    # queue/admin.py brings the scheduler's daemon module: loaded when the command runs.
    from mailcarrier.queue.admin import QueueAdmin, format_mailq

    settings = queue_settings(args)
    selection = _selection(args)  # before anything is opened: a bad one is one line
    shape = _shape(args) if args.action == "shape" else None
    utf8 = settings.params.smtputf8_enable
    with contextlib.ExitStack() as stack:
        log = make_log(settings, stderr, stack)
        admin = QueueAdmin(open_spool(settings, log=log), log=log)
        if args.action == "list":
            if getattr(args, "json", False):
                for entry in admin.list_queue(selection):
                    stdout.write(json.dumps(entry.to_json()) + "\n")
            else:
                stdout.write(format_mailq(admin.list_queue(selection), utf8=utf8))
        elif args.action == "show":
            chosen = Parts(args.envelope, args.headers, args.body)
            parts = chosen if (args.envelope or args.headers or args.body) else Parts()
            for line in show_message(admin.spool, args.queue_id, parts, utf8=utf8):
                stdout.write(line + "\n")
        elif shape is not None:
            queues = args.queues or DEFAULT_SHAPE_QUEUES
            stdout.write(format_shape(shape_queue(admin.spool, queues, shape), utf8=utf8))
        else:
            return _act(admin, args, selection, stdout, stderr)
        stdout.flush()
    return 0


def _act(
    admin: QueueAdmin,
    args: argparse.Namespace,
    selection: Selection,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """A bulk action: what `plan` chose, printed (``--dry-run``) or done."""
    action, ids = args.action, list(getattr(args, "ids", []))
    if not ids and selection.empty and action != "flush":
        raise UsageError(f"queue {action}: name queue IDs, ALL, or select messages")
    if selection.empty:
        pairs = admin.plan(action, ids)
    else:  # every message is read to see if it is chosen: long on a large queue, so shown
        with terminal_progress(stderr, f"{action}: reading", "msg") as progress:
            pairs = admin.plan(action, ids, selection, progress)
    count = len(pairs)
    plural = "" if count == 1 else "s"
    if getattr(args, "dry_run", False):
        note = admin.note(action)
        stdout.writelines(f"{queue_id}: would be {note}\n" for _, queue_id in pairs)
        stdout.flush()
        stderr.write(f"{PROG}: dry run: {count} message{plural} would be {note}\n")
        return 0
    with terminal_progress(stderr, action, "msg", total=count) as progress:
        done = admin.apply(action, pairs, progress)
    if action != "flush":
        plural = "" if done == 1 else "s"
        stderr.write(f"{PROG}: {_DONE[action]}: {done} message{plural}\n")
    return 0
