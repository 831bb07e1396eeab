"""RFC 3464 notices, parsed back with the standard library and checked field by field."""

from __future__ import annotations

import email
import email.message
import email.policy
import io
import tempfile
from pathlib import Path
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcarrier.config.settings import Settings
from mailcarrier.log import MemoryLog
from mailcarrier.notify import Notify
from mailcarrier.queue.notices import diagnostic_code, remote_mta
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.status import ACTION_FORWARDED, DeliveryStatus
from tests.queue.helpers import BOUNCE, DEFER, SENT, FakeAgent, Verdict
from tests.support.clock import FakeClock
from tests.support.settings import queue_settings

BODY = b"From: s@example.org\nSubject: original\n\nthe original body\n"


def _notice(
    tmp_path: Path,
    verdict: Verdict,
    *,
    notify: Notify = Notify.NONE,
    ret: str = "",
    envid: str = "",
    action: str = "",
    relay: str = "mx.example[192.0.2.1]:25",
    requiretls: bool = False,
    **over: str,
) -> tuple[email.message.Message, list[str]]:
    """Submit, deliver with `verdict` for a@example.net; the sender's notice is deferred
    (so it stays in the queue) and returned parsed."""
    clock = FakeClock()
    log = MemoryLog()
    cfg: Settings = queue_settings(tmp_path, **over)
    sp = Spool(tmp_path, clock=clock, log=log).ensure()
    agent = FakeAgent(
        lambda a: verdict if a == "a@example.net" else DEFER, action=action, relay=relay
    )
    opts = SubmitOptions(
        sender="s@example.org",
        recipients=("a@example.net",),
        notify=notify,
        ret=ret,
        envid=envid,
        requiretls=requiretls,
    )
    qid = submit_stream(io.BytesIO(BODY), opts, settings=cfg, spool=sp, clock=clock)
    qm = QueueManager(cfg, sp, agent, log=log, clock=clock)
    # The notice must not expire at once: give notices a lifetime.
    qm.configure(cfg)
    import asyncio

    asyncio.get_event_loop_policy()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(qm.run_once())
    finally:
        loop.close()
    ids = [i for i in sp.ids("deferred") if i != qid]
    if not ids:
        return email.message.Message(), log.lines
    msg = sp.read("deferred", ids[0])
    _NOTICE_REQUIRETLS[:] = [msg.envelope.requiretls]
    assert msg.envelope.sender == ""
    assert [r.address for r in msg.envelope.recipients] == ["s@example.org"]
    with open(msg.path, "rb") as f:
        f.seek(msg.envelope.content_offset)
        data = f.read(msg.envelope.size)
    return email.message_from_bytes(data, policy=email.policy.compat32), log.lines


# The REQUIRETLS flag of the last notice `_notice` read.
_NOTICE_REQUIRETLS: list[bool] = []


def _parts(entity: email.message.Message) -> list[email.message.Message]:
    """The payload of a multipart, message/rfc822 or message/delivery-status entity: the
    parser makes it a list of Message (of header blocks for delivery-status)."""
    return cast("list[email.message.Message]", entity.get_payload())


def _report(
    msg: email.message.Message,
) -> tuple[email.message.Message, list[email.message.Message]]:
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = _parts(msg)
    assert isinstance(parts, list) and len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = _parts(parts[1])
    return parts[2], blocks


def test_bounce_notice_fields(tmp_path: Path) -> None:
    msg, lines = _notice(tmp_path, BOUNCE, envid="ENV-42", notify=Notify.FAILURE)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["To"] == "s@example.org"
    assert msg["Auto-Submitted"] == "auto-replied"
    returned, blocks = _report(msg)
    per_message, per_rcpt = blocks[0], blocks[1]
    assert per_message["Reporting-MTA"] == "dns; mc.example"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["Arrival-Date"]
    assert per_message["X-Postfix-Sender"] == "rfc822; s@example.org"
    assert per_rcpt["Final-Recipient"] == "rfc822; a@example.net"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.example"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user"
    assert returned.get_content_type() == "message/rfc822"
    inner = _parts(returned)[0]
    assert inner["Subject"] == "original"
    assert inner.get_payload() == "the original body\n"
    assert any("sender non-delivery notification" in line for line in lines)


def test_ret_hdrs_returns_headers_only(tmp_path: Path) -> None:
    msg, _ = _notice(tmp_path, BOUNCE, ret="HDRS")
    returned, _blocks = _report(msg)
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload()
    assert "Subject: original" in text and "the original body" not in text


def test_requiretls_notice_is_redacted(tmp_path: Path) -> None:
    """RFC 8689 section 5 (requiretls_redact_dsn = yes): the header only, however RET was
    asked, and the notice itself goes without REQUIRETLS."""
    msg, _ = _notice(tmp_path, BOUNCE, ret="FULL", requiretls=True)
    returned, _blocks = _report(msg)
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload()
    assert "Subject: original" in text and "the original body" not in text
    assert _NOTICE_REQUIRETLS == [False]


def test_requiretls_notice_unredacted_keeps_body_and_requiretls(tmp_path: Path) -> None:
    msg, _ = _notice(tmp_path, BOUNCE, requiretls=True, requiretls_redact_dsn="no")
    returned, _blocks = _report(msg)
    assert returned.get_content_type() == "message/rfc822"
    assert _parts(returned)[0].get_payload() == "the original body\n"
    assert _NOTICE_REQUIRETLS == [True]


def test_notify_never_and_success(tmp_path: Path) -> None:
    msg, lines = _notice(tmp_path / "never", BOUNCE, notify=Notify.NEVER)
    assert msg.get_content_type() == "text/plain" and not any("notification" in x for x in lines)
    msg, lines = _notice(tmp_path / "success", SENT, notify=Notify.SUCCESS)
    _returned, blocks = _report(msg)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert blocks[1]["Action"] == "relayed" and blocks[1]["Status"] == "2.0.0"
    assert any("sender delivery status notification" in x for x in lines)
    # SENT without NOTIFY=SUCCESS: no notice.
    msg, lines = _notice(tmp_path / "quiet", SENT)
    assert not any("notification" in x for x in lines)


def test_no_success_notice_when_the_next_hop_took_the_dsn_request(tmp_path: Path) -> None:
    """Postfix: NOTIFY=SUCCESS to a server that announced DSN travels on with the message;
    the notice is the next hop's to send, not ours."""
    _msg, lines = _notice(tmp_path, SENT, notify=Notify.SUCCESS, action=ACTION_FORWARDED)
    assert not any("notification" in x for x in lines)


def test_delivered_action_for_final_delivery(tmp_path: Path) -> None:
    msg, _lines = _notice(tmp_path, SENT, notify=Notify.SUCCESS, action="delivered")
    _returned, blocks = _report(msg)
    assert blocks[1]["Action"] == "delivered"


async def test_delay_notice(tmp_path: Path) -> None:
    clock = FakeClock()
    cfg = queue_settings(tmp_path, delay_warning_time="1h")
    sp = Spool(tmp_path, clock=clock).ensure()
    opts = SubmitOptions(sender="s@example.org", recipients=("a@example.net",))
    qid = submit_stream(io.BytesIO(BODY), opts, settings=cfg, spool=sp, clock=clock)
    qm = QueueManager(cfg, sp, FakeAgent(lambda _a: DEFER), clock=clock)
    await qm.run_once()
    clock.advance(3600)
    await qm.run_once()
    notices = [i for i in sp.ids("deferred") if i != qid]
    assert len(notices) == 1
    msg = sp.read("deferred", notices[0])
    with open(msg.path, "rb") as f:
        f.seek(msg.envelope.content_offset)
        parsed = email.message_from_bytes(f.read(msg.envelope.size))
    returned, blocks = _report(parsed)
    assert parsed["Subject"] == "Delayed Mail (still being retried)"
    assert blocks[1]["Action"] == "delayed" and blocks[1]["Status"] == "4.4.1"
    assert blocks[1]["Will-Retry-Until"] and "Remote-MTA" not in blocks[1]
    assert blocks[1]["Diagnostic-Code"].startswith("X-Postfix; connect to")
    assert returned.get_content_type() == "text/rfc822-headers"


def test_original_recipient_from_orcpt(tmp_path: Path) -> None:
    from mailcarrier.queue.notices import _orcpt
    from mailcarrier.queue.qfile import QueueRecipient

    assert _orcpt(QueueRecipient("a@x", "", "rfc822;orig@x")) == "rfc822;orig@x"
    assert _orcpt(QueueRecipient("a@x", "o@x")) == "rfc822;o@x"
    assert _orcpt(QueueRecipient("a@x")) == ""


def test_helpers() -> None:
    assert remote_mta("mx.example[192.0.2.1]:25") == "mx.example"
    assert remote_mta("none") == ""
    assert diagnostic_code("connect to x: refused") == "X-Postfix; connect to x: refused"


NOTICE_HEADERS = [
    "From",
    "Subject",
    "To",
    "Auto-Submitted",
    "Date",
    "Message-Id",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
]
PER_MESSAGE = ["Reporting-MTA", "X-Postfix-Queue-ID", "X-Postfix-Sender", "Arrival-Date"]
PER_RECIPIENT = [
    "Final-Recipient",
    "Original-Recipient",  # the DSN original recipient cleanup records (rfc822;...)
    "Action",
    "Status",
    "Remote-MTA",
    "Diagnostic-Code",
    "Last-Attempt-Date",
]
# A stored diagnostic can hold anything: line breaks, a fake boundary, escapes, NUL, C1.
HOSTILE_DIAG = (
    "host mx.example[192.0.2.1] said: 550 5.1.1 no\r\nBcc: x@y\n\n--x\x00\x1b[2J\x7f"
    " é \\xff \x85 (in reply to RCPT TO command)"
)
CLEAN_REPLY = "550 5.1.1 no??Bcc: x@y??--x??[2J? é \\xff ?"


def _field(entity: email.message.Message, name: str) -> str:
    """A field's value as written (UTF-8), whatever the parser made of 8-bit text."""
    for key, value in entity.raw_items():
        if key.lower() == name.lower():
            return str(value).encode("utf-8", "surrogateescape").decode("utf-8")
    raise KeyError(name)


def test_hostile_values_cannot_break_the_notice(tmp_path: Path) -> None:
    verdict = (DeliveryStatus.BOUNCED, "5.1.1", HOSTILE_DIAG)
    msg, lines = _notice(
        tmp_path,
        verdict,
        envid="ENV-1",
        relay="mx\x1b\n.example[192.0.2.1]:25",
        myhostname="mc\x1b\x85.example",
        mail_name="Post\x1bfix",
    )
    assert msg.keys() == NOTICE_HEADERS
    assert msg["From"] == "MAILER-DAEMON@mc??.example (Mail Delivery System)"
    assert msg["To"] == "s@example.org"
    assert msg["Message-Id"].endswith("@mc??.example>")
    assert msg.get_param("boundary").endswith("/mc??.example")  # type: ignore[union-attr]
    text_part = _parts(msg)[0]
    assert text_part.keys() == ["Content-Description", "Content-Type"]
    text = cast("bytes", text_part.get_payload(decode=True)).decode()
    assert text.splitlines()[0] == "This is the mail system at host mc??.example (Post?fix)."
    assert text.splitlines()[-1] == (
        f"<a@example.net>: host mx.example[192.0.2.1] said: {CLEAN_REPLY}"
        " (in reply to RCPT TO command)"
    )
    returned, blocks = _report(msg)
    assert len(blocks) == 2
    assert blocks[0].keys() == [*PER_MESSAGE, "Original-Envelope-Id"]
    assert blocks[0]["Reporting-MTA"] == "dns; mc??.example"
    assert blocks[1].keys() == PER_RECIPIENT
    assert blocks[1]["Remote-MTA"] == "dns; mx??.example"
    assert _field(blocks[1], "Diagnostic-Code") == f"smtp; {CLEAN_REPLY}"
    assert _parts(returned)[0]["Subject"] == "original"
    assert any("sender non-delivery notification" in line for line in lines)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reply=st.binary(max_size=120))
def test_any_reply_bytes_keep_the_notice_structure(tmp_path: Path, reply: bytes) -> None:
    """Whatever the server said (decoded as the reply parser decodes it), the notice has
    the same headers, parts and fields, and the reply is in the Diagnostic-Code."""
    text = reply.decode("utf-8", "backslashreplace")
    diag = f"host mx.example[192.0.2.1] said: 550 {text} (in reply to RCPT TO command)"
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        msg, _ = _notice(Path(tmp), (DeliveryStatus.BOUNCED, "5.1.1", diag))
    assert msg.keys() == NOTICE_HEADERS
    _returned, blocks = _report(msg)
    assert [b.keys() for b in blocks] == [PER_MESSAGE, PER_RECIPIENT]
    masked = "".join(
        "?" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" else c for c in text
    )
    assert _field(blocks[1], "Diagnostic-Code") == f"smtp; 550 {masked}"


def _utf8_notice(tmp_path: Path, sender: str, classes: str, autodetect: bool) -> bool:
    """The SMTPUTF8 flag of a bounce notice to `sender` (its message was submitted with
    smtputf8_autodetect_classes = `classes`; "bounce" listed or not: `autodetect`)."""
    from mailcarrier.queue.notices import NoticeSpec, write_notice
    from mailcarrier.queue.qfile import MessageClass, RecipientState
    from mailcarrier.status import DeliveryStatus

    sp = Spool(tmp_path).ensure()
    cfg = queue_settings(tmp_path, smtputf8_autodetect_classes=classes)
    opts = SubmitOptions(sender=sender, recipients=("a@example.net",))
    qid = submit_stream(io.BytesIO(BODY), opts, settings=cfg, spool=sp)
    message = sp.read("incoming", qid)
    message.state.states[0] = RecipientState(DeliveryStatus.BOUNCED, "5.1.1", "550 no", "none", 0)
    spec = NoticeSpec(
        MessageClass.BOUNCE, "", sender, "mc.example", "Postfix", 0, 0.0,
        smtputf8_autodetect=autodetect,
    )  # fmt: skip
    notice = write_notice(sp, message, [0], spec)
    return sp.read("incoming", notice).envelope.smtputf8


def test_notice_smtputf8_follows_the_bounce_class(tmp_path: Path) -> None:
    """Postfix's bounce(8) posts notices in the "bounce" class: autodetection applies only
    when smtputf8_autodetect_classes lists it; the message's own flag is always kept."""
    assert not _utf8_notice(tmp_path / "1", "zo\u00eb@example.org", "verify", False)
    assert _utf8_notice(tmp_path / "2", "zo\u00eb@example.org", "verify", True)
    assert _utf8_notice(tmp_path / "3", "zo\u00eb@example.org", "sendmail", False)
    # A UTF-8 domain is UTF-8 in the notice's To: header (as cleanup sees the header).
    assert _utf8_notice(tmp_path / "4", "s@b\u00fccher.example", "verify", True)
    assert not _utf8_notice(tmp_path / "5", "s@b\u00fccher.example", "verify", False)
