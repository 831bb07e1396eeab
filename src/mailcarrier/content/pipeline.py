"""Choose and run the content transforms for one transaction: plain, or through the MIME path.

Postfix's smtp(8) sends the queue file's records straight to the DATA encoder unless it must
look inside: when it downgrades 8BITMIME content for a server without 8BITMIME (RFC 6152 3:
a client must not send 8-bit data to such a server; the request is not 7bit, and
disable_mime_output_conversion is off), or when smtp_header_checks/smtp_body_checks (or
smtp_generic_maps for headers) are configured. Only then do lines go through `MimeProcessor`
(content/mime.py) with the checks (content/checks.py) as hooks; the plain path stays the
chunk-at-a-time `encode_chunks`. Either way the output passes the same `DataEncoder`, so
line breaking and dot-stuffing do not depend on the path. The caller (delivery/agent.py) picks
the path per server, from what that server announced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from mailcarrier.config.settings import AgentSettings
from mailcarrier.config.views import ClientMapsName
from mailcarrier.content.checks import (
    LOOKUP_ERRORS,
    ContentChecks,
    LookupTable,
    UnavailableTable,
)
from mailcarrier.content.encoder import DataEncoder, encode_whole_counted
from mailcarrier.content.lines import LineSplitter
from mailcarrier.content.mime import HeaderClass, MimeLimits, MimeProcessor
from mailcarrier.content.stream import (
    DEFAULT_CHUNK_SIZE,
    MessageFile,
    encode_chunks,
    iter_file_chunks,
)
from mailcarrier.status import fast_init

__all__ = [
    "ContentPlan",
    "HeaderRewriter",
    "needs_downgrade",
    "plan_from_settings",
    "transform_chunks",
]

# Rewrites one primary header (generic(5) address mapping); returns the header lines.
HeaderRewriter = Callable[[HeaderClass, bytes], Iterable[bytes]]


def needs_downgrade(encoding: str, eightbitmime: bool, *, disabled: bool) -> bool:
    """Postfix's SMTP_MIME_DOWNGRADE(): conversion on, server without 8BITMIME, not 7bit
    ("8bit", or "" when nobody declared the content)."""
    return not disabled and not eightbitmime and encoding != "7bit"


def transform_chunks(
    chunks: Iterable[bytes], processor: MimeProcessor, encoder: DataEncoder
) -> Iterator[bytes]:
    """Run chunks through a line splitter, `processor` and `encoder`; yield wire bytes."""
    splitter = LineSplitter()
    for chunk in chunks:
        out = [processor.piece(piece, complete) for piece, complete in splitter.feed(chunk)]
        wire = encoder.feed(b"".join(out))
        if wire:
            yield wire
    out = [processor.piece(piece, complete) for piece, complete in splitter.finish()]
    out.append(processor.finish())
    wire = encoder.feed(b"".join(out)) + encoder.finish()
    if wire:
        yield wire


@fast_init
@dataclass(frozen=True, slots=True)
class ContentPlan:
    """Where the content is and what may be done to it; `chunks` makes one pass over it."""

    fileobj: BinaryIO | MessageFile
    start: int = 0
    length: int | None = None
    encoding: str = "7bit"
    line_length_limit: int = 998
    disable_conversion: bool = False
    limits: MimeLimits = field(default_factory=MimeLimits)
    checks: ContentChecks | None = None
    rewrite_header: HeaderRewriter | None = None
    # Called after a pass over the content that broke a line longer than the limit, so
    # that the caller can log it as smtp(8) does ("breaking line > N bytes ...").
    on_broken_line: Callable[[], None] | None = None

    def header_section(self, limit: int) -> bytes:
        """The primary header section as it is in the content (up to its empty line, at
        most `limit` bytes), read from the start: for lookups made before the content is
        sent (delivery/generic.py)."""
        head = b""
        for chunk in iter_file_chunks(self.fileobj, start=self.start, length=self.length):
            head += chunk
            for blank in (b"\n\n", b"\n\r\n"):
                end = head.find(blank)
                if end >= 0:
                    return head[: min(end + 1, limit)]
            if len(head) >= limit:
                break
        return head[:limit]

    def downgrade_for(self, eightbitmime: bool) -> bool:
        return needs_downgrade(self.encoding, eightbitmime, disabled=self.disable_conversion)

    def plain_chunks(self) -> Iterable[bytes]:
        """`chunks(downgrade=False)`: the content as it is, dot-stuffed. A small message that
        nothing else transforms is encoded at once, without the chunk generators: one read
        whole when its file was opened (`MessageFile.complete`, the usual small message), or
        a stream (a Postfix queue file's records) whose first chunk is all of it."""
        checks = self.checks
        if self.rewrite_header is None and (
            checks is None or not (checks.has_header_checks or checks.has_body_checks)
        ):
            whole = self._whole()
            if whole is not None:
                wire, broken = encode_whole_counted(whole, line_length_limit=self.line_length_limit)
                if broken and self.on_broken_line is not None:
                    self.on_broken_line()
                return (wire,) if wire else ()
        return self.chunks(downgrade=False)

    def _whole(self) -> bytes | None:
        """The whole content when it takes one chunk at most, else None (nothing kept: the
        chunks are read again from the start)."""
        source = self.fileobj
        if isinstance(source, MessageFile):
            complete = source.complete and (source.start, source.length) == (
                self.start,
                self.length,
            )
            return source.head if complete else None
        if self.length is not None or not source.seekable():
            return None
        source.seek(self.start)
        head = source.read(DEFAULT_CHUNK_SIZE)
        if len(head) < DEFAULT_CHUNK_SIZE and not source.read(1):
            return head
        return None

    def chunks(self, *, downgrade: bool, dot_stuff: bool = True) -> Iterator[bytes]:
        """The wire bytes (without the final dot) of one pass over the content."""
        encoder = DataEncoder(line_length_limit=self.line_length_limit, dot_stuff=dot_stuff)
        raw = iter_file_chunks(self.fileobj, start=self.start, length=self.length)
        checks = self.checks
        header_checks = checks is not None and checks.has_header_checks
        body_checks = checks is not None and checks.has_body_checks
        if not downgrade and not header_checks and not body_checks and not self.rewrite_header:
            return self._told(encode_chunks(raw, encoder), encoder)
        header_out = self._header_hook(checks if header_checks else None)
        processor = MimeProcessor(
            downgrade=downgrade,
            # Postfix: full MIME parsing when downgrading or checking; generic maps alone
            # need only the primary header block (MIME_OPT_DISABLE_MIME).
            mime=downgrade or header_checks or body_checks,
            limits=self.limits,
            header_out=header_out,
            body_out=checks.body if checks is not None and body_checks else None,
        )
        return self._told(transform_chunks(raw, processor, encoder), encoder)

    def _told(self, wire: Iterator[bytes], encoder: DataEncoder) -> Iterator[bytes]:
        """`wire`, and `on_broken_line` called once it is exhausted, if a line was broken."""
        if self.on_broken_line is None:
            return wire
        return _then_tell(wire, encoder, self.on_broken_line)

    def _header_hook(self, checks: ContentChecks | None) -> HeaderRewriter:
        rewrite = self.rewrite_header

        def hook(cls: HeaderClass, text: bytes) -> Iterable[bytes]:
            lines: Iterable[bytes] = (
                checks.header(cls, text) if checks is not None else text.split(b"\n")
            )
            if rewrite is None or cls is not HeaderClass.PRIMARY:
                return lines
            # smtp_header_rewrite(): checks first, then generic mapping of what is left.
            out: list[bytes] = []
            for line in _logical(list(lines)):
                out.extend(rewrite(cls, line))
            return out

        return hook


def _logical(lines: list[bytes]) -> Iterator[bytes]:
    """Join header lines back into logical headers (a PREPEND adds one before the header)."""
    current: list[bytes] = []
    for line in lines:
        if current and line[:1] not in (b" ", b"\t"):
            yield b"\n".join(current)
            current = []
        current.append(line)
    if current:
        yield b"\n".join(current)


def _open(agent: AgentSettings, suffix: ClientMapsName) -> LookupTable:
    """The tables a check parameter names; one that cannot be opened fails each lookup
    (a 4.3.0 deferral of the message that needs it) instead of the whole process."""
    try:
        return agent.open_maps(suffix)
    except LOOKUP_ERRORS as exc:
        return UnavailableTable(exc)


def plan_from_settings(
    agent: AgentSettings,
    fileobj: BinaryIO | MessageFile,
    *,
    start: int,
    length: int | None,
    encoding: str,
    queue_id: str,
    info: Callable[[str], None],
    warning: Callable[[str], None],
    rewrite_header: HeaderRewriter | None = None,
) -> ContentPlan:
    """The plan for one request from the smtp_/lmtp_ settings (tables are opened here).
    `rewrite_header` is the generic(5) header hook (delivery/generic.py), if any."""
    settings = agent.settings
    prefix = agent.transport
    checks = ContentChecks(
        queue_id=queue_id,
        info=info,
        warning=warning,
        header=_open(agent, "header_checks"),
        mime_header=_open(agent, "mime_header_checks"),
        nested_header=_open(agent, "nested_header_checks"),
        body=_open(agent, "body_checks"),
        prefix=prefix,
    )
    return ContentPlan(
        fileobj=fileobj,
        start=start,
        length=length,
        encoding=encoding,
        line_length_limit=agent.params.line_length_limit,
        disable_conversion=settings.params.disable_mime_output_conversion,
        limits=MimeLimits(
            nesting_limit=settings.params.mime_nesting_limit,
            boundary_length_limit=settings.params.mime_boundary_length_limit,
            header_size_limit=settings.params.header_size_limit,
        ),
        checks=checks if checks.has_header_checks or checks.has_body_checks else None,
        rewrite_header=rewrite_header,
    )


def _then_tell(
    wire: Iterator[bytes], encoder: DataEncoder, tell: Callable[[], None]
) -> Iterator[bytes]:
    yield from wire
    if encoder.lines_broken:
        tell()
