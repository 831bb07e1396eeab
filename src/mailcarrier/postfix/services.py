"""The Postfix services an agent reports to: bounce(8), defer(8) and trace(8) (one request
per connection, "delivery_status_protocol"), verify(8) ("address_verification_prrotocol",
misspelt as Postfix spells it) and flush(8) ("queue_flush_protocol"), over their unix sockets
under the queue directory (``private/``; ``public/`` for flush).

`StatusServices.append(service, ...)` is Postfix's bounce/defer/trace append: it connects to
``private/<service>``, checks the server's hello, sends one list (``nrequest`` 0 = append, the
trace flags, the queue ID, the recipient as rcpt_print writes it and the DSN as dsn_print
writes it) and returns the server's status: 0 when the record was appended (and fsynced),
anything else, or -1 when the service could not be reached, for a failure. The caller (the
report of report.py) decides what a failure means. `update_verify()` records a probe's result
with verify(8), retrying for a while as verify_clnt.c does. `flush_add(site, queue_id)` is
flush_clnt.c's: when the site is in ``fast_flush_domains`` (`flush_domains`), flush(8) adds the
queue ID to the site's log (so that ``postqueue -s site`` or ETRN finds the message), else
FLUSH_STAT_DENY without a connection. Nothing here raises for a service that is down: it logs
Postfix's warning and returns -1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from mailcarrier.log import LogSink
from mailcarrier.postfix.attr import AttrError, AttrList, AttrParser, as_int, encode, expect
from mailcarrier.postfix.reply import Dsn, dsn_pairs
from mailcarrier.postfix.request import NativeRecipient
from mailcarrier.tables.base import TableError
from mailcarrier.tables.domainlist import DomainList

__all__ = [
    "BOUNCE_PROTOCOL",
    "FLUSH_PROTOCOL",
    "FLUSH_STAT_DENY",
    "FLUSH_STAT_FAIL",
    "VERIFY_PROTOCOL",
    "StatusServices",
]

BOUNCE_PROTOCOL: Final = "delivery_status_protocol"
VERIFY_PROTOCOL: Final = "address_verification_prrotocol"
FLUSH_PROTOCOL: Final = "queue_flush_protocol"
FLUSH_STAT_FAIL: Final = -1
FLUSH_STAT_DENY: Final = 4
_APPEND: Final = 0  # BOUNCE_CMD_APPEND
_READ: Final = 65536


class _Exchange:
    """One connection to a service: read lists, write lists, each bounded in time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = AttrParser()

    async def read_list(self, timeout: float) -> AttrList:
        async with asyncio.timeout(timeout):
            while True:
                pairs = self.parser.next_list()
                if pairs is not None:
                    return pairs
                data = await self.reader.read(_READ)
                self.parser.feed(data)
                if not data:
                    pairs = self.parser.next_list()
                    if pairs is None:
                        raise AttrError("unexpected end of file")
                    return pairs

    async def write(self, data: bytes, timeout: float) -> None:
        self.writer.write(data)
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


class StatusServices:
    """Clients for the services under `queue_directory` (the agent's working directory in
    Postfix); `names` maps bounce, defer, trace and verify to their service names
    (bounce_service_name and friends)."""

    def __init__(
        self,
        queue_directory: Path,
        log: LogSink,
        *,
        names: dict[str, str] | None = None,
        timeout: float = 3600.0,
        process: str = "smtp",
        verify_retries: int = 30,
        flush_domains: DomainList | None = None,
    ) -> None:
        self.root = queue_directory
        self.log = log
        self.names = {
            "bounce": "bounce",
            "defer": "defer",
            "trace": "trace",
            "verify": "verify",
            "flush": "flush",
        }
        self.names.update(names or {})
        self.timeout = timeout
        self.process = process
        self.verify_retries = verify_retries
        self.flush_domains = flush_domains

    def _where(self, service: str) -> str:
        return f"{'public' if service == 'flush' else 'private'}/{self.names[service]}"

    async def _connect(self, service: str, protocol: str) -> _Exchange | None:
        where = self._where(service)
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(self.root / where))
        except (OSError, TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.log.warning(self.process, f"connect to {where}: {reason or 'timed out'}")
            return None
        exchange = _Exchange(reader, writer)
        try:
            (value,) = expect(await exchange.read_list(self.timeout), ["protocol"])
            if value != protocol.encode("ascii"):
                raise AttrError(f"unexpected protocol {value[:60]!r} (expecting: {protocol})")
        except (OSError, TimeoutError, AttrError) as exc:
            self.log.warning(self.process, f"read {where}: {_why(exc)}")
            exchange.close()
            return None
        return exchange

    async def append(
        self, service: str, *, flags: int, queue_id: str, rcpt: NativeRecipient, dsn: Dsn
    ) -> int:
        """bounce/defer/trace append: the service's status (0 = recorded), -1 if it failed."""
        request = encode(
            [
                ("nrequest", _APPEND),
                ("flags", flags),
                ("queue_id", queue_id),
                *rcpt.attr_pairs(),
                *dsn_pairs(dsn),
            ]
        )
        return await self._command(service, BOUNCE_PROTOCOL, request)

    async def flush_add(self, site: str, queue_id: str) -> int:
        """flush_clnt.c's flush_add: 0 when flush(8) recorded it, FLUSH_STAT_DENY when the
        site is not a fast flush domain, FLUSH_STAT_FAIL (-1) on any failure."""
        try:
            if self.flush_domains is None or not self.flush_domains.match(site):
                return FLUSH_STAT_DENY
        except TableError as exc:
            self.log.warning(self.process, f"fast_flush_domains: {exc}")
            return FLUSH_STAT_FAIL
        request = encode([("request", "add"), ("site", site), ("queue_id", queue_id)])
        return await self._command("flush", FLUSH_PROTOCOL, request)

    async def _command(self, service: str, protocol: str, request: bytes) -> int:
        """mail_command_client: one request, the server's status; -1 when it failed."""
        exchange = await self._connect(service, protocol)
        if exchange is None:
            return -1
        where = self._where(service)
        try:
            await exchange.write(request, self.timeout)
            (status,) = expect(await exchange.read_list(self.timeout), ["status"])
            return as_int(status, "status")
        except (OSError, TimeoutError, AttrError) as exc:
            self.log.warning(self.process, f"write/read {where}: {_why(exc)}")
            return -1
        finally:
            exchange.close()

    async def update_verify(self, address: str, status: int, reason: str) -> int:
        """verify(8) update: 0 when recorded. Retried once a second while the service
        cannot be reached (verify_clnt.c retries without end; here `verify_retries` times)."""
        request = encode(
            [
                ("request", "update"),
                ("address", address),
                ("recipient_status", status),
                ("reason", reason),
            ]
        )
        for attempt in range(self.verify_retries):
            if attempt:
                await asyncio.sleep(1)
            exchange = await self._connect("verify", VERIFY_PROTOCOL)
            if exchange is None:
                continue
            try:
                await exchange.write(request, self.timeout)
                pairs = await exchange.read_list(self.timeout)
                return as_int(dict(pairs)[b"status"], "status")
            except (OSError, TimeoutError, AttrError, KeyError) as exc:
                self.log.warning(
                    self.process, f"problem talking to service {self.names['verify']}: {_why(exc)}"
                )
            finally:
                exchange.close()
        return -1


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, KeyError):
        return "missing status attribute"
    return str(exc) or type(exc).__name__
