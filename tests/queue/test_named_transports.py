"""Named transports end to end: master.cf services with -o settings, chosen by transport_maps,
default_transport and the sender's default transport, seen on the wire by aiosmtpd (the
EHLO name each session gave); a transport nothing defines at start and at run time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import UnixSocketController
from aiosmtpd.lmtp import LMTP

from mailcarrier import api
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import Spool, open_spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.status import DeliveryStatus
from tests.queue.helpers import FakeAgent, run_cli
from tests.support.clock import FakeClock
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import queue_settings

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")
MESSAGE = b"Subject: named\n\nhello\n"


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=PLAIN)).start()
    try:
        yield srv
    finally:
        srv.stop()


def _config(tmp_path: Path, server: AiosmtpdServer, main_cf: str) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text(
        f"queue_directory = {tmp_path / 'q'}\nmyhostname = mc.example\n"
        f"relayhost = {server.nexthop}\nnamed_helo = named.example\n" + main_cf
    )
    (d / "master.cf").write_text(
        "# a transport of its own for some mail\n"
        "smtp      unix  -       -       n       -       -       smtp\n"
        "named     unix  -       -       n       -       -       smtp\n"
        "    -o smtp_helo_name=$named_helo\n"
        "    -o { smtp_connect_timeout = 9s }\n"
        "bulk      unix  -       -       n       -       -       smtp\n"
        "    -o smtp_helo_name=bulk.example\n"
    )
    return d


async def _run(settings: Settings, *messages: tuple[str, list[str]]) -> MemoryLog:
    log = MemoryLog()
    for sender, recipients in messages:
        await api.submit(MESSAGE, sender=sender, recipients=recipients, config=settings)
    spool = open_spool(settings, log=log)
    await QueueManager(settings, spool, DeliveryAgent(settings, log=log), log=log).run_once()
    return log


def _seen(server: AiosmtpdServer) -> list[tuple[str, list[str]]]:
    return sorted((m.helo, m.rcpt_tos) for m in server.messages)


async def test_transport_maps_service_sends_its_helo_name(
    tmp_path: Path, server: AiosmtpdServer
) -> None:
    d = _config(tmp_path, server, "transport_maps = inline:{ named.example.com=named }\n")
    settings = Settings.load(d)
    await _run(settings, ("s@example.org", ["a@named.example.com", "b@example.net"]))
    assert _seen(server) == [
        ("mc.example", ["b@example.net"]),
        ("named.example", ["a@named.example.com"]),
    ]
    assert settings.service("named").params.smtp_connect_timeout == 9.0


async def test_default_transport_names_a_service(tmp_path: Path, server: AiosmtpdServer) -> None:
    d = _config(tmp_path, server, "default_transport = named\n")
    await _run(Settings.load(d), ("s@example.org", ["a@example.net"]))
    assert _seen(server) == [("named.example", ["a@example.net"])]


async def test_relay_transport_names_a_service(tmp_path: Path, server: AiosmtpdServer) -> None:
    d = _config(tmp_path, server, "relay_domains = relayed.example\nrelay_transport = bulk\n")
    await _run(Settings.load(d), ("s@example.org", ["a@relayed.example", "b@example.net"]))
    assert _seen(server) == [
        ("bulk.example", ["a@relayed.example"]),
        ("mc.example", ["b@example.net"]),
    ]


async def test_sender_dependent_default_transport(tmp_path: Path, server: AiosmtpdServer) -> None:
    maps = "inline:{ {news@example.org=bulk}, {@example.org=named} }"
    d = _config(tmp_path, server, f"sender_dependent_default_transport_maps = {maps}\n")
    await _run(
        Settings.load(d),
        ("news@example.org", ["a@example.net"]),
        ("ann@example.org", ["b@example.net"]),
        ("x@example.com", ["c@example.net"]),
    )
    assert _seen(server) == [
        ("bulk.example", ["a@example.net"]),
        ("mc.example", ["c@example.net"]),
        ("named.example", ["b@example.net"]),
    ]


async def test_a_table_naming_no_service_defers_its_mail(
    tmp_path: Path, server: AiosmtpdServer
) -> None:
    d = _config(tmp_path, server, "transport_maps = inline:{ typo.example=nmaed }\n")
    settings = Settings.load(d)
    log = await _run(settings, ("s@example.org", ["a@typo.example", "b@example.net"]))
    assert _seen(server) == [("mc.example", ["b@example.net"])]
    assert (
        "warning: connect to transport private/nmaed: No such file or directory"
        ' (did you mean "named"?)'
    ) in "\n".join(log.lines)
    spool = open_spool(settings)
    (queue_id,) = spool.ids("deferred")
    state = spool.read("deferred", queue_id).state.states[0]
    assert state.status is DeliveryStatus.DEFERRED
    assert (state.dsn, state.diagnostic) == ("4.3.0", "mail transport unavailable")


def test_run_refuses_a_default_transport_nothing_defines(
    tmp_path: Path, server: AiosmtpdServer
) -> None:
    d = _config(tmp_path, server, "default_transport = nmaed\n")
    done = run_cli(["-c", str(d), "run", "--once"], text=True)
    assert done.returncode == 78
    assert done.stderr == (
        f"mailcarrier: fatal: {d / 'main.cf'}:5: parameter default_transport: unknown mail "
        'transport "nmaed": not a built-in transport (smtp, relay, lmtp, error, retry) nor an '
        f'smtp or lmtp service of {d / "master.cf"} (did you mean "named"?)\n'
    )
    assert server.messages == []


def test_run_refuses_a_bad_service_line(tmp_path: Path, server: AiosmtpdServer) -> None:
    d = _config(tmp_path, server, "")
    with (d / "master.cf").open("a") as f:
        f.write("broken    unix  -       -       n       -       -       smtp -o smtp_helo_name\n")
    done = run_cli(["-c", str(d), "run", "--once"], text=True)
    assert done.returncode == 78
    assert done.stderr == (
        f'mailcarrier: fatal: {d / "master.cf"}:8: invalid "-o smtp_helo_name" option value: '
        "missing '=' after attribute name\n"
    )


async def test_a_service_is_queued_and_limited_by_its_name(tmp_path: Path) -> None:
    """Postfix's qmgr keeps a queue per transport name: <service>_destination_recipient_limit
    applies to the service's mail only, and each request names its service."""
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text(
        f"queue_directory = {tmp_path / 'q'}\nrelayhost = [127.0.0.1]:2525\n"
        "transport_maps = inline:{ named.example=named }\n"
        "named_destination_recipient_limit = 1\n"
    )
    (d / "master.cf").write_text("named unix - - n - - smtp -o smtp_helo_name=n.example\n")
    settings = Settings.load(d)
    assert settings.warnings == ()  # named_destination_recipient_limit is a known name
    clock = FakeClock()
    spool = Spool(tmp_path / "q", clock=clock).ensure()
    agent = FakeAgent()
    opts = SubmitOptions(
        sender="s@example.org",
        recipients=("a@named.example", "b@named.example", "c@example.net", "d@example.net"),
    )
    submit_stream(io.BytesIO(MESSAGE), opts, settings=settings, spool=spool, clock=clock)
    await QueueManager(settings, spool, agent, clock=clock).run_once()
    requests = sorted(
        (r.service, r.transport, r.nexthop, [x.address for x in r.recipients])
        for r in agent.requests
    )
    assert requests == [
        ("", "smtp", "[127.0.0.1]:2525", ["c@example.net", "d@example.net"]),
        ("named", "smtp", "[127.0.0.1]:2525", ["a@named.example"]),
        ("named", "smtp", "[127.0.0.1]:2525", ["b@named.example"]),
    ]


def test_a_reload_naming_no_transport_keeps_the_old_configuration(tmp_path: Path) -> None:
    clock = FakeClock()
    good = queue_settings(tmp_path)
    spool = Spool(tmp_path, clock=clock).ensure()
    manager = QueueManager(good, spool, FakeAgent(), clock=clock)
    with pytest.raises(ConfigError):
        manager.configure(queue_settings(tmp_path, default_transport="nmaed", relayhost=""))
    assert manager.settings is good and manager.params.settings is good


class _Lmtp(UnixSocketController):
    def factory(self) -> LMTP:
        return LMTP(self.handler)


async def test_an_lmtp_service_sends_its_lhlo_name(short_tmp: Path, tmp_path: Path) -> None:
    path = short_tmp / "lmtp"
    handler = RecordingHandler(extra_keywords=("PIPELINING",))
    controller = _Lmtp(handler, unix_socket=str(path))
    controller.start()
    try:
        d = tmp_path / "etc"
        d.mkdir()
        (d / "main.cf").write_text(
            f"queue_directory = {tmp_path / 'q'}\nmyhostname = mc.example\n"
            f"transport_maps = inline:{{ lmtp.example=mailbox:unix:{path} }}\n"
        )
        (d / "master.cf").write_text("mailbox unix - - n - - lmtp -o lmtp_lhlo_name=lhlo.example\n")
        await _run(Settings.load(d), ("s@example.org", ["a@lmtp.example"]))
        assert [(m.helo, m.rcpt_tos) for m in handler.messages] == [
            ("lhlo.example", ["a@lmtp.example"])
        ]
    finally:
        controller.stop()
