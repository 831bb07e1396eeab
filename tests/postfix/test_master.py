"""postfix/master.py: a `MasterChild` against a stand-in master: a socketpair for the status
channel (the test reads the 12-byte notices from its end) and a listening unix socket.

What master sees: TAKEN after accept and AVAIL after close with a concurrency of 1 (as
single_server), TAKEN only at the process's own limit otherwise, a place given back as soon as
the handler releases it (not with a concurrency of 1), one TAKEN/AVAIL pair after the first
connection that ends while none waits, so that master counts a use. When serving stops: on EOF
of the status socket (after the connections in flight are finished), on a status write that
fails, after ``max_use`` connections (with a concurrency of 1; many at once retire after
max_idle x max_use seconds) and after ``max_idle`` seconds. Losing an accept race (EAGAIN) is
nothing. The last tests start real processes with the descriptors master(8) gives (fd 5, fd 6,
``$GENERATION``); tests/postfix/test_master_postfix.py runs one under a real master.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.log import MemoryLog
from mailcarrier.postfix.master import (
    AVAIL,
    RETIRE_CEILING,
    TAKEN,
    ChildLimits,
    Handler,
    MasterChild,
    MasterError,
    StopReason,
    parse_argv,
    retire_after,
    set_signals,
    status_message,
    stream_handler,
)

PID = 4242
GENERATION = 0o24


class StandIn:
    """master's side: the other end of the status socket, and the listen socket."""

    def __init__(self, directory: Path) -> None:
        self.status, self.child_status = socket.socketpair()
        self.status.setblocking(False)
        self.path = str(directory / "private-smtp")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.received = b""

    def child(self, log: MemoryLog | None = None, **limits: float) -> MasterChild:
        return MasterChild(
            [self.listener],
            status_fd=self.child_status.fileno(),
            generation=GENERATION,
            limits=ChildLimits(**limits),  # type: ignore[arg-type]
            log=log,
            pid=PID,
        )

    def notices(self, pid: int = PID) -> list[int]:
        """The avail field of every notice so far (each must be whole, from `pid`)."""
        while True:
            try:
                data = self.status.recv(4096)
            except BlockingIOError:
                break
            if not data:
                break
            self.received += data
        assert len(self.received) % 12 == 0, self.received
        out = []
        pid_ = pid
        for offset in range(0, len(self.received), 12):
            pid, gen, avail = struct.unpack("=iIi", self.received[offset : offset + 12])
            assert (pid, gen) == (pid_, GENERATION)
            out.append(avail)
        return out

    def close(self) -> None:
        for sock in (self.status, self.child_status, self.listener):
            sock.close()


@pytest.fixture
def master(short_tmp: Path) -> Iterator[StandIn]:
    stand_in = StandIn(short_tmp)
    yield stand_in
    stand_in.close()


class Gates:
    """A handler that greets, waits for its gate, then says bye; gates open one by one."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Event] = []
        self.finished = 0
        self.serve = stream_handler(self.handler)  # what MasterChild.serve() takes

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        gate = asyncio.Event()
        self.waiting.append(gate)
        await gate.wait()
        writer.write(b"bye\n")
        await writer.drain()
        self.finished += 1

    def open_one(self) -> None:
        self.waiting.pop(0).set()


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Wait for `condition` (a generous ceiling: only "it happened", never how fast)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 10)

    def close(self) -> None:
        self.writer.close()


Connect = Callable[[], Awaitable[Client]]


@pytest.fixture
async def connect(master: StandIn) -> AsyncIterator[Connect]:
    """Connect a client to the listen socket (closed after the test)."""
    clients: list[Client] = []

    async def one() -> Client:
        reader, writer = await asyncio.open_unix_connection(master.path)
        clients.append(Client(reader, writer))
        return clients[-1]

    yield one
    for client in clients:
        client.close()


def test_a_notice_is_twelve_bytes_as_real_smtp_wrote_them() -> None:
    if sys.byteorder != "little":
        pytest.skip("captured on x86_64")
    # strace of Postfix's smtp: write(5, "_O\0\0\24\0\0\0\0\0\0\0", 12), then avail 1.
    assert status_message(0x4F5F, 0o24, TAKEN) == b"_O\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00"
    assert status_message(0x4F5F, 0o24, AVAIL) == b"_O\x00\x00\x14\x00\x00\x00\x01\x00\x00\x00"


async def test_one_at_a_time_is_single_server(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    child = master.child(concurrency=1)
    serving = asyncio.ensure_future(child.serve(gates.serve))
    first = await connect()
    assert await first.line() == b"hello\n"
    await until(lambda: master.notices() == [TAKEN], "TAKEN after accept")
    second = await connect()  # waits in the backlog: the process is at its limit
    await asyncio.sleep(0.05)
    assert len(gates.waiting) == 1
    gates.open_one()
    assert await first.line() == b"bye\n"
    assert await second.line() == b"hello\n"
    assert master.notices() == [TAKEN, AVAIL, TAKEN]
    gates.open_one()
    assert await second.line() == b"bye\n"
    await until(lambda: master.notices() == [TAKEN, AVAIL, TAKEN, AVAIL], "AVAIL after close")
    assert child.statistics().uses == 2
    master.status.close()  # master goes away
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE


async def test_taken_only_at_the_concurrency_limit(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    child = master.child(concurrency=2)
    serving = asyncio.ensure_future(child.serve(gates.serve))
    one, two = await connect(), await connect()
    assert (await one.line(), await two.line()) == (b"hello\n", b"hello\n")
    await until(lambda: master.notices() == [TAKEN], "TAKEN at the limit")
    three = await connect()
    await asyncio.sleep(0.05)
    assert len(gates.waiting) == 2  # the third waits for room
    gates.open_one()
    assert await three.line() == b"hello\n"
    assert master.notices() == [TAKEN, AVAIL, TAKEN]
    gates.open_one()
    await until(lambda: master.notices() == [TAKEN, AVAIL, TAKEN, AVAIL], "AVAIL below the limit")
    gates.open_one()
    await until(lambda: gates.finished == 3, "all served")
    assert master.notices() == [TAKEN, AVAIL, TAKEN, AVAIL]  # below the limit: nothing
    statistics = child.statistics()
    assert (statistics.accepted, statistics.completed, statistics.uses) == (3, 3, 2)
    master.status.close()
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE


async def test_a_released_connection_gives_its_place_back(
    master: StandIn, connect: Connect
) -> None:
    # The qmgr server releases before its final reply, then waits for qmgr to close; qmgr
    # connects for its next delivery at once, and must not find the process at its limit.
    gates = Gates()
    child = master.child(concurrency=2)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await gates.handler(reader, writer)
        child.release()
        child.release()  # once is enough
        await reader.read()  # until the peer closes

    serving = asyncio.ensure_future(child.serve(stream_handler(handler)))
    one, two = await connect(), await connect()
    assert (await one.line(), await two.line()) == (b"hello\n", b"hello\n")
    await until(lambda: master.notices() == [TAKEN], "TAKEN at the limit")
    three = await connect()
    gates.open_one()
    assert (await one.line(), await three.line()) == (b"bye\n", b"hello\n")  # one still open
    assert master.notices() == [TAKEN, AVAIL, TAKEN]
    one.close()
    await until(lambda: child.statistics().completed == 1, "one's end")
    assert master.notices() == [TAKEN, AVAIL, TAKEN]  # its place was given back already
    assert child.statistics().active == 2
    child.release()  # not from a connection: nothing
    assert child.statistics().active == 2
    gates.open_one()
    gates.open_one()
    assert (await two.line(), await three.line()) == (b"bye\n", b"bye\n")
    await until(lambda: master.notices() == [TAKEN, AVAIL, TAKEN, AVAIL], "AVAIL")
    master.status.close()
    two.close()
    three.close()
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE


async def test_release_does_nothing_for_a_single_server(master: StandIn, connect: Connect) -> None:
    child = master.child(concurrency=1)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        child.release()
        await reader.read()

    serving = asyncio.ensure_future(child.serve(stream_handler(handler)))
    first = await connect()
    assert await first.line() == b"hello\n"
    second = await connect()
    await asyncio.sleep(0.05)
    assert master.notices() == [TAKEN]  # AVAIL only after close, as single_server
    first.close()
    assert await second.line() == b"hello\n"
    assert master.notices() == [TAKEN, AVAIL, TAKEN]
    master.status.close()
    second.close()
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE


async def test_a_process_below_its_limit_is_counted_as_used_once(
    master: StandIn, connect: Connect
) -> None:
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=5).serve(gates.serve))
    for _ in range(3):
        client = await connect()
        assert await client.line() == b"hello\n"
        gates.open_one()
        assert await client.line() == b"bye\n"
    await until(lambda: gates.finished == 3)
    await asyncio.sleep(0.02)
    assert master.notices() == [TAKEN, AVAIL]
    master.status.close()
    await asyncio.wait_for(serving, 10)


async def test_the_use_is_counted_when_no_connection_waits(
    master: StandIn, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a connection waiting, master would start a spare process between TAKEN and AVAIL.
    waiting = [True]
    monkeypatch.setattr(MasterChild, "_pending", lambda self: waiting.pop(0) if waiting else False)
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=5).serve(gates.serve))
    client = await connect()
    assert await client.line() == b"hello\n"
    gates.open_one()
    await until(lambda: gates.finished == 1)
    await asyncio.sleep(0.02)
    assert master.notices() == []  # a connection was waiting: the next end tries again
    client = await connect()
    assert await client.line() == b"hello\n"
    gates.open_one()
    await until(lambda: master.notices() == [TAKEN, AVAIL], "counted as used")
    master.status.close()
    await asyncio.wait_for(serving, 10)


async def test_eof_on_the_status_socket_finishes_what_is_in_flight(
    master: StandIn, connect: Connect
) -> None:
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=5).serve(gates.serve))
    first = await connect()
    assert await first.line() == b"hello\n"
    master.status.close()  # postfix reload, or master gone
    await asyncio.sleep(0.05)
    late = await connect()  # no longer accepted
    await asyncio.sleep(0.05)
    assert not serving.done()
    gates.open_one()
    assert await first.line() == b"bye\n"
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE
    assert len(gates.waiting) == 0 and gates.finished == 1
    pending, _ = master.listener.accept()  # the late client is still in the backlog
    pending.close()
    late.close()


async def test_a_status_write_that_fails_means_master_is_gone(
    master: StandIn, connect: Connect
) -> None:
    master.status.shutdown(socket.SHUT_RD)  # writes fail, and no EOF to read
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=1).serve(gates.serve))
    client = await connect()
    assert await client.line() == b"hello\n"  # TAKEN failed: stop accepting, serve this one
    gates.open_one()
    assert await client.line() == b"bye\n"
    assert await asyncio.wait_for(serving, 10) is StopReason.MASTER_GONE


async def test_max_use(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=1, max_use=3).serve(gates.serve))
    for _ in range(3):
        client = await connect()
        assert await client.line() == b"hello\n"
        gates.open_one()
    assert await asyncio.wait_for(serving, 10) is StopReason.MAX_USE
    # The third connection left it TAKEN: master starts a successor while it finishes.
    assert master.notices() == [TAKEN, AVAIL, TAKEN, AVAIL, TAKEN]


async def test_max_use_with_deliveries_in_flight(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=10, max_use=2).serve(gates.serve))
    one, two = await connect(), await connect()
    assert (await one.line(), await two.line()) == (b"hello\n", b"hello\n")
    await until(lambda: master.notices() == [TAKEN], "TAKEN when it stops accepting")
    third = await connect()
    gates.open_one()
    gates.open_one()
    assert await asyncio.wait_for(serving, 10) is StopReason.MAX_USE
    assert (await one.line(), await two.line()) == (b"bye\n", b"bye\n")
    pending, _ = master.listener.accept()  # never accepted by the child
    pending.close()
    third.close()


def test_retirement_time_is_postfix_s() -> None:
    assert retire_after(100, 100.0) == 10000.0
    assert retire_after(100, 300.0) == RETIRE_CEILING == 18000.0  # 30000 s is too long
    assert retire_after(0, 100.0) == retire_after(100, 0.0) == RETIRE_CEILING


def test_limits_from_main_cf() -> None:
    def limits(**params: str) -> ChildLimits:
        return ChildLimits.from_settings(Settings.defaults().with_overrides(params))

    # One connection at a time: max_use counts connections, as smtp(8).
    assert limits(agent_concurrency_limit="1") == ChildLimits(1, 100, 100.0, 18000.0, 0.0)
    # Many at once: no use count; retire after max_idle x max_use seconds.
    assert limits() == ChildLimits(20, 0, 100.0, 18000.0, 10000.0)
    assert limits(max_use="5", max_idle="60s") == ChildLimits(20, 0, 60.0, 18000.0, 300.0)


async def test_retirement_with_deliveries_in_flight(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    serving = asyncio.ensure_future(master.child(concurrency=3, retire=0.2).serve(gates.serve))
    one = await connect()
    assert await one.line() == b"hello\n"
    await until(lambda: master.notices() == [TAKEN], "TAKEN when it retires, busy")
    late = await connect()
    await asyncio.sleep(0.05)
    assert len(gates.waiting) == 1  # no longer accepting
    gates.open_one()
    assert await asyncio.wait_for(serving, 10) is StopReason.RETIRE
    assert await one.line() == b"bye\n"
    pending, _ = master.listener.accept()  # left for the successor
    pending.close()
    late.close()


async def test_a_changed_table_makes_way_for_a_fresh_process(
    master: StandIn, connect: Connect
) -> None:
    """smtp(8)'s pre_accept: a table that changed is not served from; the connection waits
    on the listen socket for the process master starts next."""
    changed: list[str] = []
    log = MemoryLog()
    gates = Gates()
    child = MasterChild(
        [master.listener],
        status_fd=master.child_status.fileno(),
        generation=GENERATION,
        log=log,
        pid=PID,
        changed=lambda: changed[0] if changed else None,
    )
    serving = asyncio.ensure_future(child.serve(gates.serve))
    first = await connect()
    assert await first.line() == b"hello\n"
    gates.open_one()
    assert await first.line() == b"bye\n"
    changed.append("/etc/postfix/generic.db")
    second = await connect()
    assert await asyncio.wait_for(serving, 10) is StopReason.TABLE_CHANGED
    assert log.records == [
        ("info", "smtp", "table /etc/postfix/generic.db has changed -- restarting")
    ]
    assert child.statistics().accepted == 1
    pending, _ = master.listener.accept()  # left for the successor
    pending.close()
    second.close()


async def test_max_idle(master: StandIn, connect: Connect) -> None:
    gates = Gates()
    idle = asyncio.ensure_future(master.child(max_idle=0.1).serve(gates.serve))
    assert await asyncio.wait_for(idle, 10) is StopReason.MAX_IDLE
    # With a connection the timer starts again when it ends.
    child = master.child(concurrency=3, max_idle=0.2)
    serving = asyncio.ensure_future(child.serve(gates.serve))
    client = await connect()
    assert await client.line() == b"hello\n"
    await asyncio.sleep(0.3)
    assert not serving.done()  # busy is not idle
    gates.open_one()
    assert await asyncio.wait_for(serving, 10) is StopReason.MAX_IDLE
    assert child.statistics().completed == 1


class Racing(socket.socket):
    """A listen socket whose first accept() loses the race to another process."""

    lost: list[socket.socket]

    def accept(self) -> tuple[socket.socket, object]:
        if not self.lost:
            conn, _ = super().accept()
            self.lost.append(conn)  # another process got it
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return super().accept()


async def test_losing_an_accept_race_is_nothing(master: StandIn) -> None:
    listener = Racing(fileno=os.dup(master.listener.fileno()))
    listener.lost = []
    log = MemoryLog()
    gates = Gates()
    child = MasterChild([listener], status_fd=master.child_status.fileno(), log=log, pid=PID)
    serving = asyncio.ensure_future(child.serve(gates.serve))
    _, writer1 = await asyncio.open_unix_connection(master.path)
    await until(lambda: len(listener.lost) == 1, "the lost race")
    reader2, writer2 = await asyncio.open_unix_connection(master.path)
    assert await asyncio.wait_for(reader2.readline(), 10) == b"hello\n"
    assert log.lines == []
    assert child.statistics().accepted == 1
    gates.open_one()
    master.status.close()
    await asyncio.wait_for(serving, 10)
    for conn in listener.lost:
        conn.close()
    for writer in (writer1, writer2):
        writer.close()
    listener.close()


async def test_a_failing_handler_is_a_warning(master: StandIn, connect: Connect) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise ValueError("bad request")

    log = MemoryLog()
    child = master.child(log, concurrency=2)
    child_serving = asyncio.ensure_future(child.serve(stream_handler(broken)))
    for _ in range(2):
        client = await connect()
        assert await client.line() == b""  # closed, and the next one is served too
    assert log.lines == ["warning: smtp socket: ValueError: bad request"] * 2
    master.status.close()
    assert await asyncio.wait_for(child_serving, 10) is StopReason.MASTER_GONE


async def test_a_handler_s_own_timeout_is_not_the_watchdog(
    master: StandIn, connect: Connect
) -> None:
    async def slow_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise TimeoutError("read timeout")

    log = MemoryLog()
    serving = asyncio.ensure_future(master.child(log).serve(stream_handler(slow_peer)))
    client = await connect()
    assert await client.line() == b""
    assert log.lines == ["warning: smtp socket: TimeoutError: read timeout"]
    master.status.close()
    await asyncio.wait_for(serving, 10)


async def test_daemon_timeout_closes_a_connection(master: StandIn, connect: Connect) -> None:
    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    log = MemoryLog()
    serving = asyncio.ensure_future(
        master.child(log, daemon_timeout=0.1).serve(stream_handler(stuck))
    )
    client = await connect()
    assert await client.line() == b""
    await until(lambda: bool(log.lines))
    assert log.lines == ["warning: smtp socket: watchdog timeout after 0.1s: connection closed"]
    master.status.close()
    await asyncio.wait_for(serving, 10)


async def test_serve_runs_once(master: StandIn) -> None:
    child = master.child(max_idle=0.01)
    handler: Handler = stream_handler(Gates().handler)
    await child.serve(handler)
    with pytest.raises(RuntimeError):
        await child.serve(handler)


def test_set_signals() -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM)}
    try:
        set_signals()
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


# --- a real process with master's descriptors -----------------------------------------------
_AGENT = """
import asyncio, os, sys
from mailcarrier.postfix.master import (
    MasterChild, MasterError, load_settings, parse_argv, stream_handler,
)
options = parse_argv(sys.argv)
settings = load_settings(options)
try:
    child = MasterChild.from_master(options, settings)
except MasterError as exc:
    print(exc)
    sys.exit(1)

async def greet(reader, writer):
    writer.write(f"{options.service_name} {options.personality} {os.getpid()}\\n".encode())
    await writer.drain()

print(asyncio.run(child.serve(stream_handler(greet))).name, flush=True)
"""


def _agent(directory: Path) -> str:
    """The agent as a program named smtp (the personality follows the name)."""
    path = directory / "smtp"
    path.write_text(_AGENT)
    return str(path)


# Puts the status socket at fd 5 and the listen socket at fd 6, then runs the agent.
_MASTER_SPAWN = """
import os, sys
os.dup2(int(sys.argv[1]), 5)
os.dup2(int(sys.argv[2]), 6)
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


async def test_a_process_started_as_master_starts_one(tmp_path: Path, master: StandIn) -> None:
    (tmp_path / "main.cf").write_text("agent_concurrency_limit = 1\nmax_idle = 60s\n")
    env = {**os.environ, "MAIL_CONFIG": str(tmp_path), "GENERATION": "24"}
    master.listener.setblocking(False)
    fds = (master.child_status.fileno(), master.listener.fileno())
    agent = [_agent(tmp_path), "-n", "relay", "-t", "unix", "-u"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _MASTER_SPAWN, *map(str, fds), *agent],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        pass_fds=fds,
    )
    try:
        reader, writer = await asyncio.open_unix_connection(master.path)
        greeting = await asyncio.wait_for(reader.readline(), 30)
        assert greeting == f"relay smtp {proc.pid}\n".encode()
        writer.close()
        await until(lambda: len(master.notices(proc.pid)) == 2, "TAKEN and AVAIL")
        assert master.received == (
            status_message(proc.pid, 0o24, TAKEN) + status_message(proc.pid, 0o24, AVAIL)
        )
        master.status.close()  # master goes away: the child exits 0
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert (proc.returncode, out) == (0, b"MASTER_GONE\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_process_without_master_s_descriptors_says_so(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("")
    env = {**os.environ, "MAIL_CONFIG": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, _agent(tmp_path), "-t", "unix"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (
        1,
        b"no status socket on fd 5: not started by master(8)\n",
    )


def test_master_s_descriptors_are_noted_before_tables_can_take_them(tmp_path: Path) -> None:
    # Started by hand, a table opened early may be given fd 5 or 6: the check uses what
    # was open when the process started (postfix/main.py takes it first thing).
    code = (
        "import os, sys\n"
        "from mailcarrier.postfix.master import inherited_descriptors, parse_argv\n"
        "options = parse_argv(['smtp', '-t', 'unix'])\n"
        "before = inherited_descriptors(options)\n"
        "fd = os.open(os.devnull, os.O_RDONLY)\n"
        "os.dup2(fd, 5); os.dup2(fd, 6)\n"
        "print(sorted(before), sorted(inherited_descriptors(options)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "[] [5, 6]\n"
    options = parse_argv(["smtp", "-t", "unix"])
    with pytest.raises(MasterError, match="no status socket on fd 5: not started by master"):
        MasterChild.from_master(options, Settings.defaults(), inherited=frozenset())
