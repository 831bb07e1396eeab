"""This node's name in the fleet: `node_id`, or one generated once and kept.

`node_id(settings)` is the `node_id` parameter when set; otherwise the name stored in
``$data_directory/fleet_node_id``, made the first time (the short host name and eight random
hex digits) and created once (durable.create_once), so that a node keeps its name across
restarts, two nodes on one host differ, and processes sharing a data directory that start
together (Postfix-native agents) agree on the name: the first to create the file wins and the
others read its name. A lease names the node holding it (gate.py), and
``mailcarrier fleet status`` lists nodes by it.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from mailcarrier.config.fleetsyntax import check_node_id
from mailcarrier.config.settings import Settings
from mailcarrier.durable import create_once, write_atomically
from mailcarrier.errors import ConfigError

__all__ = ["node_id"]

FILE_NAME = "fleet_node_id"


def node_id(settings: Settings) -> str:
    given = settings.params.node_id
    if given:
        return given
    path = Path(settings.params.data_directory) / FILE_NAME
    stored = _stored(path)
    if stored:
        return stored
    host = socket.gethostname().split(".")[0] or "node"
    made = f"{host[:40]}-{secrets.token_hex(4)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if create_once(path, (made + "\n").encode()):
            return made
        stored = _stored(path)  # another process made it first
        if stored:
            return stored
        write_atomically(path, (made + "\n").encode())  # an empty file: replaced
    except OSError as exc:
        raise ConfigError(f"node_id: cannot write {path}: {exc}", parameter="node_id") from None
    return made


def _stored(path: Path) -> str:
    """The checked name in `path`, or "" when there is no file (or an empty one)."""
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"node_id: cannot read {path}: {exc}", parameter="node_id") from None
    if stored:
        try:
            check_node_id(stored)
        except ValueError as exc:
            raise ConfigError(f"node_id: {path}: {exc}", parameter="node_id") from None
    return stored
