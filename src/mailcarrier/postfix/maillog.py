"""Where a Postfix-native agent logs: Postfix's own log path, as global/maillog_client.c
chooses it, so that the instance's log reads as if smtp(8) had written it.

`native_log(settings)` (after main.cf and the ``-o`` overrides are read): with
``maillog_file`` set, every line is one datagram to postlogd(8) at
``$queue_directory/public/$postlog_service_name`` (loghandlers.py's `PostlogHandler`; a
``maillog_file`` that matches no ``maillog_file_prefixes`` entry is a configuration error, as
in Postfix); otherwise syslog(3) with the identity ``$syslog_name/<process>`` (``postfix/smtp``,
``postfix/relay/smtp`` with Debian's ``-o syslog_name=postfix/$service_name``), the pid, and
``syslog_facility``. ``-V`` (`stderr`) copies the lines to standard error too.
`add_event_records(log, settings, process)` (the agents, once the log exists, so that a
file that cannot be opened is a fatal line there) makes ``event_log_file`` get the event
records of the lines (one JSON object per delivery attempt, eventlog.py), each one write()
on an O_APPEND descriptor that every agent process shares; a write that fails is a warning
line, once (`process`'s).

`bootstrap_log(environ)` is for the errors before settings exist (a bad command
line or main.cf): master(8) exports ``POSTLOG_SERVICE``/``POSTLOG_HOSTNAME`` when
maillog_file is set and ``MAIL_LOGTAG`` (syslog_name), and Postfix's daemons log their
first lines from those, as this does. Both return a `HandlerLog`, whose `fatal()` writes the
last line of a program that stops. Neighbours: options.py and master.py (the child),
loghandlers.py (the handlers).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.eventlog import shared_event_handlers
from mailcarrier.log import HandlerLog
from mailcarrier.loghandlers import LineHandler, PostfixFormatter, PostlogHandler, SyslogHandler

__all__ = ["add_event_records", "bootstrap_log", "native_log", "postlog_path"]

# maillog_client.c: the host name when none is known.
_NO_HOSTNAME = "amnesiac"


def postlog_path(settings: Settings) -> str:
    """postlogd's socket: ``$queue_directory/public/$postlog_service_name``."""
    p = settings.params
    return os.path.join(p.queue_directory, "public", p.postlog_service_name)


def native_log(settings: Settings, *, stderr: bool = False) -> HandlerLog:
    """The log of an agent started by master(8): postlogd when maillog_file is set, else
    syslog; `ConfigError` for a maillog_file outside maillog_file_prefixes or an unknown
    syslog_facility."""
    p = settings.params
    utf8 = p.smtputf8_enable
    handlers: list[logging.Handler] = []
    if p.maillog_file:
        if not any(p.maillog_file.startswith(prefix) for prefix in p.maillog_file_prefixes):
            raise ConfigError(
                f"maillog_file value '{p.maillog_file}' does not match any prefix in "
                "maillog_file_prefixes",
                parameter="maillog_file",
                value=p.maillog_file,
            )
        hostname = p.myhostname or _NO_HOSTNAME
        handlers.append(PostlogHandler(postlog_path(settings), hostname, p.syslog_name, utf8=utf8))
    else:
        try:
            handlers.append(SyslogHandler(p.syslog_name, p.syslog_facility, utf8=utf8))
        except ValueError as exc:
            raise ConfigError(
                f"parameter syslog_facility: {exc}",
                parameter="syslog_facility",
                value=p.syslog_facility,
            ) from None
    if stderr:
        formatter = PostfixFormatter(p.myhostname, p.syslog_name, utf8=utf8)
        handlers.append(LineHandler(sys.stderr, formatter))
    return HandlerLog(handlers, utf8=utf8)


def add_event_records(log: HandlerLog, settings: Settings, process: str) -> None:
    """``event_log_file``'s records beside `log`'s lines (see the module text); a
    `ConfigError` when it cannot be opened."""
    log.event_handlers = tuple(
        shared_event_handlers(settings, warn=lambda text: log.warning(process, text))
    )


def bootstrap_log(environ: Mapping[str, str] | None = None) -> HandlerLog:
    """The log before settings exist, from what master(8) exports: postlogd when
    ``POSTLOG_SERVICE`` is set, else syslog as ``$MAIL_LOGTAG/<process>``, facility mail."""
    env = os.environ if environ is None else environ
    tag = env.get("MAIL_LOGTAG") or "postfix"
    service = env.get("POSTLOG_SERVICE") or ""
    if service:
        hostname = env.get("POSTLOG_HOSTNAME") or _NO_HOSTNAME
        return HandlerLog([PostlogHandler(service, hostname, tag)])
    return HandlerLog([SyslogHandler(tag, "mail")])
