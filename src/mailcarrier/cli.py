"""The `mailcarrier` command: the only place that exits, prints errors or chooses log sinks.

    mailcarrier [-c CONFIG_DIR] [-o NAME=VALUE]... COMMAND ...

Each command returns a sysexits code: 0 success, 64 usage, 65 bad input data, 69 a recipient
bounced (none deferred), 75 a recipient deferred, 78 configuration error. Errors are one line
naming what was wrong; no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import BinaryIO, NoReturn, TextIO

from mailcarrier.api import deliver
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.request import DeliveryRequest, Notify, Recipient
from mailcarrier.errors import ConfigError, DataError, MailcarrierError, UsageError
from mailcarrier.log import LogSink, StreamLog
from mailcarrier.queue.ids import new_queue_id
from mailcarrier.routing.nexthop import parse_nexthop, split_destinations
from mailcarrier.status import EX_CONFIG, EX_DATAERR, EX_SOFTWARE, EX_USAGE

PROG = "mailcarrier"
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


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
    d.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    return parser


def _parse_overrides(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f'-o "{item}": expected NAME=VALUE')
        out[name] = value.strip()
    return out


def _load_settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config_dir, _parse_overrides(args.overrides))


def _spool_input(src: BinaryIO, dest: BinaryIO) -> bool:
    """Copy the message to a temporary file in bounded chunks; report 8-bit content."""
    eight_bit = False
    while block := src.read(65536):
        if not eight_bit and _EIGHT_BIT.search(block):
            eight_bit = True
        dest.write(block)
    dest.flush()
    return eight_bit


def _make_log(settings: Settings, stderr: TextIO, stack: contextlib.ExitStack) -> LogSink:
    hostname = settings.get_str("myhostname")
    name = settings.get_str("syslog_name")
    maillog = settings.get_str("maillog_file")
    sinks: list[LogSink] = [StreamLog(stderr, hostname=hostname, syslog_name=name)]
    if maillog and maillog not in ("/dev/stderr",):
        if maillog == "/dev/stdout":
            stream: TextIO = sys.stdout
        else:
            try:
                stream = stack.enter_context(open(maillog, "a", encoding="utf-8"))  # noqa: SIM115
            except OSError as exc:
                raise ConfigError(
                    f"parameter maillog_file: cannot open {maillog}: {exc.strerror}",
                    parameter="maillog_file",
                    value=maillog,
                ) from exc
        sinks.append(StreamLog(stream, hostname=hostname, syslog_name=name))
    return sinks[0] if len(sinks) == 1 else _Tee(sinks)


class _Tee:
    def __init__(self, sinks: list[LogSink]) -> None:
        self.sinks = sinks

    def info(self, process: str, text: str) -> None:
        for s in self.sinks:
            s.info(process, text)

    def warning(self, process: str, text: str) -> None:
        for s in self.sinks:
            s.warning(process, text)


def _cmd_deliver(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    settings = _load_settings(args)
    hops = split_destinations(args.nexthop)
    if not hops:
        raise UsageError("--nexthop: empty destination")
    for hop in hops:
        parse_nexthop(
            hop, transport=args.transport, lmtp_tcp_port=settings.get_str("lmtp_tcp_port")
        )
    notify = Notify.parse(args.notify) if args.notify else Notify.NONE
    with contextlib.ExitStack() as stack:
        spool = stack.enter_context(tempfile.TemporaryFile(prefix="mailcarrier-"))
        if args.file == "-":
            eight_bit = _spool_input(stdin, spool)
        else:
            try:
                src = stack.enter_context(open(args.file, "rb"))
            except OSError as exc:
                raise DataError(f"cannot open message file {args.file}: {exc.strerror}") from exc
            eight_bit = _spool_input(src, spool)
        request = DeliveryRequest(
            queue_id=new_queue_id(),
            nexthop=args.nexthop,
            sender=args.sender,
            recipients=tuple(Recipient(r, dsn_notify=notify) for r in args.recipients),
            content=spool,
            transport=args.transport,
            encoding="8bit" if eight_bit else "7bit",
            dsn_ret=args.ret,
            dsn_envid=args.envid,
        )
        log = _make_log(settings, stderr, stack)
        result = asyncio.run(deliver(request, config=settings, log=log))
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
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    try:
        args = _build_parser().parse_args(list(argv) if argv is not None else None)
        if args.command == "deliver":
            return _cmd_deliver(args, stdin, stdout, stderr)
        raise UsageError(f"unknown command {args.command}")
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UsageError as exc:
        stderr.write(f"{PROG}: fatal: {exc}\n")
        return EX_USAGE
    except ConfigError as exc:
        stderr.write(f"{PROG}: fatal: {exc}\n")
        return EX_CONFIG
    except DataError as exc:
        stderr.write(f"{PROG}: fatal: {exc}\n")
        return EX_DATAERR
    except MailcarrierError as exc:
        stderr.write(f"{PROG}: fatal: {exc}\n")
        return EX_SOFTWARE
    except KeyboardInterrupt:
        stderr.write(f"{PROG}: interrupted\n")
        return 130


def main() -> NoReturn:
    sys.exit(run())


__all__ = ["main", "run"]
