"""`mailcarrier tlsrpt show [--date D] [--json]`: the reports of a day as they would be sent,
from counts in ``$data_directory/tlsrpt.sqlite`` and the ``_smtp._tls`` record that the
loopback DNS server publishes; a bad date is a usage error (64)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from dnslib import RR

from mailcarrier.cli import run
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.tls.tlsrpt import Attempt
from mailcarrier.tls.tlsrpt_report import report_id
from tests.support.tls import Zone

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
