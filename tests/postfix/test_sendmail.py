"""``mailcarrier tlsrpt send --postfix``: the TLS reports of a Postfix-native setup, sent from
cron (postfix/sendmail.py). A real private Postfix instance (tests/support/postfix.py) is
the native setup: main.cf is read as mailcarrier-smtp reads it, the counts are in its
``data_directory``, and the report for a ``mailto:`` URI goes through Postfix's own
sendmail(1) (``sendmail_path``) into its queue, is logged by pickup and delivered by the
instance to an smtp-sink, DKIM-signed (verified with dkimpy) with ``TLS-Required: No``. The
``_smtp._tls`` record comes from the loopback dnslib zone."""

from __future__ import annotations

import email
import email.policy
import io
from pathlib import Path

import dkim
import pytest
from dnslib import RR

from mailcarrier.cli import run
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.tls.tlsrpt import Attempt
from tests.support.dkim import dkim_key
from tests.support.postfix import PostfixInstance
from tests.support.tls import Zone

pytestmark = pytest.mark.postfix

DAY = "2026-11-30"
DOMAIN = "rpt.test"


def test_a_report_by_mail_goes_through_postfixs_sendmail(
    postfix_instance: PostfixInstance, dns_zone: Zone
) -> None:
    instance = postfix_instance
    dump = instance.root / "tlsrpt-sink"
    sink = instance.sink("-d", str(dump / "%H%M%S."))
    instance.set_main({"relayhost": sink.nexthop})
    dns_zone[1].records.extend(
        RR.fromZone(f'_smtp._tls.{DOMAIN}. 300 IN TXT "v=TLSRPTv1; rua=mailto:rpt@{DOMAIN}"')
    )
    key, record = dkim_key(instance.root)
    store = TlsrptStore(instance.data)  # where mailcarrier-smtp counts, in native mode
    store.record(Attempt(DAY, DOMAIN, "no-policy-found"), 4)
    store.close()
    mark = instance.log_mark()
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", f"dns_nameservers=127.0.0.1:{dns_zone[0]}"]
    for name, value in (
        ("tlsrpt_organization_name", "Example Sender"),
        ("tlsrpt_contact_info", "tlsrpt@sender.example"),
        ("tlsrpt_dkim_domain", "sender.example"),
        ("tlsrpt_dkim_selector", "rpt"),
        ("tlsrpt_dkim_private_key_file", str(key)),
    ):
        argv += ["-o", f"{name}={value}"]
    argv += ["tlsrpt", "send", f"--postfix={instance.config}", "--date", DAY]
    code = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err)
    assert (code, out.getvalue()) == (0, ""), err.getvalue()
    line = f"TLS report for {DOMAIN} of {DAY} to rpt@{DOMAIN}"
    assert err.getvalue().endswith(f"]: {line}\n"), err.getvalue()
    # In Postfix's log too (postlogd), and through Postfix's queue: pickup, then delivery.
    instance.wait_log(rf"postfix/tlsrpt\[\d+\]: {line}", mark)
    pickup = instance.wait_log(r"postfix/pickup\[\d+\]: (\w+): uid=0 from=<tlsrpt@sender", mark)
    queue_id = pickup.group(1)
    instance.wait_log(rf"{queue_id}: to=<rpt@{DOMAIN}>.*status=sent", mark)
    instance.wait_until(lambda: any(dump.glob("*")), "sink dump")
    [raw] = [path.read_bytes() for path in dump.glob("*")]
    # The sink's lines and Postfix's Received: header come before ours.
    start = raw.index(b"DKIM-Signature:")
    signed = raw[start:].rstrip(b"\n") + b"\n"
    signed = signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"rpt._domainkey.sender.example."
        return record

    assert dkim.verify(signed, dnsfunc=dns, tlsrpt="strict")
    parsed = email.message_from_bytes(signed, policy=email.policy.default)
    assert parsed["TLS-Required"] == "No"
    assert parsed["TLS-Report-Domain"] == DOMAIN
    assert parsed.get_content_type() == "multipart/report"


def test_a_postfix_that_cannot_answer_is_one_line(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["tlsrpt", "send", f"--postfix={tmp_path / 'none'}"]
    code = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err)
    assert (code, out.getvalue()) == (78, "")
    assert err.getvalue() == (
        f"mailcarrier: fatal: --postfix: /usr/sbin/postconf -c {tmp_path / 'none'} -h "
        f"queue_directory: /usr/sbin/postconf: fatal: open {tmp_path / 'none'}/main.cf: "
        "No such file or directory\n"
    )
