"""Tests of mailcarrier.status: the value types stay what they were with `fast_init`'s
constructor (signature, defaults, factories, __post_init__, immutability, equality, JSON)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.errors import UsageError
from mailcarrier.protocol.commands import MailFrom, RcptTo
from mailcarrier.status import (
    Delays,
    DeliveryResult,
    DeliveryStatus,
    RecipientStatus,
    fast_init,
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "x"
    c: list[int] = dataclasses.field(default_factory=list)


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "x"
    c: list[int] = dataclasses.field(default_factory=list)


def test_same_signature_as_the_dataclass_init() -> None:
    plain = inspect.signature(_Plain.__init__)
    fast = inspect.signature(_Fast.__init__)
    assert [(p.name, p.kind, p.annotation) for p in plain.parameters.values()] == [
        (p.name, p.kind, p.annotation) for p in fast.parameters.values()
    ]
    assert str(fast) == str(plain)


def test_defaults_factories_and_errors() -> None:
    one, two = _Fast(1), _Fast(1)
    assert (one.a, one.b, one.c) == (1, "x", [])
    assert one.c is not two.c  # a fresh list each time, as default_factory promises
    assert _Fast(2, c=[3]).c == [3]
    assert _Fast(a=1, b="y") == _Fast(1, "y")
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, bogus=2)  # type: ignore[call-arg]


def test_still_frozen_hashable_and_replaceable() -> None:
    status = RecipientStatus("a@example.org", DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok")
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.dsn = "5.0.0"  # type: ignore[misc]
    assert hash(status) == hash(copy.copy(status))
    assert pickle.loads(pickle.dumps(status)) == status
    assert dataclasses.replace(status, dsn="2.1.5").dsn == "2.1.5"
    assert status.delays == Delays() and status.relay == "none" and status.conn_use == 0
    assert repr(status).startswith("RecipientStatus(address='a@example.org', status=")


def test_json_unchanged() -> None:
    status = RecipientStatus(
        address="b@example.net",
        status=DeliveryStatus.SENT,
        dsn="2.0.0",
        diagnostic="250 2.0.0 Ok",
        relay="mx[192.0.2.1]:25",
        delays=Delays(0.1, 0.2, 0.3, 0.4),
        conn_use=2,
    )
    assert DeliveryResult("Q1", (status,)).to_json() == {
        "queue_id": "Q1",
        "recipients": [
            {
                "address": "b@example.net",
                "status": "sent",
                "dsn": "2.0.0",
                "relay": "mx[192.0.2.1]:25",
                "diagnostic": "250 2.0.0 Ok",
                "delay": 1.0,
                "delays": [0.1, 0.2, 0.3, 0.4],
                "conn_use": 2,
            }
        ],
    }


def test_post_init_still_validates() -> None:
    with pytest.raises(UsageError, match="recipient address"):
        Recipient("a\r\nRSET@example.org")
    with pytest.raises(UsageError, match="at least one recipient"):
        DeliveryRequest("Q", "[127.0.0.1]", "s@example.org", (), content=b"")  # type: ignore[arg-type]
    request = DeliveryRequest("Q", "[127.0.0.1]", "", (Recipient("r@example.org"),), b"")  # type: ignore[arg-type]
    assert request.arrival_time > 0 and request.transport == "smtp"


def test_commands_render_as_before() -> None:
    assert MailFrom("s@example.org", size=10).wire() == b"MAIL FROM:<s@example.org> SIZE=10\r\n"
    assert RcptTo("a b@example.org").wire() == b'RCPT TO:<"a b"@example.org>\r\n'


def test_refuses_what_is_not_a_slotted_dataclass() -> None:
    class Plain:
        pass

    with pytest.raises(TypeError):
        fast_init(Plain)


def test_initvar_classes_are_left_alone() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: dataclasses.InitVar[int] = 0

        def __post_init__(self, b: int) -> None:
            pass

    init = WithInitVar.__init__
    assert fast_init(WithInitVar).__init__ is init
