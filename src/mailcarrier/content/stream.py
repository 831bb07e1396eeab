"""Read message content from a file in bounded chunks, and encode it for SMTP DATA on the way.

`iter_file_chunks` yields a file, or a byte range of it (the content part of a queue file), in
chunks of at most `chunk_size` bytes, so memory never grows with the message size (DESIGN.md:
"Stream, don't load"). `encode_chunks` and `encode_file` run those chunks through a
`DataEncoder` and yield the wire bytes. This module does no socket I/O (transport/ writes what
it yields) and knows nothing about queue file layout (queue/ supplies `start` and `length`).
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from mailcarrier.content.encoder import DataEncoder
from mailcarrier.errors import DataError, UsageError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "encode_chunks",
    "encode_file",
    "iter_file_chunks",
]

# Large enough that per-chunk overhead vanishes, small enough to keep several sessions cheap.
DEFAULT_CHUNK_SIZE: Final = 65536


def iter_file_chunks(
    fileobj: BinaryIO,
    *,
    start: int = 0,
    length: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Yield the bytes of `fileobj` from `start`, `length` bytes long (None: to end of file).

    Each yielded chunk is a fresh, non-empty bytes object of at most `chunk_size` bytes. A
    seekable file is positioned at `start` first; a non-seekable one (a pipe) is read from where
    it is, and then `start` must be 0. If the file ends before `length` bytes were read, the
    content is damaged (a truncated queue file): `DataError` is raised rather than sending a
    shortened message as if it were complete.
    """
    if chunk_size <= 0:
        raise UsageError(f"chunk_size must be positive, not {chunk_size}")
    if start < 0:
        raise UsageError(f"start must not be negative, not {start}")
    if length is not None and length < 0:
        raise UsageError(f"length must not be negative, not {length}")
    if type(fileobj) is io.FileIO:
        # A file opened by path (delivery/job.py): read at the offsets, with no seekable()
        # and seek() system calls (os.pread; a pipe falls back to plain reads).
        return _pread_chunks(fileobj, start, length, chunk_size)
    if fileobj.seekable():
        fileobj.seek(start)
    elif start:
        raise UsageError(f"cannot start at offset {start} of a non-seekable stream")
    # The checks and the seek above happen at the call; the reading happens as it is iterated.
    return _read_chunks(fileobj, start, length, chunk_size)


def _pread_chunks(
    fileobj: io.FileIO, start: int, length: int | None, chunk_size: int
) -> Iterator[bytes]:
    fd = fileobj.fileno()
    done = 0
    while length is None or done < length:
        want = chunk_size if length is None else min(chunk_size, length - done)
        try:
            chunk = os.pread(fd, want, start + done)
        except OSError as exc:
            if exc.errno != errno.ESPIPE or done:
                raise
            # Not seekable after all (a FIFO given by path): read it from where it is.
            if start:
                raise UsageError(
                    f"cannot start at offset {start} of a non-seekable stream"
                ) from None
            yield from _read_chunks(fileobj, start, length, chunk_size)
            return
        if not chunk:
            break
        done += len(chunk)
        yield chunk
    _check_complete(done, length, start)


def _check_complete(done: int, length: int | None, start: int) -> None:
    """A file that ends before `length` bytes is damaged: never send it as if complete."""
    if length is not None and done < length:
        raise DataError(
            f"message content ends after {done} of {length} bytes (starting at offset {start})"
        )


def _read_chunks(
    fileobj: BinaryIO, start: int, length: int | None, chunk_size: int
) -> Iterator[bytes]:
    done = 0
    while length is None or done < length:
        want = chunk_size if length is None else min(chunk_size, length - done)
        chunk = fileobj.read(want)
        if not chunk:
            break
        done += len(chunk)
        yield chunk
    _check_complete(done, length, start)


def encode_chunks(chunks: Iterable[bytes], encoder: DataEncoder) -> Iterator[bytes]:
    """Feed each chunk to `encoder`, then finish it; yield the non-empty wire pieces.

    The final ``.<CR><LF>`` is not included. The encoder's counters are complete once the
    iterator is exhausted.
    """
    for chunk in chunks:
        wire = encoder.feed(chunk)
        if wire:
            yield wire
    wire = encoder.finish()
    if wire:
        yield wire


def encode_file(
    fileobj: BinaryIO,
    *,
    start: int = 0,
    length: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encoder: DataEncoder | None = None,
) -> Iterator[bytes]:
    """Yield the SMTP DATA wire bytes of a file's content (a byte range of it), chunk by chunk.

    Pass an `encoder` to choose the line length limit or dot-stuffing and to read its counters
    afterwards; the default is a `DataEncoder()` with Postfix's defaults.
    """
    if encoder is None:
        encoder = DataEncoder()
    chunks = iter_file_chunks(fileobj, start=start, length=length, chunk_size=chunk_size)
    return encode_chunks(chunks, encoder)
