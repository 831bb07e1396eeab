"""The lean path's configuration: main.cf when it sets only what a submission reads, or None.

`load(config)` finds main.cf as config/settings.py `Settings.load` does (``-C``/``-c``, else
the per-user directory of config/defaults.py when it has a main.cf), reads it as
config/parser.py does, and returns a `Conf` with the values queue/submit.py uses, or None
when the general path must decide: a parameter outside `KNOWN`, a value the lean path does
not check as the parameter table would (anything with ``$`` but ``myorigin = $myhostname``
or ``$mydomain``; a size that is not plain digits; a host name that is not plain letters,
digits, hyphens and dots; a queue directory that is not a plain absolute path), a master.cf,
a log file (``maillog_file``, ``event_log_file``: their lines need log.py), or anything that
would be an error. The general path validates every parameter of the table; with only these
set, and these valid, every other parameter has its default, which is valid, so both accept
the same files. Host names are found as config/defaults.py finds them (gethostname, then
getfqdn for a name without a dot). It imports nothing of mailcarrier.
"""

from __future__ import annotations

import os
import stat

__all__ = ["KNOWN", "Conf", "load"]

# What a submission reads (queue/params.py, queue/submit.py, cli_sendmail.py).
KNOWN = frozenset(
    {
        "queue_directory",
        "myhostname",
        "mydomain",
        "myorigin",
        "header_size_limit",
        "message_size_limit",
        "smtputf8_enable",
        "requiretls_enable",
        "maillog_file",
        "event_log_file",
    }
)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_MINIMUM = {"header_size_limit": 1, "message_size_limit": 0}
_DEFAULTS = {"header_size_limit": 102400, "message_size_limit": 10240000}
_REFERENCES = {
    f"{o}{name}{c}": name
    for name in ("myhostname", "mydomain")
    for o, c in (("$", ""), ("${", "}"), ("$(", ")"))
}
DEFAULT_DOMAIN = "localdomain"


class Conf:
    """The parameters of a submission, as the general path would have them."""

    __slots__ = ("header_size_limit", "message_size_limit", "myhostname", "myorigin", "queue")

    def __init__(
        self, queue: str, myhostname: str, myorigin: str, header_limit: int, size_limit: int
    ) -> None:
        self.queue = queue  # the queue directory, as str(Path(...)) would write it
        self.myhostname = myhostname  # queue/params.py myhostname()
        self.myorigin = myorigin  # queue/params.py myorigin()
        self.header_size_limit = header_limit
        self.message_size_limit = size_limit


def load(config: str | None) -> Conf | None:
    """The configuration of directory (or main.cf file) `config`, or None (see above)."""
    if config is not None:
        if os.path.basename(config) == "main.cf":
            config = os.path.dirname(config) or "."
        if not _is(config, stat.S_ISDIR):
            return None
        directory: str | None = config
    else:
        home = _xdg("XDG_CONFIG_HOME", ".config")
        if home is None:
            return None
        candidate = os.path.join(home, "mailcarrier")
        found = _is(os.path.join(candidate, "main.cf"), stat.S_ISREG)
        if found is None:
            return None
        directory = candidate if found else None
    raw: dict[str, str] = {}
    if directory is not None:
        if _exists(os.path.join(directory, "master.cf")) is not False:
            return None
        settings = _read(os.path.join(directory, "main.cf"))
        if settings is None:
            return None
        raw = settings
    return _conf(raw)


def _is(path: str, kind: object) -> bool | None:
    """Whether `path` is of `kind` (S_ISDIR, S_ISREG); None when stat() fails otherwise
    than by its absence."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return None
    return bool(kind(mode))  # type: ignore[operator]


def _exists(path: str) -> bool | None:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return None
    return True


def _xdg(variable: str, fallback: str) -> str | None:
    """config/defaults.py `_xdg`, as a string; None when the home directory is unknown."""
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return value
    home = os.path.expanduser("~")
    return None if home.startswith("~") else os.path.join(home, fallback)


def _read(path: str) -> dict[str, str] | None:
    """config/parser.py `read_main_cf` and `parse_main_cf`: name -> value, the last setting
    winning; None for what would be an error there."""
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    logical: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if not logical:
                return None
            logical[-1] += " " + stripped
            continue
        logical.append(stripped)
    out: dict[str, str] = {}
    for setting in logical:
        name, sep, value = setting.partition("=")
        name = name.strip()
        if not sep or not name or not _NAME_CHARS.issuperset(name):
            return None
        out[name] = value.strip()
    return out


def _conf(raw: dict[str, str]) -> Conf | None:
    if not KNOWN.issuperset(raw):
        return None
    if raw.get("maillog_file", "") or raw.get("event_log_file", ""):
        return None
    for name in ("smtputf8_enable", "requiretls_enable"):
        if name in raw and raw[name].lower() not in ("yes", "no"):
            return None
    limits = {}
    for name, default in _DEFAULTS.items():
        text = raw.get(name)
        if text is None:
            limits[name] = default
        elif text.isascii() and text.isdigit() and int(text) >= _MINIMUM[name]:
            limits[name] = int(text)
        else:
            return None
    queue = _queue_directory(raw.get("queue_directory", ""))
    names = _names(raw)
    if queue is None or names is None:
        return None
    myhostname, myorigin = names
    return Conf(
        queue,
        myhostname,
        myorigin,
        limits["header_size_limit"],
        limits["message_size_limit"],
    )


def _queue_directory(text: str) -> str | None:
    """queue/params.py `queue_directory()` as a plain absolute path, or None."""
    if not text:
        state = _xdg("XDG_STATE_HOME", ".local/state")
        if state is None:
            return None
        text = os.path.join(state, "mailcarrier", "queue")
    plain = (
        text.isascii()
        and text.isprintable()
        and "$" not in text
        and text.startswith("/")
        and not text.startswith("//")
        and os.path.normpath(text) == text
    )
    return text if plain else None


def _names(raw: dict[str, str]) -> tuple[str, str] | None:
    """(myhostname, myorigin) as queue/params.py has them, or None."""
    for name in ("myhostname", "mydomain"):
        if raw.get(name) and not is_host_name(raw[name]):
            return None
    mydomain = raw.get("mydomain") or ""
    if "myhostname" in raw:
        host = raw["myhostname"]
    else:
        found = _default_host_name(mydomain)
        if found is None:
            return None
        host = found
    origin_text = raw.get("myorigin", "$myhostname")
    if "$" in origin_text:
        if origin_text not in _REFERENCES:
            return None
        if _REFERENCES[origin_text] == "myhostname":
            origin_text = host
        elif "mydomain" in raw:
            origin_text = raw["mydomain"]
        else:
            # config/defaults.py: the domain of myhostname's text, else the system's name.
            named = raw.get("myhostname") or _default_host_name(mydomain)
            if named is None:
                return None
            origin_text = _default_domain(named)
    elif origin_text and not is_host_name(origin_text):
        return None
    myhostname = host or "localhost"
    return myhostname, origin_text or myhostname


def is_host_name(text: str) -> bool:
    """Letters, digits and hyphens in dot-separated labels, no hyphen at either end of a
    label (a domain that every check of the general path takes, in addresses too)."""
    if not text or len(text) > 253:
        return False
    for label in text.split("."):
        if not label or label[0] == "-" or label[-1] == "-":
            return False
        if not _HOST_CHARS.issuperset(label):
            return False
    return True


def _default_host_name(mydomain: str) -> str | None:
    """config/defaults.py `_myhostname`: the system's name, made fully qualified."""
    # _socket, not socket: socket.py makes its enums at import, which costs more than the
    # rest of a submission; these are the same calls (socket.gethostname, socket.getfqdn).
    import _socket

    name = _socket.gethostname()
    if "." not in name:
        if not is_host_name(name) or len(name) > 63:
            return None
        fqdn = _getfqdn(name)
        if "." in fqdn and fqdn.split(".", 1)[0] == name:
            name = fqdn
        else:
            domain = mydomain if mydomain and "$" not in mydomain else DEFAULT_DOMAIN
            name = f"{name}.{domain}"
    return name if is_host_name(name) else None


def _getfqdn(name: str) -> str:
    """socket.getfqdn(name) of a host name without a dot."""
    import _socket

    try:
        # As bytes (the C function takes them as they are; typeshed says str): a str would
        # be encoded with the "idna" codec, which imports re and stringprep (~20 ms), and an
        # ASCII host name's IDNA form is the name itself.
        hostname, aliases, _ = _socket.gethostbyaddr(name.encode("ascii"))  # type: ignore[arg-type]
    except OSError:
        return name
    for alias in [hostname, *aliases]:
        if "." in alias:
            return alias
    return hostname


def _default_domain(myhostname: str) -> str:
    """config/defaults.py `_mydomain`."""
    _, dot, rest = myhostname.partition(".")
    return rest if dot and rest else DEFAULT_DOMAIN
