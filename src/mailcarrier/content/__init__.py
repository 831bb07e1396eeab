"""Streaming transforms of message content on its way from the queue file to the socket.

`encoder` turns content into SMTP DATA wire bytes (CRLF normalisation, dot-stuffing, Postfix's
line length limit); `stream` reads content in bounded chunks and runs it through an encoder.
Nothing here does I/O on sockets, logs, or loads a whole message into memory; the protocol
layer sends the final ``.<CR><LF>`` and transport/ writes the bytes.
"""

from __future__ import annotations

from mailcarrier.content.encoder import DEFAULT_LINE_LENGTH_LIMIT, DataEncoder, EncoderStatistics
from mailcarrier.content.stream import (
    DEFAULT_CHUNK_SIZE,
    encode_chunks,
    encode_file,
    iter_file_chunks,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_LINE_LENGTH_LIMIT",
    "DataEncoder",
    "EncoderStatistics",
    "encode_chunks",
    "encode_file",
    "iter_file_chunks",
]
