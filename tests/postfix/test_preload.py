"""postfix/main.py's `preload()`: after it, a host name lookup (socket.getaddrinfo() encodes
the name with the "idna" codec, and that with "punycode") works in a process that can no
longer import anything, as an agent whose interpreter mail_owner cannot read (installed
under a 0700 home directory) after it dropped its privileges; without it, the lookup fails
with "unknown encoding: idna", as every delivery to a host name did under Postfix."""

from __future__ import annotations

import subprocess
import sys
from typing import Final

import pytest

SCRIPT: Final = """
import socket, sys
from mailcarrier.postfix.main import preload
if sys.argv[1] == "preload":
    preload()

class Unreadable:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"{name}: permission denied")

sys.meta_path.insert(0, Unreadable())
try:
    print("bücher.example".encode("idna").decode(), end=" ")
    print(socket.getaddrinfo("localhost", 25, socket.AF_INET)[0][4][0])
except LookupError as exc:
    print(f"LookupError: {exc}")
"""


@pytest.mark.parametrize(
    ("argument", "output"),
    [
        ("preload", "xn--bcher-kva.example 127.0.0.1\n"),
        ("none", "LookupError: unknown encoding: idna\n"),
    ],
)
def test_preload_keeps_host_names_working_without_the_interpreter_files(
    argument: str, output: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, argument],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout == output


LOOP_SCRIPT: Final = """
import asyncio, sys
from mailcarrier.aio import run_event_loop
from mailcarrier.postfix.main import preload
if sys.argv[1] == "preload":
    preload()

class Unreadable:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"{name}: permission denied")

sys.meta_path.insert(0, Unreadable())

async def which() -> str:
    return type(asyncio.get_running_loop()).__module__

print(run_event_loop(which()))
"""


@pytest.mark.parametrize(
    ("argument", "loop"), [("preload", "uvloop"), ("none", "asyncio.unix_events")]
)
def test_preload_keeps_uvloop_without_the_interpreter_files(argument: str, loop: str) -> None:
    pytest.importorskip("uvloop")
    proc = subprocess.run(
        [sys.executable, "-c", LOOP_SCRIPT, argument],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout == f"{loop}\n"


DNS_SCRIPT: Final = """
import sys
from mailcarrier.postfix.main import preload
if sys.argv[1] == "preload":
    preload()

class Unreadable:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"{name}: permission denied")

sys.meta_path.insert(0, Unreadable())
try:
    import asyncio, dns.asyncbackend, dns.message, dns.rrset

    async def backend():
        return dns.asyncbackend.get_default_backend().name()

    asyncio.run(backend())
    query = dns.message.make_query("example.test", "MX")
    answer = dns.message.make_response(query)
    for text in ("MX 10 mx.example.test.", "A 192.0.2.1", "AAAA 2001:db8::1",
                 "TLSA 3 1 1 " + "ab" * 32, "CNAME other.example.test."):
        kind, data = text.split(" ", 1)
        answer.answer.append(dns.rrset.from_text("example.test.", 60, "IN", kind, data))
    parsed = dns.message.from_wire(answer.to_wire())
    print(len(parsed.answer))
except ImportError as exc:
    print(f"ImportError: {exc}")
"""


@pytest.mark.parametrize(("argument", "output"), [("preload", "5\n"), ("none", "ImportError")])
def test_preload_keeps_dns_lookups_working_without_the_interpreter_files(
    argument: str, output: str
) -> None:
    """dnspython imports its resolver backend and record classes on first use: after the
    privilege drop that would fail, and every delivery to a domain would defer."""
    proc = subprocess.run(
        [sys.executable, "-c", DNS_SCRIPT, argument],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.startswith(output)
