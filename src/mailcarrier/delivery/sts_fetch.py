"""The HTTPS fetch of an MTA-STS policy (RFC 8461 3.3), with asyncio streams and the ssl module.

`fetch_policy(domain, ...)` GETs ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` and
returns the body, or raises `StsFetchError` with one line saying what went wrong. The policy
host's addresses come from the agent's resolver (``dns_nameservers``), so the fetch goes
where DNS says and nowhere else; the port is ``smtp_mta_sts_https_port`` (443; tests change
it). As the RFC asks: the certificate must be valid for ``mta-sts.<domain>`` under WebPKI
(the system's CA store, or ``smtp_tls_CAfile``/``smtp_tls_CApath`` when set), SNI names it,
TLS 1.2 or newer; only a ``200`` answer counts (a redirect is never followed, RFC 8461 3.3);
the media type must be ``text/plain`` (parameters such as ``charset`` allowed); the body may
not exceed `MAX_POLICY_SIZE` (64 KiB); the whole fetch has ``smtp_mta_sts_timeout``. No
HTTP cache is used or asked for (``Cache-Control: no-cache``): the cache is ours
(sts_cache.py). HTTP/1.1 with ``Connection: close``; ``Content-Length``, chunked, or until
the server closes.

No third-party HTTP client: the project has none among its dependencies, and this one GET
with its limits is short with the standard library.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Final

from mailcarrier.routing.resolver import AddressRecord, DnsOutcome, Resolver
from mailcarrier.tls.sts import MAX_POLICY_SIZE

__all__ = ["FetchSettings", "StsFetchError", "fetch_policy", "policy_url"]

WELL_KNOWN: Final = "/.well-known/mta-sts.txt"
_HEADER_LIMIT: Final = 16384  # bytes of status line and headers together
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class StsFetchError(Exception):
    """The policy could not be fetched; the text is one line for the log."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    port: int = 443
    timeout: float = 30.0
    cafile: str = ""
    capath: str = ""
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)


def policy_url(domain: str) -> str:
    return f"https://mta-sts.{domain}{WELL_KNOWN}"


def _context(settings: FetchSettings) -> ssl.SSLContext:
    """WebPKI: the system's CAs, or smtp_tls_CAfile/CApath when set; names checked."""
    if settings.cafile or settings.capath:
        ctx = ssl.create_default_context(
            cafile=settings.cafile or None, capath=settings.capath or None
        )
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def _addresses(resolver: Resolver, host: str, families: tuple[int, ...]) -> list[str]:
    out: list[str] = []
    problems: list[str] = []
    for family in families:
        rdtype = "A" if family == socket.AF_INET else "AAAA"
        answer = await resolver.resolve(host, rdtype)
        if answer.outcome is DnsOutcome.OK:
            out.extend(r.address for r in answer.records if isinstance(r, AddressRecord))
        elif answer.outcome not in (DnsOutcome.NODATA, DnsOutcome.NXDOMAIN):
            problems.append(f"{rdtype} lookup: {answer.outcome.value}")
    if not out:
        raise StsFetchError(f"{host}: " + ("; ".join(problems) or "host not found"))
    return out


async def fetch_policy(resolver: Resolver, domain: str, settings: FetchSettings) -> bytes:
    """The policy body of `domain` (see the module docstring)."""
    host = f"mta-sts.{domain}"
    try:
        async with asyncio.timeout(settings.timeout):
            addresses = await _addresses(resolver, host, settings.families)
            return await _fetch_from(addresses, host, settings)
    except TimeoutError:
        raise StsFetchError(
            f"{policy_url(domain)}: timed out after {settings.timeout:g}s"
        ) from None


async def _fetch_from(addresses: list[str], host: str, settings: FetchSettings) -> bytes:
    ctx = _context(settings)
    failures: list[str] = []
    for address in addresses:
        where = f"{host}[{address}]:{settings.port}"
        try:
            reader, writer = await asyncio.open_connection(
                address, settings.port, ssl=ctx, server_hostname=host
            )
        except ssl.SSLCertVerificationError as exc:
            # The certificate is the policy host's answer: another address would not help.
            raise StsFetchError(
                f"certificate verification failed for {where}: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            failures.append(
                f"{where}: {exc.strerror or exc}" if isinstance(exc, OSError) else f"{where}: {exc}"
            )
            continue
        try:
            return await _exchange(reader, writer, host)
        finally:
            # No TLS close_notify exchange: a stalled server would hold the fetch up.
            writer.transport.abort()
    raise StsFetchError("connect to " + "; ".join(failures))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bytes:
    request = (
        f"GET {WELL_KNOWN} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\n"
        "Cache-Control: no-cache\r\nConnection: close\r\nUser-Agent: mailcarrier\r\n\r\n"
    )
    try:
        writer.write(request.encode("ascii"))
        await writer.drain()
        status, headers = await _read_head(reader)
        url = f"https://{host}{WELL_KNOWN}"
        if status in _REDIRECTS:
            target = headers.get("location", "")
            raise StsFetchError(f"{url}: redirect (HTTP {status}) to {target or '?'} not followed")
        if status != 200:
            raise StsFetchError(f"{url}: HTTP status {status}")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "text/plain":
            raise StsFetchError(f'{url}: media type "{media or "(none)"}" is not text/plain')
        return await _read_body(reader, headers, url)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        raise StsFetchError(f"https://{host}{WELL_KNOWN}: connection lost: {exc}") from None


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise StsFetchError("HTTP header too long") from None
    if len(head) > _HEADER_LIMIT:
        raise StsFetchError("HTTP header too long")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise StsFetchError(f'malformed HTTP status line "{lines[0][:80]}"')
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _too_big(url: str) -> StsFetchError:
    return StsFetchError(f"{url}: policy larger than {MAX_POLICY_SIZE} bytes")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], url: str) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, url)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise StsFetchError(f'{url}: malformed Content-Length "{length}"')
        if int(length) > MAX_POLICY_SIZE:
            raise _too_big(url)
        return await reader.readexactly(int(length))
    body = await reader.read(MAX_POLICY_SIZE + 1)
    while body and len(body) <= MAX_POLICY_SIZE:
        more = await reader.read(MAX_POLICY_SIZE + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_POLICY_SIZE:
        raise _too_big(url)
    return body


async def _read_chunked(reader: asyncio.StreamReader, url: str) -> bytes:
    body = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise StsFetchError(f"{url}: malformed chunk size") from None
        if size == 0:
            return body
        if len(body) + size > MAX_POLICY_SIZE:
            raise _too_big(url)
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
