"""The queue manager with a scripted agent and a fake clock: grouping, retries, expiry."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.errors import TemporaryError
from mailcarrier.log import MemoryLog
from mailcarrier.queue.finalize import record_state
from mailcarrier.queue.notices import write_notice
from mailcarrier.queue.qfile import MessageClass
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import QueueMessage, RecordWriter, Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.status import DeliveryStatus
from tests.queue.helpers import BOUNCE, DEFER, RCPT_DEFER, SENT, FakeAgent, RecordingProgress
from tests.support.clock import FakeClock
from tests.support.settings import queue_settings


def _setup(
    tmp_path: Path, agent: FakeAgent, **over: str
) -> tuple[QueueManager, Spool, FakeClock, MemoryLog, Settings]:
    clock = FakeClock()
    log = MemoryLog()
    cfg = queue_settings(tmp_path, **over)
    sp = Spool(tmp_path, clock=clock, log=log).ensure()
    return QueueManager(cfg, sp, agent, log=log, clock=clock), sp, clock, log, cfg


def _submit(
    sp: Spool, cfg: Settings, clock: FakeClock, *rcpts: str, sender: str = "s@example.org"
) -> str:
    opts = SubmitOptions(sender=sender, recipients=rcpts)
    return submit_stream(
        io.BytesIO(b"Subject: t\n\nbody\n"), opts, settings=cfg, spool=sp, clock=clock
    )


async def test_delivered_message_is_removed_and_logged(tmp_path: Path) -> None:
    agent = FakeAgent()
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "a@example.net", "b@example.net")
    await qm.run_once()
    assert agent.delivered() == ["a@example.net", "b@example.net"]
    assert sp.find(qid) is None
    assert (
        f"{qid}: from=<s@example.org>, size={agent.requests[0].size}, nrcpt=2 (queue active)"
        in log.lines
    )
    assert f"{qid}: removed" in log.lines


async def test_grouping_per_destination_with_recipient_limit(tmp_path: Path) -> None:
    agent = FakeAgent()
    table = {"lmtp.example": "lmtp:unix:/tmp/x"}
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent, smtp_destination_recipient_limit="2")
    from mailcarrier.queue.route import Router

    qm.configure(cfg, Router(cfg, lookup=table.get))
    _submit(
        sp,
        cfg,
        clock,
        "a@x.example",
        "b@x.example",
        "c@x.example",
        "d@lmtp.example",
        "e@lmtp.example",
    )
    await qm.run_once()
    groups = sorted(
        (r.transport, r.nexthop, tuple(x.address for x in r.recipients)) for r in agent.requests
    )
    assert groups == [
        ("lmtp", "unix:/tmp/x", ("d@lmtp.example", "e@lmtp.example")),
        ("smtp", "[127.0.0.1]:2525", ("a@x.example", "b@x.example")),
        ("smtp", "[127.0.0.1]:2525", ("c@x.example",)),
    ]


async def test_retry_timing_with_backoff(tmp_path: Path) -> None:
    outcome = {"v": DEFER}
    agent = FakeAgent(lambda _a: outcome["v"])
    qm, sp, clock, _log, cfg = _setup(
        tmp_path, agent, minimal_backoff_time="300s", maximal_backoff_time="4000s"
    )
    qid = _submit(sp, cfg, clock, "a@example.net")
    await qm.run_once()
    assert sp.find(qid) == "deferred" and len(agent.requests) == 1
    clock.advance(299)
    await qm.run_once()
    assert len(agent.requests) == 1  # not due yet
    clock.advance(1)
    await qm.run_once()
    assert len(agent.requests) == 2
    # Age is now 300 s: the next interval is max(300, age) = 300; later it grows with age.
    clock.advance(3000)
    await qm.run_once()
    assert len(agent.requests) == 3
    clock.advance(3299)  # age 3300 -> next interval 3300
    await qm.run_once()
    assert len(agent.requests) == 3
    outcome["v"] = SENT
    clock.advance(1)
    await qm.run_once()
    assert len(agent.requests) == 4 and sp.find(qid) is None


async def test_only_pending_recipients_are_retried(tmp_path: Path) -> None:
    agent = FakeAgent(lambda a: SENT if a.startswith("ok") else DEFER)
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    _submit(sp, cfg, clock, "ok@example.net", "later@example.net")
    await qm.run_once()
    clock.advance(10000)
    await qm.run_once()
    assert agent.delivered() == ["ok@example.net", "later@example.net", "later@example.net"]


async def test_lifetime_expiry_bounces_to_sender(tmp_path: Path) -> None:
    agent = FakeAgent(lambda a: SENT if a == "s@example.org" else DEFER)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent, maximal_queue_lifetime="1h")
    qid = _submit(sp, cfg, clock, "a@example.net")
    await qm.run_once()
    assert sp.find(qid) == "deferred"
    clock.advance(3600)
    await qm.run_once()
    assert sp.find(qid) is None
    assert f"{qid}: from=<s@example.org>, status=expired, returned to sender" in log.lines
    notice = [line for line in log.lines if "sender non-delivery notification" in line]
    assert notice and agent.delivered()[-1] == "s@example.org"
    assert agent.requests[-1].sender == ""


async def test_bounce_lifetime_applies_to_notices(tmp_path: Path) -> None:
    agent = FakeAgent(lambda _a: DEFER)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent, bounce_queue_lifetime="0s")
    qid = _submit(sp, cfg, clock, "a@example.net", sender="")
    await qm.run_once()
    # A message from <> that cannot be delivered at once expires at once, and no notice
    # goes to the null sender.
    assert sp.find(qid) is None
    assert not any("notification" in line for line in log.lines)


async def test_delay_warning_sent_once(tmp_path: Path) -> None:
    agent = FakeAgent(lambda a: SENT if a == "s@example.org" else DEFER)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent, delay_warning_time="1h")
    qid = _submit(sp, cfg, clock, "a@example.net")
    await qm.run_once()
    clock.advance(3600)
    await qm.run_once()
    clock.advance(3600)
    await qm.run_once()
    warnings = [line for line in log.lines if "sender delay notification" in line]
    assert len(warnings) == 1 and sp.find(qid) == "deferred"


async def test_dead_destination_suspends_the_rest(tmp_path: Path) -> None:
    agent = FakeAgent(lambda _a: DEFER)
    qm, sp, clock, log, cfg = _setup(
        tmp_path, agent, initial_destination_concurrency="1", smtp_destination_recipient_limit="1"
    )
    _submit(sp, cfg, clock, "a@example.net", "b@example.net", "c@example.net")
    await qm.run_once()
    assert len(agent.requests) == 1
    assert sum("delivery temporarily suspended" in line for line in log.lines) == 2


async def test_recipient_4xx_never_suspends_the_destination(tmp_path: Path) -> None:
    """RCPT 450 for every recipient is each recipient's deferral, not the site's: Postfix's
    qmgr takes no negative feedback for it, and every recipient gets its own attempt."""
    agent = FakeAgent(lambda _a: RCPT_DEFER)
    qm, sp, clock, log, cfg = _setup(
        tmp_path, agent, initial_destination_concurrency="1", smtp_destination_recipient_limit="1"
    )
    rcpts = [f"r{i}@example.net" for i in range(6)]
    _submit(sp, cfg, clock, *rcpts)
    await qm.run_once()
    assert sorted(agent.delivered()) == sorted(rcpts)
    assert not any("suspended" in line for line in log.lines)


async def test_site_failures_after_recipient_4xx_still_suspend(tmp_path: Path) -> None:
    """The window counts site failures alone: recipient deferrals in between do not hide
    them, and a dead destination is still suspended."""
    verdicts = iter([RCPT_DEFER, DEFER, DEFER, DEFER, DEFER, DEFER])
    agent = FakeAgent(lambda _a: next(verdicts))
    qm, sp, clock, log, cfg = _setup(
        tmp_path, agent, initial_destination_concurrency="1", smtp_destination_recipient_limit="1"
    )
    _submit(sp, cfg, clock, "a@example.net", "b@example.net", "c@example.net", "d@example.net")
    await qm.run_once()
    assert len(agent.requests) == 2
    assert sum("delivery temporarily suspended" in line for line in log.lines) == 2


async def test_agent_exception_defers_never_loses(tmp_path: Path) -> None:
    class Broken(FakeAgent):
        async def deliver(self, request, *, on_status=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    qm, sp, clock, _log, cfg = _setup(tmp_path, Broken())
    qid = _submit(sp, cfg, clock, "a@example.net")
    await qm.run_once()
    msg = sp.read("deferred", qid)
    assert msg.state.states[0].status is DeliveryStatus.DEFERRED
    assert "boom" in msg.state.states[0].diagnostic


async def test_concurrency_limit_and_slow_start(tmp_path: Path) -> None:
    agent = FakeAgent()
    agent.gate = asyncio.Event()
    qm, sp, clock, _log, cfg = _setup(
        tmp_path, agent, initial_destination_concurrency="2", smtp_destination_concurrency_limit="3"
    )
    for i in range(8):
        _submit(sp, cfg, clock, f"r{i}@example.net")
    task = asyncio.ensure_future(qm.run_once())
    for _ in range(20):
        await asyncio.sleep(0)
    assert agent.running == 2  # initial window
    agent.gate.set()
    await task
    assert len(agent.requests) == 8 and agent.peak <= 3
    assert qm.peak_concurrency("smtp", "[127.0.0.1]:2525") <= 3


async def test_error_transport_bounces_and_unknown_defers(tmp_path: Path) -> None:
    agent = FakeAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    from mailcarrier.queue.route import Router

    table = {"gone.example": "error:user unknown", "odd.example": "pipe:"}
    qm.configure(cfg, Router(cfg, lookup=table.get))
    qid = _submit(sp, cfg, clock, "x@gone.example", "y@odd.example")
    await qm.run_once()
    msg = sp.read("deferred", qid)
    assert msg.state.states[0].status is DeliveryStatus.BOUNCED
    assert msg.state.states[1].diagnostic == "mail transport unavailable"
    # the bounce notice itself went to the sender through the agent
    assert agent.delivered() == ["s@example.org"]
    assert any(r.sender == "" for r in agent.requests)
    assert msg.envelope.message_class is MessageClass.MAIL


async def test_bounced_recipient_gets_notice_with_postmaster_copy(tmp_path: Path) -> None:
    agent = FakeAgent(lambda a: BOUNCE if a == "a@example.net" else SENT)
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent, notify_classes="bounce")
    _submit(sp, cfg, clock, "a@example.net")
    await qm.run_once()
    assert sorted(agent.delivered()) == ["a@example.net", "postmaster@example.org", "s@example.org"]
    pm = next(r for r in agent.requests if r.recipients[0].address == "postmaster@example.org")
    assert pm.sender == "double-bounce@example.org"


async def test_double_bounce_goes_to_postmaster_only_with_2bounce(tmp_path: Path) -> None:
    for classes, expected in (("resource", []), ("2bounce", ["postmaster@example.org"])):
        d = tmp_path / classes
        agent = FakeAgent(lambda a: SENT if a.startswith("postmaster") else BOUNCE)
        qm, sp, clock, _log, cfg = _setup(d, agent, notify_classes=classes)
        _submit(sp, cfg, clock, "a@example.net", sender="")
        await qm.run_once()
        assert agent.delivered()[1:] == expected


async def test_failed_postmaster_notice_is_discarded(tmp_path: Path) -> None:
    agent = FakeAgent(lambda _a: BOUNCE)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "a@example.net", sender="double-bounce@example.org")
    await qm.run_once()
    assert f"warning: {qid}: undeliverable postmaster notification discarded" in log.lines
    assert agent.delivered() == ["a@example.net"]


async def test_recover_moves_active_back(tmp_path: Path) -> None:
    agent = FakeAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "a@example.net")
    sp.move(qid, "incoming", "active")
    await qm.run_once()
    assert agent.delivered() == ["a@example.net"] and sp.find(qid) is None


async def test_active_queue_limit_keeps_the_rest_waiting(tmp_path: Path) -> None:
    agent = FakeAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent, qmgr_message_active_limit="3")
    seen: list[int] = []
    original = agent.deliver

    async def deliver(request, *, on_status=None):  # type: ignore[no-untyped-def]
        seen.append(qm.statistics()["active_messages"])
        return await original(request, on_status=on_status)

    agent.deliver = deliver  # type: ignore[method-assign]
    ids = [_submit(sp, cfg, clock, f"r{i}@example.net") for i in range(10)]
    # The daemon's activation stops at the limit; the rest stays in incoming/.
    assert qm.activate_ready() == 3
    assert len(sp.ids("incoming")) == 7
    await qm.run_once()
    assert len(agent.requests) == 10 and max(seen) <= 3
    assert all(sp.find(qid) is None for qid in ids)


async def test_negative_feedback_shrinks_the_window_on_failures(tmp_path: Path) -> None:
    agent = FakeAgent(verdict=lambda _a: DEFER)
    qm, sp, clock, _log, cfg = _setup(
        tmp_path,
        agent,
        initial_destination_concurrency="5",
        default_destination_concurrency_failed_cohort_limit="0",
        default_destination_concurrency_negative_feedback="1",
    )
    for i in range(3):
        _submit(sp, cfg, clock, f"r{i}@example.net")
    await qm.run_once()
    window = qm._windows[("smtp", "[127.0.0.1]:2525")]
    # Postfix's arithmetic: the first failure overshoots by one (2 steps), then one each.
    assert window.window == 1 and not window.dead


# --- a write that fails; stopping -----------------------------------------------------


async def test_a_verdict_that_cannot_be_written_puts_the_message_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One message's record fails: logged once, it goes back to incoming/ with nothing
    marked and is left alone for minimal_backoff_time; the other is delivered."""
    agent = FakeAgent()
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    bad = _submit(sp, cfg, clock, "bad@example.net", "also@example.net")
    good = _submit(sp, cfg, clock, "good@example.net")
    original = record_state

    def record(message: QueueMessage, records: RecordWriter, index: int, state: Any) -> None:
        if message.queue_id == bad:
            raise TemporaryError(f"update queue file {message.path}: No space left on device")
        original(message, records, index, state)

    monkeypatch.setattr("mailcarrier.queue.scheduler.record_state", record)
    await qm.run_once()
    assert sorted(agent.delivered()) == ["also@example.net", "bad@example.net", "good@example.net"]
    warning = f"warning: {bad}: update queue file {tmp_path}/active/{bad}: No space left on device"
    assert [line for line in log.lines if "warning" in line] == [warning]
    assert sp.find(good) is None and sp.find(bad) == "incoming"
    assert sp.read("incoming", bad).state.states == {}
    monkeypatch.setattr("mailcarrier.queue.scheduler.record_state", original)
    assert qm.activate_ready() == 0  # left alone for a while
    clock.advance(qm.params.main.minimal_backoff_time)
    await qm.run_once()
    assert sp.find(bad) is None


async def test_a_notice_that_cannot_be_queued_keeps_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = FakeAgent(lambda _a: BOUNCE)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "gone@example.net")
    original = write_notice

    def refuse(*_args: object) -> str:
        raise TemporaryError("queue file write error: /q/incoming/.N.tmp: Disk quota exceeded")

    monkeypatch.setattr("mailcarrier.queue.finalize.write_notice", refuse)
    await qm.run_once()
    assert [line for line in log.lines if "warning" in line] == [
        f"warning: {qid}: sender non-delivery notification: queue file write error: "
        "/q/incoming/.N.tmp: Disk quota exceeded"
    ]
    state = sp.read("incoming", qid).state
    assert state.states[0].status is DeliveryStatus.BOUNCED and not state.notified
    monkeypatch.setattr("mailcarrier.queue.finalize.write_notice", original)
    qm.forget_trouble()  # as `queue flush` does
    await qm.run_once()
    assert sp.find(qid) is None
    assert any(f"{qid}: sender non-delivery notification: " in line for line in log.lines)
    assert len(agent.requests) == 2  # the message once, then its notice


async def test_a_deferral_that_cannot_be_written_leaves_the_message_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = FakeAgent(lambda _a: DEFER)
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "later@example.net")
    move = Spool.move

    def refuse(self: Spool, queue_id: str, src: str, dst: str, **kw: Any) -> Path:
        if dst == "deferred":
            raise TemporaryError(f"rename {src}/{queue_id} to {dst}: Read-only file system")
        return move(self, queue_id, src, dst, **kw)

    monkeypatch.setattr(Spool, "move", refuse)
    await qm.run_once()
    assert [line for line in log.lines if "warning" in line] == [
        f"warning: {qid}: rename active/{qid} to deferred: Read-only file system"
    ]
    assert sp.find(qid) == "active"  # still queued, its deferral recorded
    assert sp.read("active", qid).state.states[0].status is DeliveryStatus.DEFERRED
    monkeypatch.setattr(Spool, "move", move)
    clock.advance(qm.params.main.minimal_backoff_time)
    await qm.run_once()  # recovered from active/, tried again, deferred as usual
    assert sp.find(qid) == "deferred" and len(agent.requests) == 2


async def test_stop_abandons_deliveries_after_the_grace_period(tmp_path: Path) -> None:
    agent = FakeAgent()
    agent.gate = asyncio.Event()  # never set: every delivery hangs
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    ids = [_submit(sp, cfg, clock, f"r{i}@example.net") for i in range(2)]
    async with qm.running():  # the scope deliveries run in (serve() and run_once() open it)
        qm.activate_ready()
        qm.pump()
        await asyncio.sleep(0)
        assert agent.running == 2
        await qm.stop(grace=0.05)
        assert agent.running == 0
    assert log.lines[-3] == "stopping: waiting up to 0.05 seconds for 2 deliveries in progress"
    line = "delivery to smtp:[127.0.0.1]:2525 abandoned on signal, 1 recipient stays queued"
    assert sorted(log.lines[-2:]) == sorted(f"{i}: {line}" for i in ids)
    for qid in ids:
        assert sp.read("incoming", qid).state.states == {}


async def test_stop_waits_for_deliveries_that_finish_in_time(tmp_path: Path) -> None:
    agent = FakeAgent()
    agent.gate = asyncio.Event()
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "r@example.net")
    async with qm.running():
        qm.activate_ready()
        qm.pump()
        asyncio.get_running_loop().call_later(0.05, agent.gate.set)
        await qm.stop(grace=30)
    assert sp.find(qid) is None and not any("abandoned" in line for line in log.lines)


async def test_a_second_stop_request_abandons_at_once(tmp_path: Path) -> None:
    agent = FakeAgent()
    agent.gate = asyncio.Event()
    qm, sp, clock, log, cfg = _setup(tmp_path, agent)
    qid = _submit(sp, cfg, clock, "r@example.net")
    async with qm.running():
        qm.activate_ready()
        qm.pump()
        abandon = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, abandon.set)
        await asyncio.wait_for(qm.stop(grace=3600, abandon=abandon), 30)
    assert sp.find(qid) == "incoming"
    assert any(f"{qid}: delivery to" in line and "abandoned" in line for line in log.lines)


async def test_no_delivery_outlives_the_running_scope(tmp_path: Path) -> None:
    """Deliveries are tasks of the scope's TaskGroup: an error of the block cancels them
    and is raised as it is (no ExceptionGroup); pump() outside a scope is a bug."""
    agent = FakeAgent()
    agent.gate = asyncio.Event()  # never set
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    _submit(sp, cfg, clock, "r@example.net")
    with pytest.raises(RuntimeError, match="outside"):
        qm.pump()
    with pytest.raises(KeyError, match="stop here"):
        async with qm.running():
            qm.activate_ready()
            qm.pump()
            await asyncio.sleep(0)
            assert agent.running == 1 and qm.statistics()["running_jobs"] == 1
            raise KeyError("stop here")
    assert agent.running == 0 and qm.statistics()["running_jobs"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.1.1 no such user", ("5.1.1", "no such user")),
        ("  4.7.0   later", ("4.7.0", "later")),
        ("4.7.0", ("4.7.0", "")),
        ("user unknown", ("5.0.0", "user unknown")),
        ("5.1.1x odd", ("5.0.0", "5.1.1x odd")),
        ("3.1.1 not a class", ("5.0.0", "3.1.1 not a class")),
    ],
)
def test_dsn_split(text: str, expected: tuple[str, str]) -> None:
    from mailcarrier.queue.scheduler import dsn_split

    assert dsn_split("5.0.0", text) == expected


async def test_error_and_retry_texts_carry_their_status(tmp_path: Path) -> None:
    agent = FakeAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    from mailcarrier.queue.route import Router

    table = {"gone.example": "error:5.1.1 no such user", "later.example": "retry:4.4.7 wait"}
    qm.configure(cfg, Router(cfg, lookup=table.get))
    qid = _submit(sp, cfg, clock, "x@gone.example", "y@later.example")
    await qm.run_once()
    states = sp.read("deferred", qid).state.states
    assert (states[0].status, states[0].dsn, states[0].diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.1.1",
        "no such user",
    )
    assert (states[1].status, states[1].dsn, states[1].diagnostic) == (
        DeliveryStatus.DEFERRED,
        "4.4.7",
        "wait",
    )


async def test_transport_maps_that_cannot_answer_defer_the_recipients(tmp_path: Path) -> None:
    from tests.tables.sqlfaults import dead_port

    cf = tmp_path / "dead.cf"
    cf.write_text(f"hosts = inet:127.0.0.1:{dead_port()}\ndbname = m\nquery = SELECT '%s'\n")
    agent = FakeAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent, transport_maps=f"pgsql:{cf}")
    qid = _submit(sp, cfg, clock, "x@example.net")
    await qm.run_once()
    state = sp.read("deferred", qid).state.states[0]
    assert (state.status, state.dsn, state.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "4.3.0",
        "address resolver failure",
    )
    assert agent.requests == []


async def test_run_once_tells_its_progress_of_each_message(tmp_path: Path) -> None:
    # Two messages found; the bounce of one is a third, activated and delivered in the run.
    agent = FakeAgent(lambda a: BOUNCE if a == "b@example.net" else SENT)
    qm, sp, clock, _, cfg = _setup(tmp_path, agent)
    _submit(sp, cfg, clock, "a@example.net")
    _submit(sp, cfg, clock, "b@example.net")
    qm.progress = progress = RecordingProgress()
    await qm.run_once()
    assert sorted(agent.delivered()) == ["a@example.net", "b@example.net", "s@example.org"]
    assert (progress.total, progress.done) == (3, 3)


async def test_notified_records_are_written_only_when_they_say_something(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A message that stays queued records its final recipients as notified; one that is
    # removed with no notice due does not write those records (its file goes next). Should
    # the removal be lost (a crash), the next pass finds the same: no notice, then removal.
    agent = FakeAgent(lambda a: RCPT_DEFER if a.startswith("later") else SENT)
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    kept = _submit(sp, cfg, clock, "now@example.net", "later@example.net")
    done = _submit(sp, cfg, clock, "all@example.net")
    monkeypatch.setattr(Spool, "remove_soon", lambda *_a, **_k: None)  # the removal is lost
    await qm.run_once()
    assert sp.read("deferred", kept).state.notified == {0}
    left = sp.read("active", done).state
    assert left.states[0].status is DeliveryStatus.SENT and not left.notified
    monkeypatch.undo()
    agent.requests.clear()
    await qm.run_once()  # recovered: nothing to deliver, no notice, removed
    assert agent.requests == [] and sp.find(done) is None


class _InProcessAgent(FakeAgent):
    takes_content_bytes = True  # as DeliveryAgent: in this process, it takes the bytes


async def test_small_messages_go_to_an_agent_in_this_process_with_their_content(
    tmp_path: Path,
) -> None:
    """The spool's first read holds a small message whole: its content goes with the request
    to an agent in this process (not opened again), a message over CONTENT_KEPT bytes by its
    file only, and agent processes (no `takes_content_bytes`) get no bytes; what the active
    messages held is given back as they leave."""
    from mailcarrier.queue.scheduler import CONTENT_KEPT

    agent = _InProcessAgent()
    qm, sp, clock, _log, cfg = _setup(tmp_path, agent)
    opts = SubmitOptions(sender="s@example.org", recipients=("a@example.net",))
    small, big = b"Subject: t\n\nsmall\n", b"Subject: t\n\n" + b"x" * CONTENT_KEPT + b"\n"
    for body in (small, big):
        submit_stream(io.BytesIO(body), opts, settings=cfg, spool=sp, clock=clock)
    contents = {}
    real_deliver = agent.deliver

    async def deliver(request: Any, **kw: Any) -> Any:
        # The file is still there while the request runs: its bytes at the content offset.
        with open(request.content, "rb") as f:
            f.seek(request.content_offset)
            contents[request.size] = (f.read(request.size), request.content_bytes)
        return await real_deliver(request, **kw)

    agent.deliver = deliver  # type: ignore[method-assign]
    await qm.run_once()
    (small_size, big_size) = sorted(contents)
    assert small_size <= CONTENT_KEPT < big_size
    in_file, handed = contents[small_size]
    assert handed == in_file and in_file.endswith(b"\n\nsmall\n")
    assert contents[big_size][1] is None
    assert qm._content_held == 0

    other = FakeAgent()
    qm2, sp2, clock2, _log2, cfg2 = _setup(tmp_path / "other", other)
    submit_stream(io.BytesIO(small), opts, settings=cfg2, spool=sp2, clock=clock2)
    await qm2.run_once()
    assert [r.content_bytes for r in other.requests] == [None]
