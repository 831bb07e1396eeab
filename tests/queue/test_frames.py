"""queue/frames.py: batches of frames between the scheduler and its agents, and the codec.

The codec pickles the per-message values by their fields (a fast path); pickle's own way is
the general path, and hypothesis holds the two to the same objects.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.events import Event, delivery_event
from mailcarrier.notify import Notify
from mailcarrier.queue.frames import HEAD, decode, encode
from mailcarrier.status import Delays, DeliveryStatus, HopStatus, RecipientStatus, TlsSession

_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"))
_WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}.example", _WORD, _WORD)
_TIME = st.floats(min_value=0, max_value=4e9, allow_nan=False)
_NOTIFY = st.sampled_from(
    [Notify.NONE, Notify.NEVER, Notify.SUCCESS, Notify.SUCCESS | Notify.FAILURE | Notify.DELAY]
)

recipients = st.builds(
    Recipient,
    address=_ADDRESS,
    orig_address=st.one_of(st.just(""), _ADDRESS),
    dsn_orcpt=st.one_of(st.just(""), _ADDRESS.map(lambda a: f"rfc822;{a}")),
    dsn_notify=_NOTIFY,
    queue_offset=st.integers(-1, 2**40),
    attempt=st.integers(1, 1000),
)
requests = st.builds(
    DeliveryRequest,
    queue_id=_WORD,
    nexthop=st.one_of(_WORD, _WORD.map(lambda w: f"[{w}]:25")),
    sender=st.one_of(st.just(""), _ADDRESS),
    recipients=st.lists(recipients, min_size=1, max_size=4).map(tuple),
    content=_WORD.map(lambda w: Path("/var/spool/mailcarrier/active") / w),
    transport=st.sampled_from(["smtp", "lmtp"]),
    size=st.one_of(st.none(), st.integers(0, 2**40)),
    content_offset=st.integers(0, 2**20),
    encoding=st.sampled_from(["7bit", "8bit", ""]),
    smtputf8=st.booleans(),
    dsn_envid=st.one_of(st.just(""), _WORD),
    dsn_ret=st.sampled_from(["", "FULL", "HDRS"]),
    arrival_time=_TIME,
    qmgr_time=_TIME,
    probe=st.booleans(),
    requiretls=st.booleans(),
    service=st.one_of(st.just(""), _WORD),
)
delays = st.builds(Delays, _TIME, _TIME, _TIME, _TIME)
sessions = st.builds(TlsSession, _TEXT, _TEXT, _TEXT, st.integers(0, 512))
statuses = st.builds(
    RecipientStatus,
    address=_ADDRESS,
    status=st.sampled_from(DeliveryStatus),
    dsn=st.sampled_from(["2.0.0", "4.4.1", "5.1.1"]),
    diagnostic=_TEXT,
    relay=_TEXT,
    delays=delays,
    conn_use=st.integers(0, 100),
    orig_address=st.one_of(st.just(""), _ADDRESS),
    action=st.sampled_from(["", "relayed", "delivered"]),
    tls=_TEXT,
    soft_bounced=st.booleans(),
    tls_session=st.one_of(st.none(), sessions),
)
hops = st.one_of(st.none(), st.builds(HopStatus, _TEXT, _TEXT))
events = st.one_of(
    st.builds(delivery_event, _WORD, statuses, st.integers(1, 100)),
    st.builds(Event, _WORD, _WORD, st.dictionaries(_WORD, st.one_of(_TEXT, st.integers()))),
)
frames = st.one_of(
    st.tuples(st.just("deliver"), st.integers(1, 2**31), requests),
    st.tuples(st.just("status"), st.integers(1, 2**31), st.integers(0, 100), statuses),
    st.tuples(st.just("event"), _WORD, _TEXT, events),
    st.tuples(
        st.just("done"),
        st.integers(1, 2**31),
        hops,
        st.one_of(st.none(), _TIME),
        st.just((("connection", "opened"), 1)).map(lambda c: (c,)),
        st.booleans(),
    ),
    st.tuples(st.just("log"), st.sampled_from(["info", "warning"]), _WORD, _TEXT),
)


def _unwrap(batch: bytes) -> list[tuple[Any, ...]]:
    (length,) = HEAD.unpack(batch[: HEAD.size])
    assert length == len(batch) - HEAD.size
    return decode(batch[HEAD.size :])


def _shape(value: object) -> object:
    """`value` with every type and every field (tls_session is left out of equality)."""
    if isinstance(value, tuple | list):
        return (type(value), [_shape(v) for v in value])
    slots = getattr(type(value), "__slots__", None)
    if slots and not isinstance(value, Path):
        return (type(value), [_shape(getattr(value, name)) for name in slots])
    return (type(value), value)


@given(st.lists(frames, max_size=8))
def test_a_batch_comes_back_as_pickle_would_give_it(batch: list[tuple[Any, ...]]) -> None:
    general = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    fast = _unwrap(encode(batch))
    assert fast == general == batch
    assert _shape(fast) == _shape(general)


def test_a_value_sent_twice_in_a_batch_is_written_once() -> None:
    status = RecipientStatus("a@b.example", DeliveryStatus.SENT, "2.0.0", "250 Ok", "r")
    verdict = ("status", 1, 0, status)
    line = ("event", "smtp", "", delivery_event("Q", status, 1))
    both = encode([verdict, line])
    # The event refers to the status written before it instead of writing it again.
    assert len(both) < len(encode([verdict])) + len(encode([line])) - 100
    fast = _unwrap(both)
    assert fast[1][3].status is fast[0][3]


def test_paths_and_members_come_back_as_themselves() -> None:
    (message,) = _unwrap(encode([("x", Path("/q/active/ABC"), DeliveryStatus.DEFERRED)]))
    assert type(message[1]) is type(Path("/q")) and message[1] == Path("/q/active/ABC")
    assert message[2] is DeliveryStatus.DEFERRED


@pytest.mark.parametrize(
    "payload",
    [("deliver", 1), [("deliver", 1), ()], [("deliver", 1), "done"], [()]],
)
def test_anything_but_a_list_of_frames_is_refused(payload: object) -> None:
    with pytest.raises(ValueError, match="malformed"):
        decode(pickle.dumps(payload))
