"""This node's name in the fleet: `node_id`, or one generated once and kept.

`node_id(settings)` is the `node_id` parameter when set; otherwise the name stored in
``$data_directory/fleet_node_id``, made the first time (the short host name and eight random
hex digits) and written atomically (durable.py), so that a node keeps its name across
restarts and two nodes on one host differ. A lease names the node holding it (gate.py), and
``mailcarrier fleet status`` lists nodes by it.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from mailcarrier.config.fleetsyntax import check_node_id
from mailcarrier.config.settings import Settings
from mailcarrier.durable import write_atomically
from mailcarrier.errors import ConfigError

__all__ = ["node_id"]

FILE_NAME = "fleet_node_id"


def node_id(settings: Settings) -> str:
    given = settings.params.node_id
    if given:
        return given
    path = Path(settings.params.data_directory) / FILE_NAME
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"node_id: cannot read {path}: {exc}", parameter="node_id") from None
    if stored:
        try:
            check_node_id(stored)
        except ValueError as exc:
            raise ConfigError(f"node_id: {path}: {exc}", parameter="node_id") from None
        return stored
    host = socket.gethostname().split(".")[0] or "node"
    made = f"{host[:40]}-{secrets.token_hex(4)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (made + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"node_id: cannot write {path}: {exc}", parameter="node_id") from None
    return made
