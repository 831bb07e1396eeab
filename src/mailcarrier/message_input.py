"""The message of ``mailcarrier deliver``: a file, or standard input, copied into a temporary
file in bounded chunks and scanned on the way (8-bit content, UTF-8 in the header:
delivery/autodetect.py). Standard input can be endless, so it is read only up to
message_size_limit (`MessageTooBigError` past it, before the disk fills); a temporary file
that cannot be written is a `TemporaryError` naming the directory. cli.py calls
`read_message`.
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import BinaryIO, Final

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.autodetect import ContentScan
from mailcarrier.errors import DataError, MessageTooBigError, TemporaryError

__all__ = ["read_message"]

CHUNK: Final = 65536


def _spool_input(src: BinaryIO, dest: BinaryIO, limit: int, header_limit: int) -> ContentScan:
    """Copy the message to a temporary file in bounded chunks, scanning it (8-bit content,
    UTF-8 in the header: delivery/autodetect.py).

    At most `limit` + 1 bytes are read (message_size_limit; 0 means no limit): a larger
    message stops with MessageTooBigError before it can fill the disk."""
    scan = ContentScan(header_limit)
    total = 0
    while block := src.read(CHUNK if not limit else min(CHUNK, limit + 1 - total)):
        total += len(block)
        if limit and total > limit:
            raise MessageTooBigError(f"message file too big (message_size_limit is {limit} bytes)")
        scan.feed(block)
        try:
            dest.write(block)
        except OSError as exc:
            raise _temporary_file_error(exc) from exc
    try:
        dest.flush()
    except OSError as exc:
        raise _temporary_file_error(exc) from exc
    return scan.finish()


def _temporary_file_error(exc: OSError) -> TemporaryError:
    where = tempfile.gettempdir()
    return TemporaryError(
        f"cannot write temporary file in {where}: {exc.strerror or exc}",
        path=where,
        errno=exc.errno or 0,
    )


def read_message(
    file: str, stdin: BinaryIO, settings: Settings, stack: contextlib.ExitStack
) -> tuple[BinaryIO, ContentScan]:
    """The message of `deliver` (`file`, or standard input for ``-``) copied into a
    temporary file that `stack` closes, and what scanning it found. Standard input can be
    endless: it is read up to message_size_limit, not to a full disk."""
    try:
        spool = stack.enter_context(tempfile.TemporaryFile(prefix="mailcarrier-"))  # noqa: SIM115
    except OSError as exc:
        raise _temporary_file_error(exc) from exc
    header_limit = settings.params.header_size_limit
    if file == "-":
        return spool, _spool_input(stdin, spool, settings.params.message_size_limit, header_limit)
    try:
        src = stack.enter_context(open(file, "rb"))  # noqa: SIM115 - closed by `stack`
    except OSError as exc:
        raise DataError(f"cannot open message file {file}: {exc.strerror}") from exc
    return spool, _spool_input(src, spool, 0, header_limit)  # a file is as big as it is
