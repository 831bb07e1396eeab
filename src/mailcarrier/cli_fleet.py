"""The fleet command of `mailcarrier`: ``fleet status`` (the nodes seen recently, the
leases held and the rates used per destination, read from the Redis server that
``shared_state_server`` names; fleet/status.py reads and formats). `add_fleet_parsers`
adds it to cli.py's parser, `FLEET_COMMANDS` runs it; shared helpers are in
cli_support.py, the queue's commands in cli_queue.py.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import BinaryIO, TextIO

from mailcarrier.cli_support import COMMAND_HELP, Command, Parser, parse_overrides
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, TemporaryError

__all__ = ["FLEET_COMMANDS", "add_fleet_parsers"]


def add_fleet_parsers(add_parser: Callable[..., Parser]) -> None:
    """The fleet command, added with the command parser's `add_parser`."""
    f = add_parser("fleet", help=COMMAND_HELP["fleet"])
    fs = f.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    fs.required = True
    st = fs.add_parser("status", help="nodes seen recently, leases and rates per destination")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.add_argument(
        "--recent",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="nodes seen within this many seconds (default: 300)",
    )


def _cmd_fleet(args: argparse.Namespace, stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    # Imported when the command runs: other commands do not load the fleet's engine.
    from mailcarrier.aio import run_event_loop
    from mailcarrier.fleet.client import servers as fleet_servers
    from mailcarrier.fleet.engine import FleetUnavailable
    from mailcarrier.fleet.status import format_table, read_status
    from mailcarrier.fleet.status import to_json as fleet_json

    settings = Settings.load(args.config_dir, parse_overrides(args.overrides))
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


FLEET_COMMANDS: dict[str, Command] = {
    "fleet": _cmd_fleet,
}
