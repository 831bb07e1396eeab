"""TLSRPT reports by HTTPS POST (RFC 8460 5.2), and their retries (5.3), durably.

`post_report(url, body, ...)` POSTs one gzip'd report with ``Content-Type:
application/tlsrpt+gzip`` over verified TLS (system CAs, or ``smtp_tls_CAfile``/
``smtp_tls_CApath``), the host's addresses from our resolver; it answers a `PostResult`:
done (a 2xx), or what went wrong and whether trying again may help (a refused or lost
connection, a timeout, a TLS failure, no address, a 5xx, 408 or 429: yes; another answer,
such as 400 or 413: no, the same bytes would be refused again).

RFC 8460 5.3: "in the event of a delivery failure ... a sender SHOULD attempt redelivery
for up to 24 hours after the initial attempt", "with exponential backoff". `PendingPosts`
keeps each POST that may be retried as one JSON file in ``$data_directory/tlsrpt-posts/``
(durable.write_atomically: it survives a restart of ``mailcarrier run``, and the ``tlsrpt
send`` of a cron job finds it), with the report's bytes, its first attempt and its next.
`retry_due()` tries those that are due: the delays double from `FIRST_DELAY` (5 minutes);
a POST whose next try would come more than `RETRY_LIMIT` (24 hours) after the first is
given up, with one warning line. `next_due()` tells the daily loop (tlsrpt_send.py) when to
wake. Reports by mail need none of this: they go through the queue, which retries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.durable import write_atomically
from mailcarrier.log import LogSink
from mailcarrier.routing.resolver import AddressRecord, DnsOutcome, Resolver
from mailcarrier.tls.tlsrpt_report import MEDIA_TYPE

__all__ = [
    "FIRST_DELAY",
    "POST_TIMEOUT",
    "RETRY_LIMIT",
    "PendingPost",
    "PendingPosts",
    "PostResult",
    "post_report",
    "retry_due",
]

SERVICE: Final = "tlsrpt"
DIRECTORY: Final = "tlsrpt-posts"
FIRST_DELAY: Final = 300.0  # seconds before the first retry; doubled for each next one
RETRY_LIMIT: Final = 86400.0  # RFC 8460 5.3: up to 24 hours after the initial attempt
POST_TIMEOUT: Final = 60.0
# Answers that may change when asked again (besides 5xx).
_RETRY_STATUS: Final = frozenset({"408", "429"})


@dataclass(frozen=True, slots=True)
class PostResult:
    problem: str = ""  # "": delivered
    retry: bool = False  # worth trying again later


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.params.smtp_tls_CAfile or None
    capath = settings.params.smtp_tls_CApath or None
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _addresses(resolver: Resolver, host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        answer = await resolver.resolve(host, rdtype)
        if answer.outcome is DnsOutcome.OK:
            found += [r.address for r in answer.records if isinstance(r, AddressRecord)]
    return found


async def post_report(
    url: str, body: bytes, settings: Settings, resolver: Resolver, timeout: float = POST_TIMEOUT
) -> PostResult:
    """POST `body` to `url` (RFC 8460 5.2); each address of the host in turn until one
    answers."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    addresses = await _addresses(resolver, host)
    if not addresses:
        return PostResult(f"{url}: no address for {host}", retry=True)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {MEDIA_TYPE}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    problem = ""
    for address in addresses:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=_ssl_context(settings), server_hostname=host
                )
                try:
                    writer.write(request)
                    await writer.drain()
                    status = await reader.readline()
                finally:
                    writer.close()
        except TimeoutError:
            problem = f"{url}: {address}: timed out after {timeout:g}s"
            continue
        except (OSError, ssl.SSLError) as exc:
            problem = f"{url}: {address}: {exc or type(exc).__name__}"
            continue
        line = status.decode("latin-1").strip()
        fields = line.split()
        code = fields[1] if len(fields) >= 2 else ""
        if code.startswith("2"):
            return PostResult()
        retry = not code or code.startswith("5") or code in _RETRY_STATUS
        return PostResult(f"{url}: {line or 'no answer'}", retry=retry)
    return PostResult(problem, retry=True)


@dataclass(frozen=True, slots=True)
class PendingPost:
    """One report to POST again: where, what (gzip'd, base64 in the file), since when."""

    url: str
    domain: str
    day: str
    body: str  # base64
    first: float  # the initial attempt (epoch seconds)
    next: float  # the next try
    tries: int  # attempts made so far
    problem: str  # what the last one found

    @property
    def name(self) -> str:
        text = f"{self.url}\0{self.domain}\0{self.day}".encode()
        return hashlib.sha256(text).hexdigest()[:32] + ".json"


def backoff(post: PendingPost, now: float, problem: str) -> PendingPost | None:
    """`post` after a failed try at `now`: its next try, or None when that would come more
    than RETRY_LIMIT after the first attempt."""
    tries = post.tries + 1
    later = now + FIRST_DELAY * 2 ** (tries - 1)
    if later - post.first > RETRY_LIMIT:
        return None
    return PendingPost(
        post.url, post.domain, post.day, post.body, post.first, later, tries, problem
    )


class PendingPosts:
    """The POSTs to retry, one file each in ``directory`` (see the module docstring). A file
    that cannot be read is left alone and named in a warning."""

    def __init__(self, data_directory: Path) -> None:
        self.directory = data_directory / DIRECTORY

    def add(self, url: str, domain: str, day: str, body: bytes, now: float, problem: str) -> None:
        """The first attempt at `now` failed with `problem`: keep it for a retry."""
        first = PendingPost(url, domain, day, base64.b64encode(body).decode(), now, now, 0, "")
        post = backoff(first, now, problem)
        if post is not None:
            self.save(post)

    def save(self, post: PendingPost) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / post.name, json.dumps(asdict(post)).encode())

    def remove(self, post: PendingPost) -> None:
        (self.directory / post.name).unlink(missing_ok=True)

    def all(self, log: LogSink | None = None) -> list[PendingPost]:
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return []
        found = []
        for path in paths:
            try:
                found.append(PendingPost(**json.loads(path.read_bytes())))
            except (OSError, ValueError, TypeError) as exc:
                if log is not None:
                    log.warning(SERVICE, f"{path}: unreadable pending TLS report: {exc}")
        return found

    def next_due(self) -> float | None:
        """When the earliest pending POST is due (epoch), None when there is none."""
        return min((post.next for post in self.all()), default=None)


async def retry_due(
    settings: Settings,
    resolver: Resolver,
    log: LogSink,
    *,
    now: Callable[[], float] = time.time,
    timeout: float = POST_TIMEOUT,
) -> int:
    """Try the pending POSTs that are due; the number delivered."""
    pending = PendingPosts(Path(settings.params.data_directory))
    delivered = 0
    for post in pending.all(log):
        if post.next > now():
            continue
        what = f"TLS report for {post.domain} of {post.day} to {post.url}"
        result = await post_report(
            post.url, base64.b64decode(post.body), settings, resolver, timeout
        )
        tries = post.tries + 1
        if not result.problem:
            pending.remove(post)
            log.info(SERVICE, f"{what} (attempt {tries})")
            delivered += 1
            continue
        later = backoff(post, now(), result.problem) if result.retry else None
        if later is None:
            pending.remove(post)
            log.warning(SERVICE, f"{what}: given up after {tries} attempts: {result.problem}")
        else:
            pending.save(later)
    return delivered
