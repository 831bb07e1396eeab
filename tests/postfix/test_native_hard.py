"""The hard cases of mailcarrier-smtp and mailcarrier-lmtp inside a real Postfix (issue 16):
``postfix reload`` with deliveries in flight, kill -9 of the agents in mid-delivery, queue
files removed under the agent, 200 messages through a service of maxproc 2, LMTP to Dovecot,
and a differential run of the same messages through Postfix's own smtp(8) and through
mailcarrier-smtp.

One private Postfix instance for the module (tests/postfix/conftest.py): mailcarrier-smtp is
its ``smtp`` service and Postfix's smtp(8) its ``realsmtp`` (master runs ``smtp`` from
daemon_directory); the next hops are smtp-sinks (``NAME.test``) and an aiosmtpd server that
can hold its reply to the final dot (``slow.test``: a delivery caught in flight), all on
loopback. Retry times are one second here (queue_run_delay, minimal_backoff_time,
maximal_backoff_time, transport_retry_time), so that what a crash or a reload put back in
the queue is tried again at once. Where both clients run the same case, the outcome lines
are compared after `_normalise_line` and the sink's bytes after `_normalise_dump`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pytest

from tests.support.peers.aiosmtpd_server import AiosmtpdServer, HoldingHandler
from tests.support.peers.dovecot import DovecotLmtp
from tests.support.peers.dovecot import available as dovecot_available
from tests.support.peers.postfix_sink import SmtpSink
from tests.support.postfix import PostfixInstance, alive, private_dir

pytestmark = pytest.mark.postfix

SMTP_MAIN: Final = "mailcarrier.postfix.main:smtp_main"
LMTP_MAIN: Final = "mailcarrier.postfix.main:lmtp_main"
SENDER: Final = "a@test.local"
RETRY: Final = {
    "queue_run_delay": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "1s",
    "transport_retry_time": "1s",
}
TROUBLE: Final = ("malformed response", "bad command startup", "fatal:", "panic:", "Traceback")


@dataclass
class Bench:
    instance: PostfixInstance
    sinks: dict[str, SmtpSink]
    holder: HoldingHandler
    slow: AiosmtpdServer
    smtp_command: str

    def route(
        self,
        transport: str,
        *,
        notices: bool = False,
        main: Mapping[str, str | None] | None = None,
    ) -> None:
        """transport_maps: ``NAME.test`` to each sink and ``slow.test`` to the holding
        server, through `transport`; the sender's domain to the ``ok`` sink through it too
        when `notices` (else discarded). `main`: more main.cf changes in the same reload."""
        routes = [f"{name}.test={transport}:{sink.nexthop}" for name, sink in self.sinks.items()]
        routes.append(f"slow.test={transport}:{self.slow.nexthop}")
        senders = f"{transport}:{self.sinks['ok'].nexthop}" if notices else "discard:"
        routes.append(f"test.local={senders}")
        maps = f"inline:{{{', '.join(routes)}}}"
        self.instance.set_main({"transport_maps": maps, **(main or {})})


@pytest.fixture(scope="module")
def bench(postfix_instance: PostfixInstance) -> Iterator[Bench]:
    instance = postfix_instance
    dump = str(instance.root / "sink" / "%H%M%S.")
    sinks = {
        "ok": instance.sink("-d", dump),
        "soft": instance.sink("-r", "RCPT"),
        "hard": instance.sink("-f", "RCPT"),
        "nodsn": instance.sink("-N", "-d", dump),  # NOTIFY=SUCCESS cannot travel on
    }
    # aiosmtpd refuses DSN parameters: it must not announce DSN.
    holder = HoldingHandler(extra_keywords=("PIPELINING", "ENHANCEDSTATUSCODES"))
    slow = AiosmtpdServer(holder).start()
    try:
        command = instance.program("smtp", SMTP_MAIN)
        found = Bench(instance, sinks, holder, slow, command)
        with instance.changes():
            instance.set_service("smtp", command, maxproc="2")
            instance.set_service("realsmtp", "smtp")
            found.route("smtp", main=RETRY)
        yield found
    finally:
        holder.release()
        slow.stop()


# --- helpers ------------------------------------------------------------------------------
def _message(subject: str, to: str, body: bytes = b"hello\r\n") -> bytes:
    head = f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    head += "Date: Thu, 03 Dec 2026 03:00:00 +0000\r\n"
    head += f"Message-ID: <{subject.replace(' ', '.')}@test.local>\r\n\r\n"
    return head.encode() + body


def _subject(content: bytes) -> str:
    found = re.search(rb"^Subject: ([^\r\n]*)", content, re.MULTILINE)
    assert found, content[:300]
    return found.group(1).decode()


def _wait_removed(
    instance: PostfixInstance, ids: Iterable[str], mark: int, timeout: float = 60
) -> None:
    pending = set(ids)

    def all_removed() -> bool:
        log = instance.log[mark:]
        pending.difference_update(
            {qid for qid in pending if re.search(rf"qmgr\[\d+\]: {qid}: removed", log)}
        )
        return not pending

    instance.wait_until(all_removed, f"removal of {len(pending)} messages", timeout)


_NOTICE: Final = re.compile(
    r"postfix/bounce\[\d+\]: (\w+): sender (?:non-delivery|delivery status) notification: (\w+)"
)


def _settle(
    instance: PostfixInstance, mark: int, labels: Mapping[str, str], deferred: Sequence[str] = ()
) -> dict[str, str]:
    """Wait until every labelled message but the `deferred` ones is removed, and then the
    notices bounce(8) made of them; `labels` with the notices added (``NAME-notice``)."""
    _wait_removed(instance, [qid for qid in labels if qid not in deferred], mark)
    found = dict(labels)
    for notice in _NOTICE.finditer(instance.log[mark:]):
        if notice.group(1) in labels:
            found[notice.group(2)] = f"{labels[notice.group(1)]}-notice"
    _wait_removed(instance, [qid for qid in found if qid not in labels], mark)
    return found


def _no_trouble(instance: PostfixInstance, mark: int) -> None:
    log = instance.log[mark:]
    for trouble in TROUBLE:
        assert trouble not in log, log


def _dumps(instance: PostfixInstance) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (instance.root / "sink").glob("*")}


def _postsuper_delete(instance: PostfixInstance, queue_id: str) -> None:
    subprocess.run(
        ["/usr/sbin/postsuper", "-c", str(instance.config), "-d", queue_id],
        check=True,
        capture_output=True,
        timeout=30,
    )


_LOG_PREFIX: Final = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+?)\[\d+\]: ", re.MULTILINE)
_TIMING: Final = re.compile(r"(, conn_use=\d+)?, delay=[\d.]+, delays=[\d./]+")


def _normalise_line(line: str, labels: Mapping[str, str]) -> str:
    """One log line without what differs between two runs of a case, whichever client ran
    it: the time and process ID, the queue IDs (`labels` maps them to names of the case), and
    the timing fields (conn_use, delay, delays: the two clients cache connections
    differently, and time passes). Everything else (to, orig_to, relay, dsn, status and the
    reason) is kept."""
    line = _LOG_PREFIX.sub(r"\1: ", line)
    line = _TIMING.sub("", line)
    for queue_id, label in labels.items():
        line = line.replace(queue_id, label)
    return line


def _outcome(instance: PostfixInstance, mark: int, labels: Mapping[str, str]) -> list[str]:
    """The delivery agents' and qmgr's lines about the labelled messages, normalised, each
    once, sorted (the order of concurrent deliveries is not the client's doing)."""
    lines = set()
    for line in instance.log[mark:].splitlines():
        if not re.search(r" postfix/(smtp|lmtp|qmgr|bounce)\[", line):
            continue
        if any(queue_id in line for queue_id in labels) and "(queue active)" not in line:
            lines.add(_normalise_line(line, labels))
    return sorted(lines)


# --- 1. postfix reload ----------------------------------------------------------------------
def test_postfix_reload_with_deliveries_in_flight_delivers_each_message_once(
    bench: Bench,
) -> None:
    """master restarts the service at ``postfix reload`` (fd 5 ends): the old agents finish
    the deliveries they hold and exit; the new qmgr finds those messages locked ("skipped,
    still being delivered": it puts them back for 60 s, as with smtp(8)) and sends the rest
    to the new generation of agents. ``postqueue -f`` then has qmgr find the held messages
    done and remove them. Each message reaches the next hop once."""
    instance, holder = bench.instance, bench.holder
    mark = instance.log_mark()
    start, arrived = len(holder.messages), holder.arrived
    batch = [([f"r{i}@slow.test"], _message(f"reload {i}", f"r{i}@slow.test")) for i in range(24)]
    holder.hold()
    try:
        ids = instance.submit_batch(SENDER, batch)
        holder.wait_arrived(arrived + 3)  # deliveries in flight, the rest in the queue
        old = instance.program_pids("smtp")
        instance.reload()
    finally:
        holder.release()
    instance.wait_until(
        lambda: not set(old) & set(instance.program_pids("smtp")), "old agents gone"
    )
    instance.flush()
    _wait_removed(instance, ids, mark)
    received = Counter(_subject(m.content) for m in holder.messages[start:])
    assert received == Counter(f"reload {i}" for i in range(len(batch)))
    log = instance.log[mark:]
    for queue_id, (rcpts, _) in zip(ids, batch, strict=True):
        sent = rf"{queue_id}: to=<{re.escape(rcpts[0])}>, .*status=sent"
        assert len(re.findall(sent, log)) == 1
    _no_trouble(instance, mark)


# --- 2. kill -9 ---------------------------------------------------------------------------------
def test_kill_9_of_the_agents_in_mid_delivery_loses_no_recipient(bench: Bench) -> None:
    """Every agent process is killed while the next hop holds its reply to the final dot of
    three messages: qmgr sees the connections cut ("malformed response", as after a crash of
    smtp(8)), no recipient was marked, so each message is tried again and delivered; nothing
    bounces. The next hop has each message twice: the first transfer was never confirmed to
    the client, which cannot know that it arrived (the duplicate of RFC 1047)."""
    instance, holder = bench.instance, bench.holder
    mark = instance.log_mark()
    start, arrived = len(holder.messages), holder.arrived
    batch = [
        ([f"k{i}a@slow.test", f"k{i}b@slow.test"], _message(f"kill {i}", f"k{i}a@slow.test"))
        for i in range(3)
    ]
    holder.hold()
    try:
        ids = instance.submit_batch(SENDER, batch)
        holder.wait_arrived(arrived + len(batch))
        killed = instance.program_pids("smtp")
        assert killed
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        instance.wait_until(lambda: not any(alive(pid) for pid in killed), "the agents' death")
    finally:
        holder.release()
    _wait_removed(instance, ids, mark)
    log = instance.log[mark:]
    assert "postfix/qmgr" in log and "warning: private/smtp socket: malformed response" in log
    for queue_id, (rcpts, _) in zip(ids, batch, strict=True):
        for rcpt in rcpts:
            pattern = rf"postfix/smtp\[(\d+)\]: {queue_id}: to=<{re.escape(rcpt)}>, (.*)"
            (line,) = re.findall(pattern, log)
            assert int(line[0]) not in killed
            assert line[1].endswith("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)")
    received = Counter(_subject(m.content) for m in holder.messages[start:])
    assert received == Counter({f"kill {i}": 2 for i in range(len(batch))})
    assert "status=bounced" not in log and "non-delivery notification" not in log
    for trouble in ("fatal:", "panic:", "Traceback"):
        assert trouble not in log


# --- 3. a queue file removed under the agent ------------------------------------------------
def _removed_files(bench: Bench, transport: str) -> list[str]:
    """One message's file removed (postsuper -d) while its delivery waits for the reply to
    the final dot, and the next message's before the agent gets its request (the
    destination's concurrency is 1, so qmgr holds it back meanwhile); then one more
    message. The normalised outcome lines; the agent that met the missing file must not
    have crashed."""
    instance, holder = bench.instance, bench.holder
    bench.route(transport, main={f"{transport}_destination_concurrency_limit": "1"})
    mark = instance.log_mark()
    arrived = holder.arrived
    holder.hold()
    try:
        flying = instance.submit(SENDER, ["gone@slow.test"], _message("gone", "gone@slow.test"))
        waiting = instance.submit(SENDER, ["never@slow.test"], _message("never", "never@slow.test"))
        holder.wait_arrived(arrived + 1)
        # qmgr has the second one in memory, waiting for the destination to be free.
        instance.wait_log(rf"qmgr\[\d+\]: {waiting}: from=<{SENDER}>.*\(queue active\)", mark)
        _postsuper_delete(instance, flying)
        _postsuper_delete(instance, waiting)
    finally:
        holder.release()
    missing = instance.wait_log(rf"postfix/smtp\[(\d+)\]: warning: open active {waiting}: ", mark)
    after = instance.submit(SENDER, ["after@slow.test"], _message("after", "after@slow.test"))
    _wait_removed(instance, [after], mark)
    instance.wait_log(rf"qmgr\[\d+\]: warning: \S+: remove {flying} from active: ", mark)
    # It went on serving: master saw it neither crash nor fail (it may have retired since,
    # at max_use, which master does not log).
    pid = missing.group(1)
    assert f" pid {pid} exit status" not in instance.log[mark:]
    assert f" pid {pid} killed by signal" not in instance.log[mark:]
    bench.route("smtp", main={f"{transport}_destination_concurrency_limit": None})
    return _outcome(instance, mark, {flying: "FLYING", waiting: "WAITING", after: "AFTER"})


def test_queue_files_removed_under_the_agent_as_under_smtp8(bench: Bench) -> None:
    """Both clients give the same outcome: the message whose file went away during its
    delivery is delivered from the open file (qmgr then warns that it cannot remove it);
    the one whose file went away before the request is "open active ID: No such file or
    directory" (nothing is sent: the message is gone from the queue); the next message
    goes through."""
    expected = _removed_files(bench, "realsmtp")
    mark = bench.instance.log_mark()
    outcome = _removed_files(bench, "smtp")
    relay = f"relay=127.0.0.1[127.0.0.1]:{bench.slow.port}"
    assert outcome == expected
    assert outcome == [
        "postfix/qmgr: AFTER: removed",
        "postfix/qmgr: warning: qmgr_active_done_3_generic: remove FLYING from active: "
        "No such file or directory",
        f"postfix/smtp: AFTER: to=<after@slow.test>, {relay}, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued)",
        f"postfix/smtp: FLYING: to=<gone@slow.test>, {relay}, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued)",
        "postfix/smtp: warning: open active WAITING: No such file or directory",
    ]
    _no_trouble(bench.instance, mark)


# --- 4. many messages, maxproc 2 ------------------------------------------------------------
def test_200_messages_through_maxproc_2_reuse_connections(bench: Bench) -> None:
    """Each process serves at most 4 qmgr connections here, so that qmgr's concurrency
    needs both processes master may start, and more: the rest wait for a free one."""
    instance = bench.instance
    old = instance.program_pids("smtp")
    instance.set_service("smtp", bench.smtp_command, "-o", "agent_concurrency_limit=4", maxproc="2")
    instance.wait_until(
        lambda: not set(old) & set(instance.program_pids("smtp")), "old agents gone"
    )
    mark = instance.log_mark()
    before = set(_dumps(instance))
    peak = _Peak(instance)
    try:
        batch = [([f"m{i}@ok.test"], _message(f"many {i}", f"m{i}@ok.test")) for i in range(200)]
        ids = instance.submit_batch(SENDER, batch)
        _wait_removed(instance, ids, mark, timeout=120)
    finally:
        peak.stop()
        instance.set_service("smtp", bench.smtp_command, maxproc="2")
    assert 1 <= peak.value <= 2
    dumps = [d for name, d in _dumps(instance).items() if name not in before]
    assert Counter(_subject(d) for d in dumps) == Counter(f"many {i}" for i in range(200))
    log = instance.log[mark:]
    uses = [
        int(n)
        for n in re.findall(r"postfix/smtp\[\d+\]: \w+: to=<m\d+@ok\.test>, .*?conn_use=(\d+)", log)
    ]
    assert uses and max(uses) > 1
    assert (
        len(re.findall(r"postfix/smtp\[\d+\]: \w+: to=<m\d+@ok\.test>, .*status=sent", log)) == 200
    )
    _no_trouble(instance, mark)


class _Peak:
    """The most agent processes seen at once, sampled until `stop()`."""

    def __init__(self, instance: PostfixInstance) -> None:
        self.instance = instance
        self.value = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.value = max(self.value, len(self.instance.program_pids("smtp")))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- 5. LMTP to Dovecot ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotLmtp]:
    if not dovecot_available():
        pytest.skip("Dovecot LMTP not installed (Debian dovecot-lmtpd) or not root")
    root = private_dir("mailcarrier-dovecot-")
    server = DovecotLmtp(root, users=("known",)).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


_DOVECOT_SESSION: Final = re.compile(r"(<\S+@\S+>) [A-Za-z0-9+/]{22} Saved")


def _lmtp_route(instance: PostfixInstance, dovecot: DovecotLmtp, transport: str) -> None:
    routes = [
        f"unix.test={transport}:{dovecot.unix_nexthop}",
        f"inet.test={transport}:{dovecot.inet_nexthop}",
        "test.local=discard:",
    ]
    instance.set_main({"transport_maps": f"inline:{{{', '.join(routes)}}}"})


def _lmtp_run(instance: PostfixInstance, transport: str) -> list[str]:
    mark = instance.log_mark()
    unix = instance.submit(SENDER, ["known@unix.test"], _message(f"{transport} unix", "x"))
    inet = instance.submit(
        SENDER, ["known@inet.test", "unknown@inet.test"], _message(f"{transport} inet", "x")
    )
    labels = _settle(instance, mark, {unix: "UNIX", inet: "INET"})
    lines = _outcome(instance, mark, labels)
    return [_DOVECOT_SESSION.sub(r"\1 SESSION Saved", line) for line in lines]


@pytest.mark.dovecot
def test_lmtp_to_dovecot_as_postfixs_lmtp(bench: Bench, dovecot: DovecotLmtp) -> None:
    """mailcarrier-lmtp as the ``lmtp`` service, Postfix's lmtp(8) as ``reallmtp``, to a
    private Dovecot over its unix socket and over TCP: the same outcome lines (Dovecot's
    session ID aside), Postfix's lmtp wording (a unix socket is ``relay=myhostname[path]``),
    and the messages in the mailbox."""
    instance = bench.instance
    with instance.changes():
        instance.set_service("lmtp", instance.program("lmtp", LMTP_MAIN), maxproc="2")
        instance.set_service("reallmtp", "lmtp")
        _lmtp_route(instance, dovecot, "reallmtp")
    expected = _lmtp_run(instance, "reallmtp")
    _lmtp_route(instance, dovecot, "lmtp")
    mark = instance.log_mark()
    outcome = _lmtp_run(instance, "lmtp")
    bench.route("smtp")
    assert outcome == expected
    inet = f"relay=127.0.0.1[127.0.0.1]:{dovecot.port}"
    unix = f"relay=mta.test.local[{dovecot.socket_path}]"
    unknown = "550 5.1.1 <unknown@inet.test> User doesn't exist: unknown@inet.test"
    assert outcome == [
        "postfix/bounce: INET: sender non-delivery notification: INET-notice",
        "postfix/lmtp: INET: to=<known@inet.test>, "
        f"{inet}, dsn=2.0.0, status=sent (250 2.0.0 <known@inet.test> SESSION Saved)",
        "postfix/lmtp: INET: to=<unknown@inet.test>, "
        f"{inet}, dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: {unknown} "
        "(in reply to RCPT TO command))",
        "postfix/lmtp: UNIX: to=<known@unix.test>, "
        f"{unix}, dsn=2.0.0, status=sent (250 2.0.0 <known@unix.test> SESSION Saved)",
        "postfix/qmgr: INET-notice: removed",
        "postfix/qmgr: INET: removed",
        "postfix/qmgr: UNIX: removed",
    ]
    mailbox = {_subject(m): m for m in dovecot.delivered("known")}
    assert mailbox["lmtp unix"].startswith(
        b"Return-Path: <a@test.local>\nDelivered-To: known@unix.test\n"
    )
    assert mailbox["lmtp inet"].startswith(
        b"Return-Path: <a@test.local>\nDelivered-To: known@inet.test\n"
    )
    assert mailbox["lmtp unix"].endswith(b"\n\nhello\n")
    _no_trouble(instance, mark)


# --- 6. differential: Postfix's smtp(8) and mailcarrier-smtp ---------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    recipients: tuple[str, ...]
    body: bytes = b"hello\r\n"
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()


CASES: Final = (
    Case("plain", ("b@ok.test",)),
    Case(
        "dots",
        ("b@ok.test",),
        b".leading dot\r\n..two dots\r\n.\r\ncaf\xc3\xa9 8-bit\r\n" + b"x" * 1500 + b"\r\nend\r\n",
        mail_options=("BODY=8BITMIME",),
    ),
    Case(
        "dsn",
        ("b@ok.test",),
        mail_options=("RET=HDRS", "ENVID=env+2B1"),
        rcpt_options=("NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;orig@x.test"),
    ),
    Case("success", ("s@nodsn.test",), rcpt_options=("NOTIFY=SUCCESS",)),
    Case("mixed", ("c@ok.test", "d@soft.test", "e@hard.test")),
)
_SINK_RECEIVED: Final = re.compile(
    rb"Received: from mta\.test\.local \(\[127\.0\.0\.1\]\)\n"
    rb"\tby smtp-sink \(smtp-sink\) with ESMTP id [0-9a-f]+;\n\t[^\n]*\n"
)
_DATE: Final = re.compile(rb"\w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \(\w+\))?")
_MESSAGE_ID_TIME: Final = re.compile(rb"<\d{14}\.")
_BOUNDARY_TIME: Final = re.compile(rb"\.\d+/mta\.test\.local")


def _normalise_dump(dump: bytes, labels: Mapping[str, str]) -> bytes:
    """What the sink received, without what is not the client's doing: smtp-sink's own
    Received header (its ID and clock), the queue IDs (in the instance's smtpd Received
    header and in the notices: `labels` names them), and the clock (dates, the seconds in a
    notice's Message-Id and MIME boundary). The dump shows no client port."""
    dump = _SINK_RECEIVED.sub(b"Received: (smtp-sink's)\n", dump)
    for queue_id, label in labels.items():
        dump = dump.replace(queue_id.encode(), label.encode())
    dump = _DATE.sub(b"DATE", dump)
    dump = _MESSAGE_ID_TIME.sub(b"<TIME.", dump)
    return _BOUNDARY_TIME.sub(b".TIME/mta.test.local", dump)


@dataclass
class Run:
    log: list[str]
    dumps: dict[str, bytes]  # subject -> normalised dump
    deferred: list[str]  # postqueue -j delay reasons


def _differential_run(bench: Bench, transport: str) -> Run:
    instance = bench.instance
    bench.route(transport, notices=True)
    mark = instance.log_mark()
    before = set(_dumps(instance))
    labels: dict[str, str] = {}
    for case in CASES:
        content = _message(case.name, case.recipients[0], case.body)
        queue_id = instance.submit(
            SENDER,
            case.recipients,
            content,
            mail_options=case.mail_options,
            rcpt_options=case.rcpt_options,
        )
        labels[queue_id] = case.name
    mixed = next(qid for qid, name in labels.items() if name == "mixed")
    entry = instance.wait_deferred(mixed)
    labels = _settle(instance, mark, labels, deferred=[mixed])
    # mixed: e@hard.test bounced; success: NOTIFY=SUCCESS to a next hop without DSN.
    assert sorted(n for n in labels.values() if n.endswith("-notice")) == [
        "mixed-notice",
        "success-notice",
    ]
    _postsuper_delete(instance, mixed)
    dumps = [d for name, d in _dumps(instance).items() if name not in before]
    return Run(
        _outcome(instance, mark, labels),
        {_subject(d): _normalise_dump(d, labels) for d in dumps},
        [r["delay_reason"] for r in entry["recipients"]],
    )


def test_differential_same_bytes_and_outcomes_as_smtp8(bench: Bench) -> None:
    reference = _differential_run(bench, "realsmtp")
    mark = bench.instance.log_mark()
    ours = _differential_run(bench, "smtp")
    bench.route("smtp")
    assert sorted(ours.dumps) == sorted(reference.dumps)
    for subject, dump in reference.dumps.items():
        assert ours.dumps[subject] == dump, subject
    assert ours.log == reference.log
    assert ours.deferred == reference.deferred
    _no_trouble(bench.instance, mark)
