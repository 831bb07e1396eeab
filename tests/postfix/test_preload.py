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
