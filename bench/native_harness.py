"""CPU per message of the Postfix-native agent without Postfix: the native harness.

``python -m bench.native_harness [--messages N] [--concurrency C] [--rounds R]
[--server sink|memory]`` runs, in this process, what ``mailcarrier-smtp`` runs under master(8):
a `MasterChild` on a unix listen socket and a status socket, the qmgr server of
postfix/main.py's `make_server` (its `DeliveryAgent`, connection cache and log to a postlogd
socket), on uvloop when installed. Another process plays qmgr(8) and postlogd(8): C
connections at once, each greets, sends a delivery request for a queue file of its own (a 4 KB
message as smtp-source writes it, in Postfix's record format, under ``active/``), reads the
final reply and closes, as qmgr does; it also reads the log datagrams and master's notices.
The messages go to Postfix's smtp-sink on 127.0.0.1 (``--server sink``, when installed) or to
an in-memory SMTP server (``--server memory``: no kernel on the SMTP side, but the server's
Python runs in this process).

It prints the CPU time (user + system) of this process per message, counted from the end of
a warm-up to the last reply, the minimum over R rounds: steadier than bench_native's rates on a
shared machine, and the tool for A/B comparisons of the native path (bench/PROFILE.md, issue
16). Every request must come back with status 0 and one ``status=sent`` line. ``--profile FILE``
writes a cProfile of the measured part; ``--bytecodes`` counts the Python bytecodes run per
message instead (sys.settrace: slow, but exact: the steadiest measure on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any, Final

from bench.common import RECIPIENT, SENDER, SMTP_SINK, Sink, install_loop

SIZE: Final = 4096
HEADERS: Final = (
    "Received: from localhost (localhost [127.0.0.1])\n\tby bench.example (Postfix) "
    "with ESMTP id {id}\n\tfor <{rcpt}>; Thu,  3 Dec 2026 04:32:09 +0000 (UTC)\n"
    "From: <{sender}>\nTo: <{rcpt}>\nDate: Thu,  3 Dec 2026 04:32:09 +0000 (UTC)\n"
    "Message-Id: <1234.0005.{id}@localhost>\nSubject: benchmark\n"
)


def _length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _record(rtype: str, data: bytes) -> bytes:
    return rtype.encode() + _length(len(data)) + data


def body(size: int) -> bytes:
    """smtp-source's body of `size` bytes: 80-byte lines of X, each led by a digit."""
    data = bytearray(b"X" * size)
    for i in range(80, size, 80):
        data[i - 80] = ord("0123456789"[(i // 80) % 10])
        data[i - 2 : i] = b"\r\n"
    return bytes(data)


def queue_file(queue_id: str) -> tuple[bytes, int, int, int]:
    """A queue file as cleanup(8) writes it: (bytes, data offset, content size, R offset)."""
    head = [_record("T", b"1796224210 486827"), _record("A", b"rewrite_context=local")]
    head.append(_record("S", SENDER.encode()))
    out = b"".join([_record("C", b" " * 95), *head, _record("O", RECIPIENT.encode())])
    rcpt_at = len(out)
    out += _record("R", RECIPIENT.encode()) + _record("M", b"")
    data_at = len(out)
    text = HEADERS.format(id=queue_id, rcpt=RECIPIENT, sender=SENDER).encode()
    # smtp-source sends the body with smtp_fputs(), which ends it with CRLF.
    text += b"\n" + body(SIZE).replace(b"\r\n", b"\n") + b"\n"
    lines = text.split(b"\n")
    content = b"".join(_record("N", line) for line in lines[:-1])
    if lines[-1]:
        content += _record("L", lines[-1])
    out += content
    size = len(content)
    out += _record("X", b"") + _record("E", b"")
    fields = (size, data_at, 1, 0, size, 0)
    out = out[:2] + b" ".join(b"%15d" % f for f in fields) + out[97:]
    return out, data_at, size, rcpt_at


class BytecodeCounter:
    """Counts the Python bytecodes run, by function, while enabled (sys.settrace with
    opcode events: slow, but exact, and the same on a busy machine as on an idle one). The
    `enable`/`disable` of a cProfile.Profile, so that it stands in for one."""

    def __init__(self) -> None:
        self.counts: collections.Counter[types.CodeType] = collections.Counter()

    def _trace(self, frame: types.FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.counts[frame.f_code] += 1
        return self._trace

    def enable(self) -> None:
        sys.settrace(self._trace)

    def disable(self) -> None:
        sys.settrace(None)

    def report(self, messages: int, top: int = 15) -> str:
        total = sum(self.counts.values())
        by_file: collections.Counter[str] = collections.Counter()
        for code, n in self.counts.items():
            by_file[code.co_filename.rpartition("/src/")[2] or code.co_filename] += n
        lines = [f"bytecodes per message: {total / messages:,.0f}"]
        lines += [f"  {n / messages:8,.0f}  {name}" for name, n in by_file.most_common(top)]
        lines += [
            f"  {n / messages:8,.0f}  {code.co_filename.rpartition('/')[2]}:"
            f"{code.co_firstlineno} {code.co_name}"
            for code, n in self.counts.most_common(top)
        ]
        return "\n".join(lines)


def write_queue(root: Path, ids: list[str]) -> tuple[int, int, int]:
    (root / "active").mkdir(parents=True, exist_ok=True)
    for queue_id in ids:
        data, data_at, size, rcpt_at = queue_file(queue_id)
        path = root / "active" / queue_id
        path.write_bytes(data)
        path.chmod(0o700)
    return data_at, size, rcpt_at


# --- the qmgr and postlogd side (another process) ------------------------------------------
def qmgr(argv: list[str]) -> None:
    """``--qmgr LISTEN STATUS_FD LOG_FD NEXTHOP CONCURRENCY DATA_AT SIZE RCPT_AT ID...``"""
    from mailcarrier.postfix.attr import AttrParser
    from mailcarrier.postfix.msgstats import MsgStats
    from mailcarrier.postfix.reply import HELLO
    from mailcarrier.postfix.request import NativeRecipient, NativeRequest

    listen, status_fd, log_fd, nexthop, concurrency = argv[:5]
    data_at, size, rcpt_at = (int(v) for v in argv[5:8])
    ids = argv[8:]
    status = socket.socket(fileno=int(status_fd))
    log = socket.socket(fileno=int(log_fd))
    now = time.time()
    rcpt = NativeRecipient(RECIPIENT, RECIPIENT, rcpt_at, "", 0)

    def request(queue_id: str) -> bytes:
        return NativeRequest(
            3, "active", queue_id, data_at, size, nexthop, "7bit", 0, SENDER, "", 0,
            MsgStats(now, now), "localhost", "127.0.0.1", "39340", "ESMTP", "localhost",
            "", "", "", queue_id, "local", (rcpt,),
        ).encode()  # fmt: skip

    lock = threading.Lock()
    todo = iter(ids)
    failed: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                queue_id = next(todo, None)
            if queue_id is None:
                return
            data = request(queue_id)
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(listen)
                got = b""
                while len(got) < len(HELLO):
                    got += conn.recv(4096)
                conn.sendall(data)
                parser = AttrParser()
                while (reply := parser.next_list()) is None:
                    parser.feed(conn.recv(4096))
                if reply[-1] != (b"status", b"0"):
                    failed.append(f"{queue_id}: {reply}")

    sent = [0]

    def drain(sock: socket.socket) -> None:
        while data := sock.recv(65536):
            sent[0] += b"status=sent " in data

    for sock in (status, log):
        threading.Thread(target=drain, args=(sock,), daemon=True).start()
    workers = [threading.Thread(target=worker) for _ in range(int(concurrency))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    time.sleep(0.5)  # the last log lines
    if sent[0] != len(ids):
        failed.append(f"{sent[0]} status=sent lines for {len(ids)} requests")
    if failed:
        print("\n".join(failed[:3]), file=sys.stderr)
    status.close()  # master went away: the child finishes and returns
    sys.exit(1 if failed else 0)


# --- the agent side (this process) ---------------------------------------------------------
async def agent_round(
    root: Path,
    nexthop: str,
    connector: Any,
    messages: int,
    warmup: int,
    concurrency: int,
    profile: cProfile.Profile | BytecodeCounter | None = None,
) -> tuple[float, float]:
    from mailcarrier.config.settings import Settings
    from mailcarrier.delivery.agent import DeliveryAgent
    from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
    from mailcarrier.log import HandlerLog
    from mailcarrier.loghandlers import PostlogHandler
    from mailcarrier.postfix import main as native_main
    from mailcarrier.postfix.master import ChildLimits, MasterChild
    from mailcarrier.postfix.options import MasterOptions

    ids = [f"B{n:010X}" for n in range(warmup + messages)]
    data_at, size, rcpt_at = write_queue(root, ids)
    listen_path, log_path = str(root / "smtp"), str(root / "postlog")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(listen_path)
    listener.listen(128)
    postlog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    postlog.bind(log_path)
    ours, theirs = socket.socketpair()
    log = HandlerLog([PostlogHandler(log_path, "bench.example")])
    settings = Settings.defaults()
    child = MasterChild(
        [listener],
        status_fd=ours.fileno(),
        limits=ChildLimits.from_settings(settings),
        log=log,
    )
    options = MasterOptions("smtp", "smtp", "smtp", "unix")
    server = native_main.make_server(options, settings, log, child.release)
    if connector is not None:
        limits = CacheLimits.from_settings(settings.for_transport("smtp"))
        cache = ConnectionCache(limits)
        server.agent = DeliveryAgent(settings, log=log, cache=cache, connector=connector)
    done = 0
    marks: dict[int, tuple[float, float]] = {}

    async def handler(*conn: Any) -> None:  # a socket; (reader, writer) before issue 16
        nonlocal done
        await server.handle(*conn)
        done += 1
        if done in (warmup, warmup + messages):
            times = os.times()
            marks[done] = (times.user, times.system)
            if profile is not None:
                profile.enable() if done == warmup else profile.disable()

    args = [sys.executable, "-m", "bench.native_harness", "--qmgr", listen_path]
    args += [str(theirs.fileno()), str(postlog.fileno()), nexthop, str(concurrency)]
    args += [str(data_at), str(size), str(rcpt_at), *ids]
    fds = (theirs.fileno(), postlog.fileno())
    peer = subprocess.Popen(args, pass_fds=fds, cwd=Path(__file__).resolve().parents[1])
    theirs.close()
    postlog.close()
    try:
        await child.serve(handler)
    finally:
        returncode = await asyncio.get_running_loop().run_in_executor(None, peer.wait)
        ours.close()
        listener.close()
        log.close()
        os.unlink(listen_path)
        os.unlink(log_path)
    if returncode or len(marks) != 2:
        raise RuntimeError(f"qmgr side failed ({returncode}); {done} replies")
    (user0, sys0), (user1, sys1) = marks[warmup], marks[warmup + messages]
    return (user1 - user0) / messages, (sys1 - sys0) / messages


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--qmgr"]:
        qmgr(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.native_harness", description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("sink", "memory"), default="sink")
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the measured part to FILE")
    parser.add_argument(
        "--bytecodes", action="store_true", help="count the bytecodes run per message instead"
    )
    args = parser.parse_args(argv)
    loop = install_loop(args.loop)
    server = args.server if args.server == "memory" or os.path.exists(SMTP_SINK) else "memory"
    figures: list[tuple[float, float]] = []
    profile = cProfile.Profile() if args.profile else None
    counter = BytecodeCounter() if args.bytecodes else None
    with Sink() if server == "sink" else _Memory() as sink:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="mc-native-harness-") as tmp:
                os.chdir(tmp)  # the queue directory, as master(8) starts its children
                try:
                    cpu = asyncio.run(
                        agent_round(
                            Path(tmp),
                            sink.nexthop,
                            getattr(sink, "connector", None),
                            args.messages,
                            args.warmup,
                            args.concurrency,
                            counter or profile,
                        )
                    )
                finally:
                    os.chdir("/")
                figures.append(cpu)
    if profile is not None:
        profile.dump_stats(args.profile)
    if counter is not None:
        print(counter.report(args.messages * args.rounds))
    best = min(figures, key=sum)
    print(
        f"{loop}, {server}: CPU per message, min of {args.rounds} rounds of {args.messages} "
        f"over {args.concurrency} qmgr connections: {sum(best) * 1e6:.1f} us (user "
        f"{best[0] * 1e6:.0f} + sys {best[1] * 1e6:.0f}; rounds: "
        f"{', '.join(f'{sum(f) * 1e6:.0f}' for f in figures)})"
    )


class _Memory:
    """An in-memory SMTP server in place of smtp-sink."""

    nexthop = "[198.51.100.1]:25"

    def __init__(self) -> None:
        from mailcarrier.transport.memory import MemoryConnector, SmtpResponder

        self.connector = MemoryConnector(lambda peer: SmtpResponder())

    def __enter__(self) -> _Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


if __name__ == "__main__":
    main()
