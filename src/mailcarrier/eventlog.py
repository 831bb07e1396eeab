"""Opening event_log_file: the handler that appends event records (events.py) to it.

`event_handlers(settings, ...)` is the handler list a `HandlerLog` (log.py) takes as its
`event_handlers`: empty when ``event_log_file`` is empty (the default: no records), else a
`MaillogHandler` (loghandlers.py: appended, flushed line by line or once per event-loop
turn for the daemon, opened again after logrotate, a failing write reported once on
`errors`) with an `EventFormatter` naming this node (fleet/node.py's `node_id`: the
``node_id`` parameter, or the name kept in ``data_directory``) and ``myhostname``.
`shared_event_handlers(settings, warn=...)` is the same for a file that many processes
append to at once (Postfix-native agents: each record one write() on an O_APPEND
descriptor, loghandlers.py's `AppendHandler`; a failing write is told to `warn` once).
A path that cannot be opened is a `ConfigError` naming the parameter. `with_events(sink,
settings)` is the API's way in (`deliver()`, `submit()`): the caller's sink keeps the lines,
the file gets the records.
cli_support.py (`make_log`) and api.py call this; it does no logging of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TextIO

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.events import Event
from mailcarrier.fleet.node import node_id
from mailcarrier.log import HandlerLog, LogSink, log_event
from mailcarrier.loghandlers import AppendHandler, EventFormatter, MaillogHandler

__all__ = ["EventLog", "event_handlers", "shared_event_handlers", "with_events"]


def event_handlers(
    settings: Settings, *, batched: bool = False, errors: TextIO | None = None
) -> list[logging.Handler]:
    return _handlers(
        settings,
        lambda path, formatter: MaillogHandler(path, formatter, batched=batched, errors=errors),
    )


def shared_event_handlers(
    settings: Settings, *, warn: Callable[[str], None] | None = None
) -> list[logging.Handler]:
    """`event_handlers` for a file many processes append to (see the module text)."""
    return _handlers(settings, lambda path, formatter: AppendHandler(path, formatter, warn=warn))


def _handlers(
    settings: Settings, make: Callable[[str, EventFormatter], logging.Handler]
) -> list[logging.Handler]:
    """The handler `make` opens for event_log_file (none when it is empty)."""
    path = settings.params.event_log_file
    if not path:
        return []
    try:
        return [make(path, EventFormatter(node_id(settings), settings.params.myhostname))]
    except OSError as exc:
        raise ConfigError(
            f"parameter event_log_file: cannot open {path}: {exc.strerror}",
            parameter="event_log_file",
            value=path,
        ) from exc


class EventLog:
    """A sink that gives lines to `sink` (someone else's: the API's caller) and event
    records to `records` (a `HandlerLog` with only event handlers); `close()` closes the
    file."""

    def __init__(self, sink: LogSink, records: HandlerLog) -> None:
        self.sink = sink
        self.records = records

    def info(self, process: str, text: str) -> None:
        self.sink.info(process, text)

    def warning(self, process: str, text: str) -> None:
        self.sink.warning(process, text)

    def event(self, process: str, text: str, event: Event) -> None:
        log_event(self.sink, process, text, event)
        self.records.event(process, "", event)

    def close(self) -> None:
        self.records.close()


def with_events(sink: LogSink, settings: Settings) -> EventLog | None:
    """`sink` with event_log_file's records beside it; None when it is off, or when `sink`
    writes them already (the command line's `HandlerLog`, made with event handlers)."""
    if isinstance(sink, HandlerLog) and sink.event_handlers:
        return None
    handlers = event_handlers(settings)
    if not handlers:
        return None
    records = HandlerLog((), utf8=settings.params.smtputf8_enable, event_handlers=handlers)
    return EventLog(sink, records)
