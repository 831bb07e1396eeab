"""The lean path's command line: the sendmail options of an ordinary submission, or None.

`parse(argv, command_word=True)` reads ``[-c DIR] sendmail OPTIONS... RECIPIENTS...`` (the
``mailcarrier`` command; without `command_word`, ``mailcarrier-sendmail``'s arguments) and
returns a `Request`, or None for anything else: then cli.py's parser (argparse) takes the
whole command line, so every other option, every error and every help text stays its own.
What is taken gives what argparse gives for it (cli.py `_build_parser`, cli_sendmail.py
`add_sendmail_parser`): ``-t``, ``-i``, ``-v`` alone; ``-f``/``-r``, ``-F``, ``-o``, ``-C``,
``-b`` with their value attached or as the next word; then recipients, none of them
starting with ``-`` (argparse reads an option after a recipient differently). A value that
starts with ``-`` or ``=``, combined flags (``-ti``), long options and ``--`` are left to
argparse. It imports nothing.
"""

from __future__ import annotations

__all__ = ["Request", "parse"]

# Options that take a value: the attribute of `Request` they set.
_VALUED = {"-f": "sender", "-r": "sender", "-F": "full_name", "-o": "options", "-C": "config"}


class Request:
    """A sendmail command line the lean path takes (the defaults are argparse's)."""

    __slots__ = ("config", "extract", "full_name", "ignore_dots", "options", "recipients", "sender")

    def __init__(self) -> None:
        self.config: str | None = None  # -C, else the command's -c
        self.sender: str | None = None  # -f / -r; None: the user @ myorigin
        self.full_name = ""  # -F
        self.extract = False  # -t
        self.ignore_dots = False  # -i, -oi
        self.options: list[str] = []  # -o values
        self.recipients: list[str] = []


def parse(argv: list[str], *, command_word: bool = True) -> Request | None:
    """The request of `argv` (without the program name), or None (see the module text)."""
    words = list(argv)
    config_dir: str | None = None
    if command_word:
        while words[:1] == ["-c"]:
            if len(words) < 2 or not _plain_value(words[1]) or not words[1]:
                return None
            config_dir = words[1]
            words = words[2:]
        if words[:1] != ["sendmail"]:
            return None
        words = words[1:]
    request = Request()
    i = 0
    while i < len(words) and words[i].startswith("-"):
        taken = _option(request, words, i)
        if taken == 0:
            return None
        i += taken
    for word in words[i:]:
        if word.startswith("-"):
            return None
        request.recipients.append(word)
    if "i" in request.options:
        request.ignore_dots = True
    if request.config is None:
        request.config = config_dir
    elif not request.config:
        return None  # -C "": left to the general path
    return request


def _option(request: Request, words: list[str], i: int) -> int:
    """Apply the option at `words[i]`; how many words it took (0: not one of ours)."""
    word = words[i]
    if word == "-t":
        request.extract = True
        return 1
    if word == "-i":
        request.ignore_dots = True
        return 1
    if word == "-v":
        return 1
    if word in ("-bm", "-b"):
        if word == "-b" and words[i + 1 : i + 2] != ["m"]:
            return 0
        return 1 if word == "-bm" else 2
    name, attached = word[:2], word[2:]
    if name not in _VALUED:
        return 0
    if attached:
        value, taken = attached, 1
    elif i + 1 < len(words):
        value, taken = words[i + 1], 2
    else:
        return 0
    if not _plain_value(value) or (taken == 1 and value.startswith("=")):
        return 0
    field = _VALUED[name]
    if field == "options":
        request.options.append(value)
    elif field == "config":
        request.config = value
    elif field == "sender":
        request.sender = value
    else:
        request.full_name = value
    return taken


def _plain_value(value: str) -> bool:
    """A value argparse takes as it is: not an option-like word."""
    return not value.startswith("-")
