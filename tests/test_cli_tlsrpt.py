"""`mailcarrier tlsrpt show [--date D] [--json]`: the reports of a day as they would be sent,
from counts in ``$data_directory/tlsrpt.sqlite`` and the ``_smtp._tls`` record that the
loopback DNS server publishes; a bad date is a usage error (64). `mailcarrier tlsrpt send`
(cron): the day's reports POSTed to a loopback HTTPS server, a failed POST kept and sent by
a later run (another process, as after a restart), the day sent once unless asked again."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
from pathlib import Path

import pytest
from dnslib import RR

from mailcarrier.cli import run
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.queue.tlsrpt_post import PendingPosts
from mailcarrier.tls.tlsrpt import Attempt
from mailcarrier.tls.tlsrpt_report import report_id
from tests.queue.helpers import run_cli
from tests.support.https_collector import HttpsCollector
from tests.support.peers.aiosmtpd_requiretls import RequireTlsAiosmtpdServer, RequireTlsHandler
from tests.support.settings import queue_layer
from tests.support.tls import Pki, Zone

DAY = "2026-11-30"
TLSA = "3 1 1 " + "ab" * 32


def _show(zone: Zone, data: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", f"data_directory={data}", "-o", f"dns_nameservers=127.0.0.1:{zone[0]}"]
    argv += ["-o", "inet_protocols=ipv4", "-o", "tlsrpt_organization_name=Org"]
    argv += ["-o", "tlsrpt_contact_info=ops@org.example", "tlsrpt", "show", *extra]
    code = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _counts(data: Path) -> None:
    store = TlsrptStore(data)
    store.record(Attempt(DAY, "dane.test", "tlsa", (TLSA,)), 4)
    failed = Attempt(
        DAY,
        "dane.test",
        "tlsa",
        (TLSA,),
        (),
        "validation-failure",
        "127.0.0.1",
        "mx.dane.test",
        "127.0.0.2",
    )
    store.record(failed)
    store.record(Attempt(DAY, "plain.test", "no-policy-found"), 2)
    store.close()


def test_show_json(dns_zone: Zone, tmp_path: Path) -> None:
    _counts(tmp_path)
    dns_zone[1].records.extend(
        RR.fromZone('_smtp._tls.dane.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:r@dane.test"')
    )
    code, out, err = _show(dns_zone, tmp_path, "--date", DAY, "--json")
    assert (code, err) == (0, "")
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == {
        "policy-domain": "dane.test",
        "day": DAY,
        "rua": ["mailto:r@dane.test"],
        "report": {
            "organization-name": "Org",
            "date-range": {
                "start-datetime": f"{DAY}T00:00:00Z",
                "end-datetime": f"{DAY}T23:59:59Z",
            },
            "contact-info": "ops@org.example",
            "report-id": report_id("Org", "dane.test", DAY),
            "policies": [
                {
                    "policy": {
                        "policy-type": "tlsa",
                        "policy-string": [TLSA],
                        "policy-domain": "dane.test",
                    },
                    "summary": {
                        "total-successful-session-count": 4,
                        "total-failure-session-count": 1,
                    },
                    "failure-details": [
                        {
                            "result-type": "validation-failure",
                            "sending-mta-ip": "127.0.0.1",
                            "receiving-mx-hostname": "mx.dane.test",
                            "receiving-ip": "127.0.0.2",
                            "failed-session-count": 1,
                        }
                    ],
                }
            ],
        },
    }
    assert (second["policy-domain"], second["rua"], second["problem"]) == (
        "plain.test",
        [],
        "no TLSRPT record",
    )


def test_show_text(dns_zone: Zone, tmp_path: Path) -> None:
    _counts(tmp_path)
    code, out, err = _show(dns_zone, tmp_path, "--date", DAY)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"dane.test {DAY} report-id {report_id('Org', 'dane.test', DAY)}: "
        "not sent: no TLSRPT record",
        "  policy tlsa: 4 successful, 1 failed",
        f"    {TLSA}",
        "    validation-failure: 1 from 127.0.0.1 to mx.dane.test[127.0.0.2]",
        f"plain.test {DAY} report-id {report_id('Org', 'plain.test', DAY)}: "
        "not sent: no TLSRPT record",
        "  policy no-policy-found: 2 successful, 0 failed",
    ]


def test_show_nothing_counted_and_a_bad_date(dns_zone: Zone, tmp_path: Path) -> None:
    assert _show(dns_zone, tmp_path) == (0, "", "")
    code, out, err = _show(dns_zone, tmp_path, "--date", "30/11/2026")
    assert (code, out) == (64, "")
    assert err == "mailcarrier: fatal: bad --date '30/11/2026': expected YYYY-MM-DD\n"


def _send(zone: Zone, tmp_path: Path, pki: Pki, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", f"data_directory={tmp_path / 'data'}", "-o", f"smtp_tls_CAfile={pki.cafile()}"]
    argv += ["-o", f"queue_directory={tmp_path / 'queue'}", "-o", "maillog_file="]
    argv += ["-o", f"dns_nameservers=127.0.0.1:{zone[0]}", "-o", "inet_protocols=ipv4"]
    argv += ["tlsrpt", "send", *extra]
    code = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _texts(err: str) -> list[str]:
    """The log lines without their syslog prefix, which must name postfix/tlsrpt."""
    lines = err.splitlines()
    assert all(" postfix/tlsrpt[" in line for line in lines), lines
    return [line.partition("]: ")[2] for line in lines]


def test_send_posts_and_a_later_run_retries(dns_zone: Zone, tmp_path: Path, pki: Pki) -> None:
    server = HttpsCollector(pki, status=503)
    try:
        url = f"https://127.0.0.1:{server.port}/rpt"
        dns_zone[1].records.extend(
            RR.fromZone(f'_smtp._tls.plain.test. 300 IN TXT "v=TLSRPTv1; rua={url}"')
        )
        TlsrptStore(tmp_path / "data").record(Attempt(DAY, "plain.test", "no-policy-found"), 2)
        code, out, err = _send(dns_zone, tmp_path, pki, "--date", DAY)
        assert (code, out) == (0, "")
        assert _texts(err) == [
            f"warning: TLS report for plain.test of {DAY}: {url}: "
            "HTTP/1.0 503 Service Unavailable (will retry)"
        ]
        # A later run (cron, an hour on): the retry is due (its time moved as time would).
        pending = PendingPosts(tmp_path / "data")
        [post] = pending.all()
        pending.save(dataclasses.replace(post, next=post.next - 3600))
        server.status[0] = 201
        code, out, err = _send(dns_zone, tmp_path, pki)
        assert (code, out) == (0, "")
        assert _texts(err) == [f"TLS report for plain.test of {DAY} to {url} (attempt 2)"]
        assert pending.all() == []
        assert len(server.posts) == 2
        # The day is sent again only when asked for by date.
        assert _send(dns_zone, tmp_path, pki)[2] == ""
        code, out, err = _send(dns_zone, tmp_path, pki, "--date", DAY)
        assert _texts(err) == [f"TLS report for plain.test of {DAY} to {url}"]
        assert len(server.posts) == 3
    finally:
        server.stop()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_run_writes_its_counts_when_it_stops(tmp_path: Path, pki: Pki, processes: str) -> None:
    """The counts are written in batches: `run --once` (its in-process agent, or its agent
    processes) writes those still in memory when it ends."""
    context = pki.server_context(pki.leaf("127.0.0.1"))
    server = RequireTlsAiosmtpdServer(RequireTlsHandler(), context).start()
    try:
        options = []
        for name, value in {
            **queue_layer(tmp_path / "queue"),
            "relayhost": server.nexthop,
            "data_directory": str(tmp_path / "data"),
            "smtp_tls_security_level": "encrypt",
            "smtp_tlsrpt_enable": "yes",
            "delivery_agent_processes": processes,
            "maillog_file": "",
        }.items():
            options += ["-o", f"{name}={value}"]
        for n in range(3):
            done = run_cli([*options, "sendmail", "-f", "s@example.org", f"u{n}@example.net"])
            assert done.returncode == 0, done.stderr
        done = run_cli([*options, "run", "--once"])
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    assert len(server.messages) == 3
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    assert TlsrptStore(tmp_path / "data").rows(today) == [
        (Attempt(today, "127.0.0.1", "no-policy-found"), 3)
    ]
