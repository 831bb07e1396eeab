"""`mailcarrier-smtp` and `mailcarrier-lmtp`: mailcarrier as Postfix's smtp(8) and lmtp(8),
started by master(8) from a master.cf line.

The program reads master's command line (options.py), Postfix's main.cf plus the master.cf
``-o`` overrides, opens Postfix's log path (maillog.py: postlogd or syslog), takes master's
descriptors (master.py), drops privileges when ``-u`` says so, and then serves qmgr(8)
connections (server.py) on uvloop when it is installed (aio.py's `run_event_loop`, as the
queue's processes) with one `DeliveryAgent` whose connection cache every connection of the
process shares (so sessions, TLS ones too, are reused across requests without scache(8) or
tlsproxy(8)). scache(8) and tlsmgr(8) are not used. As smtp(8), it checks before each
connection whether a table file main.cf names has changed (`table_changes`) and then makes
way for a fresh process (master.py). The personality (SMTP or LMTP) comes from the program
name, as smtp(8)'s does. With ``event_log_file`` set, each delivery line goes with its JSON
record there (maillog.py), and with ``metrics_directory`` set the process counts its
deliveries, connections, TLS and DNS outcomes in prometheus-client's multiprocess files
there (counters.py; `mailcarrier observe --postfix` serves them). Exit status: 0 when master
went away, at max_idle, or when the process retired (after max_use connections, or after
max_idle x max_use seconds when it serves many at once: master.py), 1 (with one ``fatal:``
line) when it cannot start.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mailcarrier.aio import load_event_loop, run_event_loop
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.errors import ConfigError, MailcarrierError
from mailcarrier.log import HandlerLog
from mailcarrier.postfix.install import table_problems
from mailcarrier.postfix.maillog import add_event_records, bootstrap_log, native_log
from mailcarrier.postfix.master import (
    MasterChild,
    MasterOptions,
    drop_privileges,
    inherited_descriptors,
    load_settings,
    parse_argv,
    set_signals,
)
from mailcarrier.postfix.server import Counting, NativeServer, ServerOptions
from mailcarrier.postfix.services import StatusServices
from mailcarrier.routing.resolver import preload_dns
from mailcarrier.tables import FileWatcher
from mailcarrier.tables.domainlist import DomainList
from mailcarrier.tables.registry import open_table

__all__ = [
    "main",
    "make_counting",
    "make_server",
    "metrics_directory",
    "preload",
    "table_changes",
]


def table_changes(settings: Settings) -> Callable[[], str | None]:
    """smtp(8)'s dict_changed_name(): the first table file main.cf names that changed (or
    went away) since now, else None. main.cf itself is not watched: ``postfix reload``
    restarts the agents for that."""
    main_cf = settings.config_dir / "main.cf" if settings.config_dir is not None else None
    watcher = FileWatcher(path for path in settings.files() if path != main_cf)

    def changed() -> str | None:
        files = watcher.changed_files()
        return str(files[0]) if files else None

    return changed


def metrics_directory(settings: Settings) -> str:
    """``metrics_directory``, checked, with prometheus-client loaded and counting into it
    from now on (before privileges go: nothing is imported after); "" when it is empty.
    `ConfigError` when it is not a directory or prometheus-client is missing."""
    directory = settings.params.metrics_directory
    if not directory:
        return ""
    if not os.path.isdir(directory):
        raise ConfigError(
            f"parameter metrics_directory: {directory} is not a directory",
            parameter="metrics_directory",
        )
    try:
        from mailcarrier.counters import multiprocess
    except ImportError as exc:
        raise ConfigError(
            f"parameter metrics_directory: counting needs prometheus-client "
            f"(pip install 'mailcarrier[metrics]'): {exc}",
            parameter="metrics_directory",
        ) from None
    multiprocess(directory)
    return directory


def make_counting(directory: str, transport: str) -> Counting | None:
    """The process's counters in `directory` (made after privileges went, so that its
    files are mail_owner's); `ConfigError` when it cannot write them there."""
    if not directory:
        return None
    from mailcarrier.counters import NativeCounters

    try:
        return NativeCounters(transport)  # its gauge's file is made now: a failure is now
    except OSError as exc:
        raise ConfigError(
            f"parameter metrics_directory: cannot write in {directory}: {exc.strerror or exc}",
            parameter="metrics_directory",
        ) from None


def make_server(
    options: MasterOptions,
    settings: Settings,
    log: HandlerLog,
    release: Callable[[], None] | None = None,
    counting: Counting | None = None,
) -> NativeServer:
    """The qmgr server of one process: its agent, its clients for the status services;
    `release` is the master child's (a connection's place is free once its work is done)."""
    params = settings.params
    transport = options.personality
    limits = CacheLimits.from_settings(settings.for_transport(transport))
    agent = DeliveryAgent(settings, log=log, cache=ConnectionCache(limits), sts_refresh=True)
    services = StatusServices(
        Path.cwd(),
        log,
        names={
            "bounce": params.bounce_service_name,
            "defer": params.defer_service_name,
            "trace": params.trace_service_name,
            "verify": params.address_verify_service_name,
            "flush": params.flush_service_name,
        },
        timeout=params.ipc_timeout,
        process=transport,
        flush_domains=DomainList.parse(
            ", ".join(params.fast_flush_domains),
            parent_style="fast_flush_domains" in params.parent_domain_matches_subdomains,
            opener=partial(open_table, base_dir=settings.config_dir),
        ),
    )
    server_options = ServerOptions(
        transport=transport,
        process=transport,
        hash_queue_names=params.hash_queue_names,
        hash_queue_depth=params.hash_queue_depth,
        ipc_timeout=params.ipc_timeout,
        max_string=4 * params.line_length_limit,
        verify_negative_cache=params.address_verify_negative_cache,
        resolution=params.delay_logging_resolution_limit,
    )
    return NativeServer(agent, services, log, server_options, release, counting)


def preload() -> None:
    """Load now what a delivery would otherwise load from the interpreter's files after the
    switch to mail_owner, who may not be allowed to read them (an interpreter installed under
    a 0700 home directory): the codecs with which socket.getaddrinfo() encodes a host name
    (idna, and punycode within it; without them, every delivery to a host name failed with
    "unknown encoding: idna"), uvloop (without it, the agent ran on asyncio's slower loop
    without a word), and dnspython with its record classes (without them, no MX lookup)."""
    for name in ("idna", "punycode"):
        codecs.lookup(name)
    load_event_loop()
    preload_dns()


async def _serve(child: MasterChild, server: NativeServer, agent: DeliveryAgent) -> None:
    """Serve until master's reason to stop, then write the TLSRPT counts still in memory."""
    try:
        await child.serve(server.handle)
    finally:
        await agent.close_tlsrpt()


def main() -> int:
    log: HandlerLog = bootstrap_log()
    process = os.path.basename(sys.argv[0]) or "smtp"
    try:
        options = parse_argv(sys.argv)
        process = options.personality
        inherited = inherited_descriptors(options)  # before a table can take fd 5 or 6
        settings = load_settings(options)
        log = native_log(settings, stderr=options.log_stderr)
        add_event_records(log, settings, process)
        metrics = metrics_directory(settings)
        problems = table_problems(settings)
        if problems:  # as smtp(8): a table it cannot open is fatal, never read as empty
            log.fatal(process, problems[0])
            return 1
        changes = table_changes(settings)
        child = MasterChild.from_master(
            options, settings, log=log, changed=changes, inherited=inherited
        )
        preload()
        # As smtp(8)'s pre_init: tables (and their drivers) are opened before the privileges
        # go, so a root-only sasl_passwd file is readable and no import comes after the drop.
        server = make_server(options, settings, log, child.release)
        agent = server.agent
        assert isinstance(agent, DeliveryAgent)
        drop_privileges(options, settings)
        server.counting = make_counting(metrics, options.service_name)
    except MailcarrierError as exc:
        log.fatal(process, str(exc))
        return 1
    set_signals()
    try:
        run_event_loop(_serve(child, server, agent))
    except KeyboardInterrupt:
        pass
    finally:
        log.close()
    return 0


# The console scripts; which protocol is spoken follows the program's name either way.
smtp_main = main
lmtp_main = main
