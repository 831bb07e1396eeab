"""A minimal Postfix-native agent for tests: a master(8) child built on postfix/options.py,
master.py and maillog.py exactly as a delivery agent starts, that greets every connection
with one line instead of speaking the qmgr protocol:
``SERVICE PERSONALITY SYSLOG_NAME GENERATION UID PID``, and logs ``greeted a client of
SERVICE`` and, when it stops, ``exiting: REASON`` through Postfix's log path.
`PostfixInstance.program(name, "tests.support.postfix_agent:main")` makes it a master.cf
command (tests/postfix/test_instance.py).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mailcarrier.errors import MailcarrierError
from mailcarrier.log import HandlerLog
from mailcarrier.postfix.maillog import bootstrap_log, native_log
from mailcarrier.postfix.master import (
    MasterChild,
    drop_privileges,
    load_settings,
    parse_argv,
    parse_generation,
    set_signals,
    stream_handler,
)


def main() -> int:
    log: HandlerLog = bootstrap_log()
    process = os.path.basename(sys.argv[0])
    try:
        options = parse_argv(sys.argv)
        process = options.personality
        settings = load_settings(options)
        log = native_log(settings)  # connects to postlogd before privileges go
        child = MasterChild.from_master(options, settings, log=log)
        drop_privileges(options, settings)
        generation = parse_generation(os.environ)
    except MailcarrierError as exc:
        log.fatal(process, str(exc))
        return 1
    set_signals()
    syslog_name = settings.params.syslog_name

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = f"{options.service_name} {process} {syslog_name} {generation}"
        writer.write(f"{line} {os.getuid()} {os.getpid()}\n".encode())
        await writer.drain()
        log.info(process, f"greeted a client of {options.service_name}")

    reason = asyncio.run(child.serve(stream_handler(greet)))
    log.info(process, f"exiting: {reason.value}")
    log.close()
    return 0
