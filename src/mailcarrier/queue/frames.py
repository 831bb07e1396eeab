"""The bytes between the scheduler and its agent processes: batches of frames, and the codec.

queue/workers.py sends messages (tuples such as ``("deliver", id, DeliveryRequest)`` or
``("status", id, index, RecipientStatus)``) over pipes. Everything one side sends in one turn
of its event loop travels as one batch: a 4-byte big-endian length, then one pickle of the
list of those messages. One pickle, one write and one wake-up of the reader then serve every
message of the turn, and a value sent twice in a turn (the verdict in its ``status`` frame
and again in the ``event`` of its log line) is written once (pickle's memo).

The values sent for every message are pickled by their fields and rebuilt by their class:
`DeliveryRequest`, `Recipient`, `RecipientStatus`, `Delays`, `TlsSession`, `HopStatus`,
`Event` as ``cls(*fields)``, the `DeliveryStatus` members by name, paths by their text. The
frozen dataclasses' own pickling goes through Python-level ``__getstate__`` and
``__setstate__`` and costs about three times as much; the result is the same objects
(tests/queue/test_frames.py holds the two to each other with hypothesis). Anything else is
pickled as pickle does it. Both ends are this program: nothing else writes to the pipes.
This module does no I/O; workers.py owns the pipes.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import pickle
import struct
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, Final

from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.events import Event
from mailcarrier.status import Delays, DeliveryStatus, HopStatus, RecipientStatus, TlsSession

__all__ = ["HEAD", "MAX_BATCH", "decode", "encode"]

HEAD: Final = struct.Struct(">I")
MAX_BATCH: Final = 256 * 1024 * 1024
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL

_Reducer = Callable[[Any], "str | tuple[Any, ...]"]


def _by_fields(cls: type) -> _Reducer:
    """Pickle an instance of dataclass `cls` as ``cls(*its field values)``: every field is
    an init field and positional, so the constructor rebuilds it (checks included)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if any(not f.init or f.kw_only for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__} cannot be rebuilt from its fields")
    values = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (cls, (values(obj),))
    return lambda obj: (cls, values(obj))


def _status_member(member: DeliveryStatus) -> str:
    return f"DeliveryStatus.{member.name}"  # a global of mailcarrier.status, by name


def _path(path: PurePath) -> tuple[Any, ...]:
    return type(path), (str(path),)


_TABLE: Final[dict[type, _Reducer]] = {
    cls: _by_fields(cls)
    for cls in (DeliveryRequest, Recipient, RecipientStatus, Delays, TlsSession, HopStatus, Event)
}
_TABLE[DeliveryStatus] = _status_member
for _cls in (type(PurePath()), type(Path())):  # PurePosixPath and PosixPath here
    _TABLE[_cls] = _path


class _Pickler(pickle.Pickler):
    dispatch_table = _TABLE


def encode(messages: list[tuple[object, ...]]) -> bytes:
    """One batch: its length, then the pickle of `messages`."""
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    _Pickler(buffer, protocol=_PROTOCOL).dump(messages)
    data = buffer.getbuffer()
    length = len(data) - HEAD.size
    if length > MAX_BATCH:
        raise ValueError(f"batch of {length} bytes")
    HEAD.pack_into(data, 0, length)
    del data  # release the view before the buffer is read whole
    return buffer.getvalue()


def decode(data: bytes) -> list[tuple[Any, ...]]:
    """The messages of one batch (without its length); ValueError when it is not a list
    of non-empty tuples."""
    messages = pickle.loads(data)
    if not isinstance(messages, list):
        raise ValueError("malformed batch")
    for message in messages:
        if not isinstance(message, tuple) or not message:
            raise ValueError("malformed frame")
    return messages
