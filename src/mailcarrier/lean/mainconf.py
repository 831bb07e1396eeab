"""The lean path's configuration: main.cf when the lean path can vouch for it, or None.

`load(config)` finds main.cf as config/settings.py `Settings.load` does (``-C``/``-c``, else
the per-user directory of config/defaults.py when it has a main.cf), reads it as
config/parser.py does, and returns a `Conf` with the values queue/submit.py uses, or None
when the general path must decide. The parameters a submission reads (`KNOWN`) are taken
with the values the lean path checks itself (``myorigin`` a name, ``$myhostname`` or
``$mydomain``; sizes in plain digits; host names of letters, digits, hyphens and dots; a
plain absolute queue directory and ``maillog_file``; no ``event_log_file``, whose records
need events.py). Every other parameter the general path validates too, and must not refuse what
the lean path takes: `valid()` checks each against the table (paramtable.py, generated
from config/) as config/convert.py would, for a value without ``$`` of a parameter whose
value no other default depends on but as its mirror; anything else (an expression, a
table, a check not written out here, a per-transport name, a master.cf, an error) goes to
the general path. A parameter that submission starts to read must join `KNOWN`. Host names
are found as config/defaults.py finds them (gethostname, then getfqdn for a name without a
dot). It imports nothing of mailcarrier but lean/.
"""

from __future__ import annotations

import os
import stat

__all__ = ["KNOWN", "Conf", "is_host_name", "load", "valid"]

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
        "syslog_name",
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

    __slots__ = (
        "header_size_limit",
        "maillog",
        "message_size_limit",
        "myhostname",
        "myorigin",
        "queue",
        "syslog_name",
    )

    def __init__(
        self, queue: str, myhostname: str, myorigin: str, header_limit: int, size_limit: int
    ) -> None:
        self.queue = queue  # the queue directory, as str(Path(...)) would write it
        self.myhostname = myhostname  # queue/params.py myhostname()
        self.myorigin = myorigin  # queue/params.py myorigin()
        self.header_size_limit = header_limit
        self.message_size_limit = size_limit
        self.maillog = ""  # maillog_file, when sendmail logs there ("": it logs nothing)
        self.syslog_name = "postfix"


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
    if not all(name in KNOWN or valid(name, value) for name, value in raw.items()):
        return None
    maillog = raw.get("maillog_file", "")
    syslog_name = raw.get("syslog_name", "postfix")
    if raw.get("event_log_file", "") or not _plain_text(syslog_name):
        return None
    if maillog in ("", "/dev/stderr"):  # cli_sendmail.py `_quiet_log`: nothing is logged
        maillog = ""
    elif maillog == "/dev/stdout" or _plain_path(maillog) is None:
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
    conf = Conf(
        queue,
        myhostname,
        myorigin,
        limits["header_size_limit"],
        limits["message_size_limit"],
    )
    conf.maillog, conf.syslog_name = maillog, syslog_name
    return conf


def _plain_text(text: str) -> bool:
    """Printable ASCII without ``$``: a value that expands to itself and prints as itself."""
    return bool(text) and text.isascii() and text.isprintable() and "$" not in text


def _queue_directory(text: str) -> str | None:
    """queue/params.py `queue_directory()` as a plain absolute path, or None."""
    if not text:
        state = _xdg("XDG_STATE_HOME", ".local/state")
        if state is None:
            return None
        text = os.path.join(state, "mailcarrier", "queue")
    return _plain_path(text)


def _plain_path(text: str) -> str | None:
    """`text` when it is a plain absolute path (written as pathlib would write it)."""
    plain = (
        _plain_text(text)
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


# --- the parameters a submission does not read -------------------------------------------

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DIGITS = frozenset("0123456789")


def valid(name: str, value: str) -> bool:
    """Whether config/settings.py takes ``name = value`` (a parameter outside `KNOWN`) and
    nothing else changes with it: True only when the lean path is sure. A name that no
    default refers to otherwise than as its mirror (paramtable.py `REFERENCED`), a value
    without ``$``, converted as config/convert.py `convert` would for the kinds and checks
    written out here; an unknown name is a warning there (sendmail shows none), unless it is
    a per-transport one, which is checked there."""
    from mailcarrier.lean import paramtable  # here: only a main.cf with more needs it

    if "$" in value or "\0" in value or name in paramtable.REFERENCED:
        return False
    spec = paramtable.TABLE.get(name)
    if spec is None:
        return not any(
            name.endswith("_" + suffix) and len(name) > len(suffix) + 1
            for suffix in paramtable.PER_TRANSPORT
        )
    kind, minimum, maximum, unit, choices, check = spec
    text = value.strip()
    if kind == "read_only":
        return True
    if kind == "bool":
        return text.lower() in ("yes", "no")
    if kind in ("int", "time"):
        number = _number(text) if kind == "int" else _time(text, str(unit))
        if number is None or (check and check != "linelimit") or (check and number == 1):
            return False
        return (minimum is None or number >= minimum) and (maximum is None or number <= maximum)
    if kind == "list":
        return "{" not in text and "}" not in text and _chosen(_split(text), choices)
    if kind == "maps":
        return not text
    if not text:
        return True
    if check and not (check == "absolute_or_empty" and text.startswith("/")):
        return False
    return _chosen([text], choices)


def _number(text: str) -> int | None:
    """convert.py `parse_int` of ASCII digits."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not _DIGITS.issuperset(digits):
        return None
    return int(text)


def _time(text: str, unit: str) -> float | None:
    """convert.py `parse_time` (ASCII digits), in the parameter's own unit for the range."""
    number, letter = (text[:-1], text[-1]) if text[-1:] in _TIME_UNITS else (text, "")
    whole, dot, fraction = number.partition(".")
    if not whole or not _DIGITS.issuperset(whole) or (dot and not fraction):
        return None
    if fraction and not _DIGITS.issuperset(fraction):
        return None
    seconds = float(number) * _TIME_UNITS[letter or unit]
    return seconds / _TIME_UNITS[unit]


def _split(text: str) -> list[str]:
    """tables/text.py `split_braced` of text without braces: commas, spaces and tabs."""
    return [item for item in text.replace(",", " ").replace("\t", " ").split(" ") if item]


def _chosen(items: list[str], choices: object) -> bool:
    """convert.py `_check_choice` of each item."""
    return not choices or all(item.lower() in choices for item in items)  # type: ignore[operator]
