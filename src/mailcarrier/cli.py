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
SIGPIPE in the same place. The queue's commands are in cli_queue.py, ``observe --postfix``
in cli_observe.py, sendmail's in cli_sendmail.py, what every command shares (the parser, -o
overrides, log sinks) in cli_support.py. A command imports what only it needs when it
runs: ``sendmail`` starts without loading the delivery engine, the table builder or the
Postfix installer (tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, Final, NoReturn, TextIO, cast

from mailcarrier import __version__
from mailcarrier.cli_support import (
    COMMAND_HELP,
    PROG,
    Command,
    Parser,
    add_dsn_options,
    load_settings,
    make_log,
    parse_overrides,
    say,
)
from mailcarrier.config.settings import Settings
from mailcarrier.console import Output, StdoutClosed, discard_output
from mailcarrier.errors import (
    ConfigError,
    DataError,
    MailcarrierError,
    MessageTooBigError,
    TemporaryError,
    UsageError,
)
from mailcarrier.status import (
    EX_CONFIG,
    EX_DATAERR,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
)

EX_PIPE = 128 + signal.SIGPIPE  # 141: standard output went away (see the opening paragraph)


def _build_parser(command: str | None = None) -> Parser:
    """The command line's parser. With `command` (the command word, when it names one),
    only that command's arguments are added, and only its module imported: the others get
    a parser of their own with their help line and nothing else, which is all that parsing
    a command line of `command` ever asks of them (see `_split_command`)."""
    parser = Parser(prog=PROG, description="Postfix-compatible SMTP/LMTP delivery in Python")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-c", dest="config_dir", metavar="CONFIG_DIR", help="directory of main.cf")
    parser.add_argument(
        "-o",
        dest="overrides",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a main.cf parameter for this run",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in _GROUPS:
        if command in COMMAND_HELP and command not in group:
            for name in group:
                sub.add_parser(name, help=COMMAND_HELP[name], add_help=name not in _PASSTHROUGH)
        else:
            _adder(group[0])(sub.add_parser)
    return parser


# The commands by the function that adds their arguments, in `mailcarrier --help`'s order.
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("deliver",),
    ("conf",),
    ("map",),
    ("postfix",),
    ("sendmail",),
    ("run", "queue", "mailq", "tlsrpt"),
    ("fleet",),
    ("observe",),
)


def _adder(command: str) -> Callable[[Callable[..., Parser]], None]:
    """What adds `command`'s parser (and those of its group), its module imported now."""
    if command == "deliver":
        return _add_deliver_parser
    if command in _PASSTHROUGH:

        def add_passthrough(add_parser: Callable[..., Parser]) -> None:
            add_parser(command, help=COMMAND_HELP[command], add_help=False)

        return add_passthrough
    if command == "sendmail":
        from mailcarrier.cli_sendmail import add_sendmail_parser

        return add_sendmail_parser
    if command == "fleet":
        from mailcarrier.cli_fleet import add_fleet_parsers

        return add_fleet_parsers
    if command == "observe":
        from mailcarrier.cli_observe import add_observe_parser

        return add_observe_parser
    from mailcarrier.cli_queue import add_queue_parsers

    return add_queue_parsers


def _add_deliver_parser(add_parser: Callable[..., Parser]) -> None:
    d = add_parser("deliver", help=COMMAND_HELP["deliver"])
    d.add_argument("--nexthop", required=True, metavar="DEST", help="destination (see smtp(8))")
    d.add_argument(
        "--transport",
        default="smtp",
        metavar="TRANSPORT",
        help="smtp, lmtp, or an smtp/lmtp service of master.cf (its -o settings apply)",
    )
    d.add_argument("-f", dest="sender", required=True, metavar="SENDER", help='"" for <>')
    d.add_argument(
        "-r",
        dest="recipients",
        action="append",
        required=True,
        metavar="RCPT",
        help="a recipient (repeat for more)",
    )
    d.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_dsn_options(d)
    d.add_argument(
        "-bv",
        dest="probe",
        action="store_true",
        help="verify the recipients (MAIL, RCPT, RSET) without a message, as sendmail -bv",
    )
    d.add_argument(
        "--requiretls",
        action="store_true",
        help="REQUIRETLS (RFC 8689): verified TLS to a securely found server that has it",
    )
    d.add_argument(
        "file", nargs="?", default=None, metavar="FILE|-", help="the message (default: stdin)"
    )


# conf, map and postfix parse their own arguments (postconf and postmap style): see run().
_PASSTHROUGH: Final = ("conf", "map", "postfix")


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


def _transport(name: str, settings: Settings) -> tuple[str, str]:
    """``deliver --transport``: (client, master.cf service) of a transport name, as the
    queue resolves it (route.py): a master.cf service first, then smtp, relay and lmtp."""
    from mailcarrier.queue.route import BUILTIN_AGENTS, did_you_mean

    service = settings.services.get(name)
    if service is not None:
        return service.kind, name
    if name in BUILTIN_AGENTS:
        return BUILTIN_AGENTS[name], ""
    hint = did_you_mean(name, [*BUILTIN_AGENTS, *settings.services])
    raise UsageError(
        f'--transport: unknown transport "{name}" (want smtp, lmtp or an smtp or lmtp '
        f"service of master.cf){hint}"
    )


def _cmd_deliver(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    # The delivery engine loads only for the command that delivers (see the opening).
    from mailcarrier.aio import run_event_loop
    from mailcarrier.api import deliver
    from mailcarrier.delivery.autodetect import ContentScan, MailSource, declare
    from mailcarrier.delivery.request import DeliveryRequest, Recipient
    from mailcarrier.message_input import read_message
    from mailcarrier.notify import Notify
    from mailcarrier.queue.addresses import check_address
    from mailcarrier.queue.ids import new_queue_id
    from mailcarrier.queue.params import QueueParams
    from mailcarrier.routing.nexthop import parse_nexthop, split_destinations

    settings = load_settings(args, stderr)
    transport, service = _transport(args.transport, settings)
    if args.probe and args.file is not None:
        # As sendmail -bv: "do not collect or deliver a message".
        raise UsageError(f'-bv reads no message, but a message file was given: "{args.file}"')
    hops = split_destinations(args.nexthop)
    if not hops:
        raise UsageError("--nexthop: empty destination")
    for hop in hops:
        parse_nexthop(hop, transport=transport, lmtp_tcp_port=settings.params.lmtp_tcp_port)
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
            transport=transport,
            service=service,
            encoding=declared.encoding,
            smtputf8=declared.smtputf8,
            dsn_ret=args.ret,
            dsn_envid=args.envid,
            probe=args.probe,
            requiretls=args.requiretls,
            tls_required_no=declared.tls_required_no,
        )
        log = make_log(settings, stderr, stack)
        result = run_event_loop(deliver(request, config=settings, log=log))
    if args.json:
        stdout.write(json.dumps(result.to_json()) + "\n")
        stdout.flush()
    return result.exit_code


def _command(name: str) -> Command:
    """The function that runs command `name` (deliver, conf, map and postfix: see `run`),
    its module imported now."""
    if name == "sendmail":
        from mailcarrier.cli_sendmail import cmd_sendmail

        return cmd_sendmail
    if name == "fleet":
        from mailcarrier.cli_fleet import FLEET_COMMANDS

        return FLEET_COMMANDS[name]
    if name == "observe":
        from mailcarrier.cli_observe import OBSERVE_COMMANDS

        return OBSERVE_COMMANDS[name]
    from mailcarrier.cli_queue import QUEUE_COMMANDS

    if name not in QUEUE_COMMANDS:
        raise UsageError(f"unknown command {name}")
    return QUEUE_COMMANDS[name]


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
        if not rest:  # no command: what there is to run
            stderr.write(_build_parser().format_help())
            return EX_USAGE
        passthrough: list[str] = []
        if rest and rest[0] in _PASSTHROUGH:
            words, passthrough = [*head, rest[0]], rest[1:]
        args = _build_parser(rest[0]).parse_args(words)
        if args.command == "deliver":
            return _cmd_deliver(args, stdin, stdout, stderr)
        if args.command == "conf":
            from mailcarrier.config.postconf import conf_main

            return conf_main(
                passthrough,
                config_dir=args.config_dir,
                overrides=parse_overrides(args.overrides),
                stdout=stdout,
                stderr=stderr,
            )
        if args.command == "map":
            from mailcarrier.tables.command import map_main

            keys = io.TextIOWrapper(stdin, encoding="utf-8", errors="surrogateescape")
            return map_main(passthrough, stdout, stderr, keys)
        if args.command == "postfix":
            from mailcarrier.postfix.install import postfix_main

            return postfix_main(passthrough, stdout, stderr)
        return _command(args.command)(args, stdin, stdout, stderr)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UsageError as exc:
        say(stderr, f"fatal: {exc}")
        return EX_USAGE
    except ConfigError as exc:
        say(stderr, f"fatal: {exc}")
        return EX_CONFIG
    except MessageTooBigError as exc:  # Postfix's sendmail: EX_UNAVAILABLE
        say(stderr, f"fatal: {exc}")
        return EX_UNAVAILABLE
    except DataError as exc:
        say(stderr, f"fatal: {exc}")
        return EX_DATAERR
    except TemporaryError as exc:  # try again later, as sysexits means it
        say(stderr, f"fatal: {exc}")
        return EX_TEMPFAIL
    except StdoutClosed:
        discard_output(real_stdout)
        return EX_PIPE
    except MailcarrierError as exc:
        say(stderr, f"fatal: {exc}")
        return EX_SOFTWARE
    except KeyboardInterrupt:
        stderr.write(f"{PROG}: interrupted\n")
        return 130


def sendmail_main() -> NoReturn:
    """The ``mailcarrier-sendmail`` entry point: ``mailcarrier sendmail ARGS...``."""
    sys.exit(run(["sendmail", *sys.argv[1:]]))


def mailq_main() -> NoReturn:
    """The ``mailcarrier-mailq`` entry point: ``mailcarrier mailq ARGS...``."""
    sys.exit(run(["mailq", *sys.argv[1:]]))


def main() -> NoReturn:
    sys.exit(run())


__all__ = ["mailq_main", "main", "run", "sendmail_main"]
