"""The console scripts (``mailcarrier``, ``mailcarrier-sendmail``, ``mailcarrier-mailq``) and
``python -m mailcarrier``: the lean submission path first, then the command line.

A submission is most of what a mail program is started for, and its time is almost all
start-up: `main()` and `sendmail_main()` first give the command line to lean/submit.py,
which queues an ordinary message with nothing but what Python loaded at start, and which
hands everything else back before it has queued anything or said a word; cli.py `run` then
runs the command as it always did, with the bytes the lean path read from standard input
put back in front of it (bench/bench_submit.py measures both). Importing this module loads
nothing but lean/; cli.py, with argparse, logging and config/, only when it is needed.
"""

from __future__ import annotations

import sys

from mailcarrier.lean.submit import Fallback, sendmail

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["mailq_main", "main", "run_sendmail_first", "sendmail_main"]


def run_sendmail_first(argv: list[str], *, command_word: bool = True) -> int:
    """Run a command line (without the program name): a submission on the lean path when
    it takes it, else cli.py `run`. Without `command_word`, `argv` are sendmail's
    arguments (``mailcarrier-sendmail``)."""
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    read = b""
    if stdin is not None:
        outcome = sendmail(argv, stdin, sys.stderr, command_word=command_word)
        if not isinstance(outcome, Fallback):
            return outcome
        read = outcome.read
    from mailcarrier.cli import run

    words = argv if command_word else ["sendmail", *argv]
    if read and stdin is not None:
        from mailcarrier.lean.replay import replay

        return run(words, stdin=replay(read, stdin))
    return run(words)


def main() -> NoReturn:
    """``mailcarrier ARGS...``."""
    sys.exit(run_sendmail_first(sys.argv[1:]))


def sendmail_main() -> NoReturn:
    """``mailcarrier-sendmail ARGS...``: ``mailcarrier sendmail ARGS...``."""
    sys.exit(run_sendmail_first(sys.argv[1:], command_word=False))


def mailq_main() -> NoReturn:
    """``mailcarrier-mailq ARGS...``: ``mailcarrier mailq ARGS...``."""
    from mailcarrier.cli import mailq_main as general

    general()
