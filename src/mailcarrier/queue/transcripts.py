"""Postmaster notices with a session transcript (Postfix's smtp_chat_notify()).

`TranscriptNotifier` is the delivery agent's `notify` hook in the queue: when a session ran
into an error class listed in ``notify_classes`` (see delivery/transcript.py), it queues a
plain-text message to ``error_notice_recipient`` from ``double_bounce_sender``, subject
"<mail_name> SMTP client: errors from host[addr]:port", with the conversation wrapped at 78
columns, every line indented (text that came from the network never starts a line) and made
printable as Postfix's printable() does; header values (the peer in the subject, the
recipient, myhostname, mail_name) are cleaned the same way (queue/headers.py), so no reply or
host name can end a header. The notice is of the postmaster class: if it cannot be
delivered it is dropped, never bounced. If it cannot be queued (a full disk, a read-only
queue) one warning says so and the delivery that called goes on: a transcript is advice,
never a reason to stop delivering. Its 8-bit content and SMTPUTF8 flag are found as for any
new message (delivery/autodetect.py), in the "notify" class of smtputf8_autodetect_classes.
"""

from __future__ import annotations

import email.utils
import textwrap
import time
from collections.abc import Callable
from typing import Final

from mailcarrier.delivery.autodetect import (
    ContentScan,
    MailSource,
    smtputf8_autodetect,
    wants_smtputf8,
)
from mailcarrier.delivery.transcript import SessionTranscript
from mailcarrier.errors import TemporaryError
from mailcarrier.events import notice_event
from mailcarrier.log import LogSink, log_event
from mailcarrier.queue.addresses import qualify
from mailcarrier.queue.headers import field_text
from mailcarrier.queue.names import BOUNCE
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import Envelope, MessageClass, QueueRecipient
from mailcarrier.queue.spool import Spool

__all__ = ["TranscriptNotifier", "render_transcript"]

_WIDTH: Final = 78
_INDENT: Final = 4


def render_transcript(transcript: SessionTranscript, mail_name: str) -> tuple[str, list[str]]:
    """The subject and body lines of a transcript notice."""
    proto = "LMTP" if transcript.lmtp else "SMTP"
    peer = field_text(transcript.peer)
    subject = f"{field_text(mail_name)} {proto} client: errors from {peer}"
    body = [f"Unexpected response from {peer}.", "", "Transcript of session follows."]
    body.append("")
    for line in transcript.lines:
        wrapped = textwrap.wrap(
            field_text(line),
            width=_WIDTH,
            subsequent_indent=" " * _INDENT,
            break_long_words=True,
            break_on_hyphens=False,
        ) or [""]
        body += [" " + part for part in wrapped]
    body += ["", "For other details, see the local mail logfile"]
    return subject, body


class TranscriptNotifier:
    """Queues a transcript notice for each session that had an error the postmaster wants."""

    def __init__(
        self,
        spool: Spool,
        params: QueueParams,
        log: LogSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.log = log
        self.clock = clock
        myorigin = params.myorigin()
        self.hostname = params.myhostname()
        self.mail_name = params.main.mail_name or "Postfix"
        self.sender = qualify(params.main.double_bounce_sender, myorigin)
        self.recipient = qualify(params.main.error_notice_recipient or "postmaster", myorigin)
        self.classes = frozenset(c.lower() for c in params.main.notify_classes)
        # Postfix posts these in the "notify" class of smtputf8_autodetect_classes.
        self.smtputf8_autodetect = smtputf8_autodetect(params.settings, MailSource.NOTIFY)

    def __call__(self, transcript: SessionTranscript) -> None:
        if not transcript.errors & self.classes:
            return
        about = f"{transcript.queue_id}: " if transcript.queue_id else ""
        try:
            new_id = self._write(transcript)
        except TemporaryError as exc:
            self.log.warning(BOUNCE, f"{about}postmaster transcript notification: {exc}")
            return
        what = "postmaster transcript notification"
        event = notice_event(
            transcript.queue_id,
            notice="transcript",
            what=what,
            notice_queue_id=new_id,
            to=self.recipient,
            nrcpt=0,
        )
        log_event(self.log, BOUNCE, f"{about}{what}: {new_id}", event)

    def _write(self, transcript: SessionTranscript) -> str:
        subject, body = render_transcript(transcript, self.mail_name)
        now = self.clock()
        queue_id = self.spool.new_id()
        host = field_text(self.hostname)
        header = [
            f"From: MAILER-DAEMON@{host} (Mail Delivery System)",
            f"To: {field_text(self.recipient)} (Postmaster)",
            f"Subject: {subject}",
            "Auto-Submitted: auto-generated",
            f"Date: {email.utils.formatdate(now, localtime=True)}",
            f"Message-Id: <{queue_id}@{host}>",
            "",
        ]
        data = ("\n".join(header + body) + "\n").encode("utf-8")
        scan = ContentScan(len(data))
        scan.feed(data)
        envelope = Envelope(
            queue_id=queue_id,
            sender=self.sender,
            recipients=(QueueRecipient(self.recipient, self.recipient),),
            arrival_time=now,
            message_class=MessageClass.POSTMASTER,
            encoding="8bit" if scan.eight_bit else "7bit",
            smtputf8=wants_smtputf8(
                self.smtputf8_autodetect,
                addresses=(self.sender, self.recipient),
                header_utf8=scan.finish().header_utf8,
            ),
        )
        with self.spool.create(envelope) as writer:
            writer.write(data)
            return writer.commit()
