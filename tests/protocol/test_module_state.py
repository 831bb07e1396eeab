"""protocol/ keeps no state between connections: no module-global cache or registry.

Every module of mailcarrier.protocol is imported, its module-level containers (dicts, lists,
sets, deques, bytearrays) are fingerprinted, many sessions are run through
`ClientConnection`s (replies, addresses, EHLO keywords, errors), and the fingerprints must not
have changed. What is remembered for speed is remembered per connection (each reply parser's
one-line replies) or by a bounded `functools.lru_cache` on a pure function (commands.py
`_quoted_wire_address`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import deque
from types import ModuleType

import pytest

import mailcarrier.protocol
from mailcarrier.errors import ProtocolError
from mailcarrier.protocol.client import ClientConnection
from mailcarrier.protocol.commands import Data, DataEnd, Ehlo, MailFrom, RcptTo, Rset
from tests.protocol.helpers import feed

MUTABLE = (dict, list, set, deque, bytearray)


def _modules() -> list[ModuleType]:
    package = mailcarrier.protocol
    names = [info.name for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return [importlib.import_module(name) for name in sorted(names)]


def _fingerprint() -> dict[str, str]:
    out = {}
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, MUTABLE):
                out[f"{module.__name__}.{name}"] = repr(value)
    return out


def _sessions(count: int) -> None:
    for n in range(count):
        conn = ClientConnection()
        feed(conn, b"220 mx ESMTP\r\n")
        conn.send(Ehlo("client.example"))
        feed(conn, f"250-mx{n}\r\n250-PIPELINING\r\n250 SIZE {n}\r\n".encode())
        for m in range(3):
            conn.send(Rset())
            conn.send(MailFrom(f"sender{n}@example.org"))
            conn.send(RcptTo(f"rcpt{n}-{m}@example.net"))
            conn.send(Data())
            feed(conn, f"250 Ok\r\n250 2.1.0 Ok {n}\r\n250 2.1.5 Ok {m}\r\n354 go\r\n".encode())
            conn.send_content(b"Subject: x\r\n\r\nbody\r\n")
            conn.send(DataEnd())
            feed(conn, f"250 2.0.0 Ok: queued as {n}{m}\r\n".encode())
        with pytest.raises(ProtocolError):
            conn.send(RcptTo(f"bad{n}\r\n@example.net"))  # refused input
        with pytest.raises(ProtocolError):
            feed(conn, f"garbage {n}\r\n".encode())  # a broken server


def test_there_are_modules_to_check() -> None:
    names = {module.__name__.rsplit(".", 1)[-1] for module in _modules()}
    assert {"client", "commands", "reply", "ehlo", "address", "events"} <= names


def test_sessions_leave_no_trace_in_module_state() -> None:
    _sessions(3)  # anything a first use sets up once
    before = _fingerprint()
    _sessions(200)
    assert _fingerprint() == before
