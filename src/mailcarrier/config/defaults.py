"""Defaults that depend on the machine or the user rather than on the parameter table.

`dynamic_default(name, raw_lookup)` returns the computed default of ``myhostname``,
``mydomain``, ``config_directory``, ``queue_directory``, ``data_directory``, ``process_id``
and ``process_name``, or None for every other parameter. Per-user XDG locations keep a
non-root user away from /etc and /var; nothing here creates a directory.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_DOMAIN = "localdomain"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec says relative paths in these variables are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def default_config_directory() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "mailcarrier"


def default_queue_directory() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "mailcarrier" / "queue"


def default_data_directory() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "mailcarrier" / "data"


def _myhostname(raw: Callable[[str], str | None]) -> str:
    name = socket.gethostname()
    if "." in name:
        return name
    fqdn = socket.getfqdn(name)
    if "." in fqdn and fqdn.split(".", 1)[0] == name:
        return fqdn
    # Like Postfix: a bare host name gets $mydomain, or "localdomain", appended.
    domain = raw("mydomain") or ""
    if not domain or "$" in domain:
        domain = DEFAULT_DOMAIN
    return f"{name}.{domain}"


def _mydomain(myhostname: str) -> str:
    _, dot, rest = myhostname.partition(".")
    return rest if dot and rest else DEFAULT_DOMAIN


def dynamic_default(name: str, raw: Callable[[str], str | None]) -> str | None:
    """The computed default of `name`; `raw` looks up main.cf/-o text of other parameters."""
    if name == "myhostname":
        return _myhostname(raw)
    if name == "mydomain":
        return _mydomain(raw("myhostname") or _myhostname(raw))
    if name == "config_directory":
        return str(default_config_directory())
    if name == "queue_directory":
        return str(default_queue_directory())
    if name == "data_directory":
        return str(default_data_directory())
    if name == "process_id":
        return str(os.getpid())
    if name == "process_name":
        return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "mailcarrier"
    return None
