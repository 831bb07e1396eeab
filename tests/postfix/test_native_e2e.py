"""mailcarrier-smtp inside a real Postfix: master(8) starts it from master.cf as the ``smtp``
service, qmgr(8) hands it delivery requests, and Postfix's own bounce(8), defer(8) and
trace(8) make the notices from what it reports.

Mail submitted through the instance's smtpd flows qmgr -> mailcarrier-smtp -> smtp-sink and
the queue file is removed; a 4xx next hop leaves the message deferred with the agent's reason
in ``postqueue -j``; a 5xx makes Postfix's bounce daemon return the message to the sender;
NOTIFY=SUCCESS makes it send a success notice; many messages to one destination reuse
connections (``conn_use=`` in the log); the agent's lines are in the instance's log with
Postfix's process tag. One instance for the module (tests/postfix/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.peers.postfix_sink import SmtpSink
from tests.support.postfix import PostfixInstance
from tests.support.tablefiles import KINDS, Postmap, need_library

pytestmark = pytest.mark.postfix


@pytest.fixture(scope="module")
def sinks(postfix_instance: PostfixInstance) -> dict[str, SmtpSink]:
    instance = postfix_instance
    dump = instance.root / "sink" / "%H%M%S."
    found = {
        "ok": instance.sink("-d", str(dump)),
        "soft": instance.sink("-r", "RCPT"),
        "hard": instance.sink("-f", "RCPT"),
        "nodsn": instance.sink("-N"),  # the next hop cannot take NOTIFY along
    }
    routes = ", ".join(f"{name}.test=smtp:{sink.nexthop}" for name, sink in found.items())
    instance.set_main({"transport_maps": f"inline:{{{routes}}}", "relayhost": found["ok"].nexthop})
    command = instance.program("smtp", "mailcarrier.postfix.main:smtp_main")
    instance.set_service("smtp", command, maxproc="2")
    return found


def _message(subject: str, to: str = "b@ok.test") -> bytes:
    return f"From: a@test.local\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


def _dumps(directory: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("*"))]


def _no_trouble(instance: PostfixInstance, mark: int) -> None:
    log = instance.log[mark:]
    for trouble in ("malformed response", "bad command startup", "fatal:", "Traceback"):
        assert trouble not in log


def test_a_message_flows_through_mailcarrier_smtp(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    mark = instance.log_mark()
    queue_id = instance.submit("a@test.local", ["b@ok.test"], _message("native"))
    line = instance.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<b@ok\.test>.*", mark)
    assert f"relay=127.0.0.1[127.0.0.1]:{sinks['ok'].port}," in line.group()
    assert "dsn=2.0.0, status=sent (250 2.0.0 Ok" in line.group()
    instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    instance.wait_empty()
    (dump,) = [d for d in _dumps(instance.root / "sink") if b"Subject: native\n" in d]
    assert b"\nX-Rcpt-Args: <b@ok.test> ORCPT=rfc822;b@ok.test\n" in dump
    assert dump.endswith(b"\n\nhello\n\n")
    _no_trouble(instance, mark)


def test_a_4xx_next_hop_leaves_the_message_deferred_with_the_reason(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    mark = instance.log_mark()
    queue_id = instance.submit("a@test.local", ["d@soft.test"], _message("later", "d@soft.test"))
    entry = instance.wait_deferred(queue_id)
    (recipient,) = entry["recipients"]
    assert recipient["delay_reason"] == (
        "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed "
        "(in reply to RCPT TO command)"
    )
    instance.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<d@soft\.test>.*status=deferred", mark)
    _no_trouble(instance, mark)


def test_a_deferral_to_a_fast_flush_domain_is_in_flush8s_log(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    """defer.c's flush_add: with soft.test in fast_flush_domains, flush(8) adds the queue ID
    to the site's log (``postqueue -s soft.test`` would retry it)."""
    instance = postfix_instance
    instance.set_main({"fast_flush_domains": "soft.test"})
    try:
        mark = instance.log_mark()
        queue_id = instance.submit("a@test.local", ["f@soft.test"], _message("ff", "f@soft.test"))
        instance.wait_deferred(queue_id)
        site_log = instance.spool / "flush" / "soft_test"  # flush_site_to_path
        instance.wait_until(
            lambda: site_log.exists() and queue_id in site_log.read_text(), "flush's site log"
        )
        _no_trouble(instance, mark)
        assert "flush service failure" not in instance.log[mark:]
    finally:
        instance.set_main({"fast_flush_domains": None})


def test_a_5xx_next_hop_bounces_through_postfix_bounce(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    mark = instance.log_mark()
    queue_id = instance.submit("e@test.local", ["f@hard.test"], _message("never", "f@hard.test"))
    instance.wait_log(
        rf"postfix/smtp\[\d+\]: {queue_id}: to=<f@hard\.test>.*dsn=5\.\d\.\d, status=bounced", mark
    )
    notice = instance.wait_log(
        rf"postfix/bounce\[\d+\]: {queue_id}: sender non-delivery notification: (\w+)", mark
    )
    instance.wait_log(rf"{notice.group(1)}: to=<e@test\.local>.*status=sent", mark)
    instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    _no_trouble(instance, mark)


def test_soft_bounce_keeps_a_5xx_recipient_queued_and_logs_softbounce(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    """soft_bounce = yes, as bounce.c: the 5xx recipient goes to defer(8) with a 4.x.x code,
    the line says status=SOFTBOUNCE, mailq shows the reason, and no notice is sent."""
    instance = postfix_instance
    instance.set_main({"soft_bounce": "yes"})
    try:
        mark = instance.log_mark()
        queue_id = instance.submit("s@test.local", ["t@hard.test"], _message("soft", "t@hard.test"))
        entry = instance.wait_deferred(queue_id)
        line = instance.wait_log(
            rf"postfix/smtp\[\d+\]: {queue_id}: to=<t@hard\.test>.*dsn=(4\.\d\.\d), "
            r"status=SOFTBOUNCE \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 5",
            mark,
        )
        assert line.group(1).startswith("4.")
        (recipient,) = entry["recipients"]
        assert recipient["delay_reason"].startswith("host 127.0.0.1[127.0.0.1] said: 5")
        assert "non-delivery notification" not in instance.log[mark:]
        _no_trouble(instance, mark)
    finally:
        instance.set_main({"soft_bounce": None})
        subprocess.run(
            ["/usr/sbin/postsuper", "-c", str(instance.config), "-d", "ALL"],
            check=True,
            capture_output=True,
            timeout=30,
        )


def test_notify_success_gets_postfixs_success_notice(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    mark = instance.log_mark()
    queue_id = instance.submit(
        "g@test.local",
        ["h@nodsn.test"],
        _message("tell me", "h@nodsn.test"),
        rcpt_options=["NOTIFY=SUCCESS"],
    )
    instance.wait_log(rf"postfix/smtp\[\d+\]: {queue_id}: to=<h@nodsn\.test>.*status=sent", mark)
    notice = instance.wait_log(
        rf"postfix/bounce\[\d+\]: {queue_id}: sender delivery status notification: (\w+)", mark
    )
    instance.wait_log(rf"{notice.group(1)}: to=<g@test\.local>.*status=sent", mark)
    _no_trouble(instance, mark)


def test_many_messages_reuse_connections(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    instance = postfix_instance
    mark = instance.log_mark()
    ids = [
        instance.submit("a@test.local", [f"n{i}@ok.test"], _message(f"many {i}", f"n{i}@ok.test"))
        for i in range(40)
    ]
    for queue_id in ids:  # (the 4xx test's message stays deferred: no wait_empty here)
        instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    log = instance.log[mark:]
    for queue_id in ids:
        assert re.search(rf"{queue_id}: to=<n\d+@ok\.test>.*status=sent", log)
    assert re.search(r"postfix/smtp\[\d+\]: \w+: to=<n\d+@ok\.test>, .*conn_use=\d+", log)
    _no_trouble(instance, mark)


def test_sendmail_bv_is_an_address_probe_without_data(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    """``sendmail -bv``: qmgr sends a trace-only request; the agent sends MAIL, RCPT and RSET
    (no message reaches the sink), reports to trace(8), and bounce(8) mails the report."""
    instance = postfix_instance
    mark = instance.log_mark()
    before = len(_dumps(instance.root / "sink"))
    _run_sendmail_bv(instance, "p@test.local", "probe@ok.test")
    line = instance.wait_log(r"postfix/smtp\[\d+\]: (\w+): to=<probe@ok\.test>.*", mark)
    assert "status=deliverable (250 2.1.5 Ok)" in line.group()
    report = instance.wait_log(
        rf"postfix/bounce\[\d+\]: {line.group(1)}: sender delivery status notification: (\w+)",
        mark,
    )
    instance.wait_log(rf"{report.group(1)}: to=<p@test\.local>.*status=sent", mark)
    dumps = _dumps(instance.root / "sink")
    # Only the report reached the sink: the probe itself sent no DATA.
    assert not any(b"X-Rcpt-Args: <probe@ok.test>" in d for d in dumps[before:])
    _no_trouble(instance, mark)


def _run_sendmail_bv(instance: PostfixInstance, sender: str, rcpt: str) -> None:
    subprocess.run(
        ["/usr/sbin/sendmail", "-C", str(instance.config), "-bv", "-f", sender, rcpt],
        check=True,
        timeout=60,
        capture_output=True,
    )


def _rewritten(instance: PostfixInstance, prefix: str, subject: str) -> None:
    mark = instance.log_mark()
    ids = [
        instance.submit(f"from@{kind}.test", ["b@ok.test"], _message(f"{subject} {kind}"))
        for kind in KINDS
    ]
    for queue_id in ids:
        instance.wait_log(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", mark)
    dumps = _dumps(instance.root / "sink")
    for kind in KINDS:
        (dump,) = [d for d in dumps if f"Subject: {subject} {kind}\n".encode() in d]
        assert f"\nX-Mail-Args: <{prefix}-{kind}@ok.test>\n".encode() in dump
    _no_trouble(instance, mark)


def test_postfixs_own_table_files_rewrite_senders(
    postfix_instance: PostfixInstance, sinks: dict[str, SmtpSink]
) -> None:
    """smtp_generic_maps names hash:, btree:, lmdb: and cdb: tables made by Postfix's own
    postmap: mailcarrier-smtp reads each of them while it delivers, and the tables as
    postmap rebuilds them (issue 17)."""
    instance = postfix_instance
    postmap = Postmap(instance.root / "postmap-config")
    tables = instance.root / "tables"
    tables.mkdir(exist_ok=True)
    specs = []
    for kind in KINDS:
        postmap.need(kind)
        need_library(kind)
        source = tables / f"generic-{kind}"
        source.write_text(f"From@{kind.upper()}.test  rewritten-{kind}@ok.test\n")
        postmap.build(f"{kind}:{source}")
        specs.append(f"{kind}:{source}")
    instance.set_main({"smtp_generic_maps": ", ".join(specs)})
    try:
        _rewritten(instance, "rewritten", "generic")
        # postmap again (in place for hash, btree and lmdb; a new cdb file renamed over the
        # old one): the running agent makes way for a fresh one, as smtp(8) does.
        for kind in KINDS:
            source = tables / f"generic-{kind}"
            source.write_text(f"From@{kind.upper()}.test  renewed-{kind}@ok.test\n")
            postmap.build(f"{kind}:{source}")
        _rewritten(instance, "renewed", "renewed")
    finally:
        instance.set_main({"smtp_generic_maps": None})
