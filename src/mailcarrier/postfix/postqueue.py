"""What a Postfix instance's queue holds, as its own ``postqueue -j`` reports it (showq(8)).

`PostqueueReader(config_dir)` finds postqueue(1) in the instance's ``command_directory``
(postconf.py asks the instance) and `read()` runs ``postqueue -c CONFIG_DIR -j``: one JSON
object per message (``queue_name``, ``queue_id``, ``arrival_time``, ``recipients`` with
their ``delay_reason``). Postfix's own program is asked rather than its queue files read:
it is what mailq shows, it needs no privileges (showq runs as Postfix), and it reads the
files under Postfix's locks. A postqueue that cannot run or fails is a `MailcarrierError`
in one line. Only reads; used by ``mailcarrier observe --postfix`` (observe/native.py).
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from mailcarrier.errors import ConfigError, MailcarrierError
from mailcarrier.postfix.postconf import PostconfError, run_postconf, run_program

__all__ = ["PostqueueReader"]

_TIMEOUT: Final = 120.0


class PostqueueReader:
    def __init__(self, config_dir: str) -> None:
        self.config_dir = config_dir
        try:
            directory = run_postconf(config_dir, "-h", "command_directory")
        except PostconfError as exc:
            raise ConfigError(f"--postfix: {exc}") from exc
        self.program = os.path.join(directory, "postqueue")

    def read(self) -> list[dict[str, Any]]:
        """The queued messages, as ``postqueue -j`` lists them."""
        output = run_program([self.program, "-c", self.config_dir, "-j"], timeout=_TIMEOUT)
        messages = []
        for line in output.decode("utf-8", "surrogateescape").splitlines():
            if line.strip():
                try:
                    found = json.loads(line)
                except ValueError as exc:
                    raise MailcarrierError(f"{self.program}: bad output: {exc}") from None
                if isinstance(found, dict):
                    messages.append(found)
        return messages
