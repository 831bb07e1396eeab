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
    "MessageFile",
    "encode_chunks",
    "encode_file",
    "iter_file_chunks",
    "open_message_file",
]

# Large enough that per-chunk overhead vanishes, small enough to keep several sessions cheap.
DEFAULT_CHUNK_SIZE: Final = 65536
# What `open_message_file` reads at once and keeps for the whole delivery (the wait for the
# server's last reply included): most mail fits, and a thousand sessions keep 16 MB at most.
FIRST_BLOCK: Final = 16384


class MessageFile:
    """A message file opened by path for one delivery: its descriptor, read at offsets with
    ``os.pread`` (no file object, no seeks), and the first block, read when it was opened.

    For a message smaller than one block the first read is the whole content: its size
    needs no ``fstat()`` and every pass over it (one per server tried) reads no file at all.
    Opening, reading and closing a small message take three system calls instead of six,
    and such a message holds no descriptor after it is opened (`closed` is then true from the
    start; `close()` is still the caller's to call, and harmless).
    """

    __slots__ = ("_fd", "eof", "head", "length", "start")

    def __init__(self, fd: int, head: bytes, start: int, length: int | None, eof: bool) -> None:
        self._fd = fd
        self.head = head  # the bytes from `start`, at most one block
        self.start = start
        self.length = length
        self.eof = eof  # the file ended within `head`

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def complete(self) -> bool:
        """Whether `head` is the whole content: the file ended within it, or it holds the
        `length` bytes asked for."""
        if self.length is not None:
            return len(self.head) == self.length
        return self.eof

    def size(self) -> int:
        """Bytes from `start` to the end of the file."""
        if self.eof:
            return len(self.head)
        return max(0, os.fstat(self._fd).st_size - self.start)


def open_message_file(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    length: int | None = None,
    chunk_size: int = FIRST_BLOCK,
) -> MessageFile | io.FileIO:
    """Open the message file at `path` and read its first block, at most `chunk_size` bytes
    (`MessageFile`); the rest is read in `DEFAULT_CHUNK_SIZE` chunks as it is sent. A file that
    cannot be read at an offset (a FIFO) comes back as an unbuffered `io.FileIO`, read as it
    flows. OSError (missing file, a directory) propagates."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    want = chunk_size if length is None else min(chunk_size, length)
    try:
        head = os.pread(fd, want, start) if want else b""
    except OSError as exc:
        if exc.errno == errno.ESPIPE:
            return io.FileIO(fd, "rb", closefd=True)
        os.close(fd)
        raise
    except BaseException:
        os.close(fd)
        raise
    # A regular file returns less than asked only at its end. Then `head` is all there is
    # to send, on every pass: the descriptor is closed now rather than held through the
    # wait for the server's reply (10,000 slow sessions would otherwise need 20,000).
    eof = len(head) < want
    if eof:
        os.close(fd)
        fd = -1
    return MessageFile(fd, head, start, length, eof=eof)


def iter_file_chunks(
    fileobj: BinaryIO | MessageFile,
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
    if isinstance(fileobj, MessageFile):
        if start != fileobj.start or length != fileobj.length:
            raise UsageError("a MessageFile is read from the range it was opened for")
        return _message_chunks(fileobj, chunk_size)
    if type(fileobj) is io.FileIO:
        # A file opened by path (delivery/state.py): read at the offsets, with no seekable()
        # and seek() system calls (os.pread; a pipe falls back to plain reads).
        return _pread_chunks(fileobj, start, length, chunk_size)
    if fileobj.seekable():
        fileobj.seek(start)
    elif start:
        raise UsageError(f"cannot start at offset {start} of a non-seekable stream")
    # The checks and the seek above happen at the call; the reading happens as it is iterated.
    return _read_chunks(fileobj, start, length, chunk_size)


def _pread_chunks(
    fileobj: io.FileIO | MessageFile,
    start: int,
    length: int | None,
    chunk_size: int,
    done: int = 0,
) -> Iterator[bytes]:
    """The rest of the range from `done` bytes in, read at offsets."""
    fd = fileobj.fileno()
    while length is None or done < length:
        want = chunk_size if length is None else min(chunk_size, length - done)
        try:
            chunk = os.pread(fd, want, start + done)
        except OSError as exc:
            if exc.errno != errno.ESPIPE or done or not isinstance(fileobj, io.FileIO):
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


def _message_chunks(message: MessageFile, chunk_size: int) -> Iterator[bytes]:
    head, start, length = message.head, message.start, message.length
    if head:
        yield head
    if message.eof:
        _check_complete(len(head), length, start)
    else:
        yield from _pread_chunks(message, start, length, chunk_size, done=len(head))


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
