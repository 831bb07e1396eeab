"""The http_listen listener: a small read-only HTTP/1.1 server on ``run``'s event loop.

`ListenConfig.from_settings()` checks the parameters before anything starts (a bad
address, a non-loopback one without ``http_listen_allow_remote = yes``, a token file that
cannot be read: `ConfigError`, exit 78); `start_listener()` binds (a port in use:
`TemporaryError`, exit 75, as another running instance is the usual cause; any other bind
error: `ConfigError`) and serves, on asyncio streams with no thread and no web framework:

  /metrics      Prometheus text format (metrics.py)
  /             the status page (page.py)
  /api/queue    the queues and the most deferred destinations, JSON
  /api/status   deliveries (totals, the last hour), TLS outcomes, JSON

GET and HEAD only, one request per connection (``Connection: close``), the request head
bounded in size and time, at most `MAX_CONNECTIONS` answered at once: the listener is a
monitoring port, not a web server. The queue
part of the page and of /api/queue reads the deferred queue's files on a helper thread
(as the spool removes files on one), so that a page never holds deliveries up. With a
token, every request carries it (``Authorization: Bearer TOKEN``, or Basic with the token as
password, which a browser asks for); it is compared in constant time. What it serves comes
from an `Observed`: monitor.py's `Monitor` for ``run`` (service.py runs it beside the
scheduler), native.py's `NativeMonitor` for ``observe --postfix`` (cli_observe.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from mailcarrier.config.listen import ListenAddress, parse_listen
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, TemporaryError
from mailcarrier.log import LogSink
from mailcarrier.observe.page import render_page

__all__ = ["PROCESS", "ListenConfig", "Observed", "StatusServer", "start_listener"]

PROCESS: Final = "http"
HEAD_LIMIT: Final = 16 * 1024
HEAD_TIMEOUT: Final = 10.0
MAX_CONNECTIONS: Final = 64
_JSON: Final = "application/json; charset=utf-8"
_HTML: Final = "text/html; charset=utf-8"
_TEXT: Final = "text/plain; charset=utf-8"
# Exactly what the page needs: its own inline style, no script, nothing from elsewhere.
_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


@dataclass(frozen=True, slots=True)
class ListenConfig:
    address: ListenAddress
    token: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ListenConfig | None:
        """The listener's configuration, or None when http_listen is empty (no listener)."""
        p = settings.params
        text = p.http_listen.strip()
        if not text:
            return None
        try:
            address = parse_listen(text)
        except ValueError as exc:
            raise ConfigError(f"parameter http_listen: {exc}", parameter="http_listen") from None
        if not address.loopback and not p.http_listen_allow_remote:
            raise ConfigError(
                f'parameter http_listen: "{text}" is not a loopback address '
                "(set http_listen_allow_remote = yes to listen on it)",
                parameter="http_listen",
            )
        return cls(address, _read_token(p.http_listen_token_file))


def _read_token(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"parameter http_listen_token_file: cannot read {path}: {reason}",
            parameter="http_listen_token_file",
        ) from None
    if not token:
        raise ConfigError(
            f"parameter http_listen_token_file: {path} holds no token",
            parameter="http_listen_token_file",
        )
    return token


class Observed(Protocol):
    """What the listener serves: /metrics' text, and the JSON of /api/queue (read on a
    helper thread) and /api/status, which the page shows."""

    async def exposition(self) -> bytes: ...

    def queue_json(self) -> dict[str, object]: ...

    def status_json(self) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    extra: tuple[tuple[str, str], ...] = ()


class StatusServer:
    """Answers one request per connection (see the module docstring)."""

    def __init__(self, monitor: Observed, *, token: str = "", log: LogSink) -> None:
        self.monitor = monitor
        self.token = token.encode()
        self.log = log
        self.open = 0  # connections being answered
        self.routes: dict[str, Callable[[], Awaitable[Response]]] = {
            "/metrics": self._metrics,
            "/": self._page,
            "/api/queue": self._queue,
            "/api/status": self._status,
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= MAX_CONNECTIONS:  # a flood of idle connections: refuse the rest
            writer.close()
            return
        self.open += 1
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                response, method = _plain(431, "request head too large\n"), "GET"
            else:
                method, response = await self.answer(head)
            await _send(writer, response, method == "HEAD")
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            pass  # a client that said nothing whole, or left: nothing to answer
        except Exception as exc:  # never a traceback from the event loop's handler
            self.log.warning(PROCESS, f"request failed: {type(exc).__name__}: {exc}")
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(HEAD_TIMEOUT):
                    await writer.wait_closed()

    async def answer(self, head: bytes) -> tuple[str, Response]:
        """(method, response) for a request head (request line and header fields)."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "GET", _plain(400, "bad request line\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return method, _plain(405, "read-only: GET or HEAD\n", (("Allow", "GET, HEAD"),))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if self.token and not self._authorized(headers.get("authorization", "")):
            challenge = (("WWW-Authenticate", 'Basic realm="mailcarrier", charset="UTF-8"'),)
            return method, _plain(401, "a token is required\n", challenge)
        route = self.routes.get(target.split("?", 1)[0])
        if route is None:
            return method, _plain(404, "not found\n")
        try:
            return method, await route()
        except Exception as exc:  # one failed page must not stop the listener
            self.log.warning(PROCESS, f"{target}: {type(exc).__name__}: {exc}")
            return method, _plain(500, "internal error\n")

    def _authorized(self, value: str) -> bool:
        scheme, _, credentials = value.partition(" ")
        presented = b""
        if scheme.lower() == "bearer":
            presented = credentials.strip().encode("latin-1", "replace")
        elif scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, ValueError):
                decoded = base64.b64decode(credentials.strip(), validate=True)
                presented = decoded.partition(b":")[2]
        return hmac.compare_digest(presented, self.token)

    async def _metrics(self) -> Response:
        return Response(200, CONTENT_TYPE_LATEST, await self.monitor.exposition())

    async def _queue_json(self) -> dict[str, object]:
        # Reading up to snapshot.SCAN_LIMIT deferred messages would hold up the deliveries
        # of the loop: it is done on a helper thread (it only reads files: spool.read()).
        return await asyncio.to_thread(self.monitor.queue_json)

    async def _queue(self) -> Response:
        return _json(await self._queue_json())

    async def _status(self) -> Response:
        return _json(self.monitor.status_json())

    async def _page(self) -> Response:
        page = render_page(await self._queue_json(), self.monitor.status_json())
        return Response(200, _HTML, page, (("Content-Security-Policy", _CSP),))


def _json(value: dict[str, object]) -> Response:
    body = json.dumps(value, ensure_ascii=True, indent=1).encode() + b"\n"
    return Response(200, _JSON, body)


def _plain(status: int, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, _TEXT, text.encode(), extra)


async def _send(writer: asyncio.StreamWriter, response: Response, head_only: bool) -> None:
    fields = [
        f"HTTP/1.1 {response.status} {_REASONS[response.status]}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.extra),
    ]
    writer.write(("\r\n".join(fields) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(response.body)
    async with asyncio.timeout(HEAD_TIMEOUT):
        await writer.drain()


async def start_listener(config: ListenConfig, server: StatusServer) -> asyncio.Server:
    """Bind and serve; the caller closes the returned server. One line is logged with
    the address (and the port the system chose, for port 0)."""
    address = config.address
    try:
        listener = await asyncio.start_server(
            server.handle, address.host, address.port, limit=HEAD_LIMIT, reuse_address=True
        )
    except OSError as exc:
        # asyncio rewords the system's error: say it as the system does.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        text = f"http_listen {address}: cannot listen: {reason}"
        if exc.errno == errno.EADDRINUSE:
            raise TemporaryError(text, errno=exc.errno) from None
        raise ConfigError(f"parameter {text}", parameter="http_listen") from None
    bound = listener.sockets[0].getsockname()
    shown = ListenAddress(str(bound[0]), int(bound[1]))
    server.log.info(PROCESS, f"listening on {shown} (/metrics, /, /api/queue, /api/status)")
    return listener
