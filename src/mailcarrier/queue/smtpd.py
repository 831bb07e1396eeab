"""``sendmail -bs``: an SMTP server on standard input and output, as Postfix's smtpd(8) runs
in stand-alone mode, that puts each message it accepts into the queue.

`serve_pipe(src, out, ...)` greets, reads commands (HELO, EHLO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT; VRFY, ETRN, STARTTLS and AUTH are answered as stand-alone smtpd answers them)
and streams each message through submit.py, exactly as ``sendmail`` submits one: the
"250 ... queued as ID" reply goes out only once the queue file is durable. The replies and
limits are Postfix's: a command line longer than line_length_limit gets "500 5.5.2 ...
command too long" and the session goes on; a message over message_size_limit is read to
its end and refused with 552; bad addresses and parameters get 501 or 555; after 20 errors
(smtpd_hard_error_limit's default) the session ends with 421. PIPELINING is offered: the
replies to a batch of commands are written together (smtpd_io.py). An end of input inside
a transaction (after MAIL, or in the middle of DATA) queues nothing of it and is logged
("lost connection after DATA"); what the result says lets the command line report it. No
TLS, no AUTH, no access controls: the client is the local user, as in Postfix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from io import BufferedReader
from typing import BinaryIO, Final

from mailcarrier.config.settings import Settings
from mailcarrier.errors import DataError, MessageTooBigError, TemporaryError
from mailcarrier.log import LogSink
from mailcarrier.queue.addresses import parse_address
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.smtpd_args import (
    MailOptions,
    Refusal,
    mail_options,
    parse_path,
    rcpt_options,
)
from mailcarrier.queue.smtpd_io import DataReader, InputClosed, OutputClosed, PipeInput, Replies
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import RecipientDSN, SubmitOptions, submit_stream

__all__ = ["SessionEnd", "serve_pipe"]

SMTPD: Final = "smtpd"
CLIENT: Final = "localhost[127.0.0.1]"  # Postfix's name for a stand-alone session's client
HARD_ERROR_LIMIT: Final = 20  # Postfix's smtpd_hard_error_limit
RECIPIENT_LIMIT: Final = 1000  # Postfix's smtpd_recipient_limit


class SessionEnd(enum.Enum):
    QUIT = "quit"  # the client said QUIT (or the session ended after 421)
    CLOSED = "closed"  # input ended between transactions: nothing lost
    LOST = "lost"  # input or output ended inside a transaction: it was not queued


@dataclass
class _Transaction:
    sender: str
    options: MailOptions
    recipients: list[str] = field(default_factory=list)
    dsn: list[RecipientDSN] = field(default_factory=list)


class _Session:
    def __init__(
        self, src: BinaryIO, out: BinaryIO, settings: Settings, spool: Spool, log: LogSink
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.log = log
        self.replies = Replies(out)
        self.input = PipeInput(src, self.replies.flush)
        params = QueueParams(settings)
        self.hostname = params.myhostname()
        self.myorigin = params.myorigin()
        self.size_limit = settings.params.message_size_limit
        self.line_limit = settings.params.line_length_limit
        self.utf8 = settings.params.smtputf8_enable
        self.mail_name = settings.params.mail_name or "Postfix"
        self.transaction: _Transaction | None = None
        self.errors = 0
        self.where = "CONNECT"

    def reply(self, line: str) -> None:
        self.replies.add(line)
        if line[:1] in ("4", "5"):
            self.errors += 1

    def run(self) -> SessionEnd:
        self.log.info(SMTPD, f"connect from {CLIENT}")
        self.replies.add(f"220 {self.hostname} ESMTP {self.mail_name}")
        end = SessionEnd.CLOSED
        try:
            end = self._loop()
            self.replies.flush()
        except InputClosed:
            end = SessionEnd.LOST
        except OutputClosed:
            end = SessionEnd.LOST if self.transaction is not None else SessionEnd.CLOSED
        if end is SessionEnd.LOST or (end is SessionEnd.CLOSED and self.transaction is not None):
            self.log.info(SMTPD, f"lost connection after {self.where} from {CLIENT}")
            end = SessionEnd.LOST
        self.log.info(SMTPD, f"disconnect from {CLIENT}")
        return end

    def _loop(self) -> SessionEnd:
        while True:
            if self.errors >= HARD_ERROR_LIMIT:
                self.replies.add(f"421 4.7.0 {self.hostname} Error: too many errors")
                self.log.warning(SMTPD, f"too many errors after {self.where} from {CLIENT}")
                return SessionEnd.QUIT
            got = self.input.command_line(self.line_limit)
            if got is None:
                return SessionEnd.CLOSED
            raw, fits = got
            if not fits:
                self.reply(f"500 5.5.2 {self.hostname} Error: command too long")
                continue
            try:
                line = raw.decode("utf-8" if self.utf8 else "ascii")
            except UnicodeDecodeError:
                self.reply("500 5.5.2 Error: bad UTF-8 syntax")
                continue
            words = line.strip(" \t").split(maxsplit=1)
            verb, arg = [*words, "", ""][:2]
            if self._command(verb.upper(), arg.strip(" \t")):
                return SessionEnd.QUIT

    def _command(self, verb: str, arg: str) -> bool:
        """Run one command; True when the session ends (QUIT)."""
        handler = _COMMANDS.get(verb)
        if handler is None:
            fixed = _FIXED_REPLIES.get(verb)
            self.reply(fixed or "502 5.5.2 Error: command not recognized")
            if not verb:
                self.where = "UNKNOWN"
            return False
        self.where = verb
        try:
            return handler(self, arg)
        except Refusal as refusal:
            self.reply(refusal.reply)
            return False

    # --- commands -----------------------------------------------------------------------
    def helo(self, arg: str, verb: str = "HELO") -> bool:
        if not arg:
            raise Refusal(f"501 Syntax: {verb} hostname")
        self.transaction = None
        if verb == "HELO":
            self.reply(f"250 {self.hostname}")
            return False
        size = f"SIZE {self.size_limit}" if self.size_limit else "SIZE"
        keywords = [self.hostname, "PIPELINING", size, "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"]
        if self.utf8:
            keywords.append("SMTPUTF8")
        for keyword in keywords[:-1]:
            self.reply(f"250-{keyword}")
        self.reply(f"250 {keywords[-1]}")
        return False

    def ehlo(self, arg: str) -> bool:
        return self.helo(arg, "EHLO")

    def mail(self, arg: str) -> bool:
        if self.transaction is not None:
            raise Refusal("503 5.5.1 Error: nested MAIL command")
        address, words = parse_path("FROM", arg, "501 5.5.4 Syntax: MAIL FROM:<address>")
        options = mail_options(words, size_limit=self.size_limit, smtputf8_enable=self.utf8)
        self._check(address, "sender", "501 5.1.7 Bad sender address syntax", options)
        self.transaction = _Transaction(address, options)
        self.reply("250 2.1.0 Ok")
        return False

    def rcpt(self, arg: str) -> bool:
        transaction = self.transaction
        if transaction is None:
            raise Refusal("503 5.5.1 Error: need MAIL command")
        address, words = parse_path("TO", arg, "501 5.5.4 Syntax: RCPT TO:<address>")
        dsn = rcpt_options(words)
        self._check(address, "recipient", "501 5.1.3 Bad recipient address syntax", None)
        if len(transaction.recipients) >= RECIPIENT_LIMIT:
            raise Refusal("452 4.5.3 Error: too many recipients")
        transaction.recipients.append(address)
        transaction.dsn.append(dsn)
        self.reply("250 2.1.5 Ok")
        return False

    def _check(self, address: str, what: str, bad: str, options: MailOptions | None) -> None:
        try:
            parse_address(address, what=what, myorigin=self.myorigin, allow_null=what == "sender")
        except DataError:
            raise Refusal(bad) from None
        utf8 = options.smtputf8 if options is not None else self._smtputf8()
        if not address.isascii() and not utf8:
            raise Refusal("553 5.6.7 Must declare SMTPUTF8 to send unicode address")

    def _smtputf8(self) -> bool:
        return self.transaction is not None and self.transaction.options.smtputf8

    def data(self, arg: str) -> bool:
        transaction = self.transaction
        if arg:
            raise Refusal("501 5.5.4 Syntax: DATA")
        if transaction is None:
            raise Refusal("503 5.5.1 Error: need RCPT command")
        if not transaction.recipients:
            raise Refusal("554 5.5.1 Error: no valid recipients")
        self.replies.add("354 End data with <CR><LF>.<CR><LF>")
        reader = DataReader(self.input)
        result = self._queue(transaction, reader)
        reader.drain()  # after a refusal, to the "." line; nothing when it was queued
        self.transaction = None
        self.reply(result)
        return False

    def _queue(self, transaction: _Transaction, reader: DataReader) -> str:
        """Stream the message into the queue; the reply that says how it went."""
        mail = transaction.options
        options = SubmitOptions(
            sender=transaction.sender,
            recipients=tuple(transaction.recipients),
            recipient_dsn=tuple(transaction.dsn),
            ignore_dots=True,  # the "." line is DataReader's end of input
            ret=mail.ret,
            envid=mail.envid,
            body_type=mail.body,
            smtputf8=mail.smtputf8,
        )
        try:
            stream = BufferedReader(reader)
            queue_id = submit_stream(
                stream, options, settings=self.settings, spool=self.spool, log=self.log
            )
        except MessageTooBigError:
            return "552 5.3.4 Error: message file too big"
        except DataError as exc:
            return f"550 5.6.0 Error: {exc}"
        except TemporaryError as exc:
            self.log.warning(SMTPD, f"{exc}")
            return "451 4.3.0 Error: queue file write error"
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def rset(self, arg: str) -> bool:
        if arg:
            raise Refusal("501 5.5.4 Syntax: RSET")
        self.transaction = None
        self.reply("250 2.0.0 Ok")
        return False

    def noop(self, arg: str) -> bool:
        self.reply("250 2.0.0 Ok")
        return False

    def quit(self, arg: str) -> bool:
        self.transaction = None
        self.reply("221 2.0.0 Bye")
        return True


_COMMANDS: Final = {
    "HELO": _Session.helo,
    "EHLO": _Session.ehlo,
    "MAIL": _Session.mail,
    "RCPT": _Session.rcpt,
    "DATA": _Session.data,
    "RSET": _Session.rset,
    "NOOP": _Session.noop,
    "QUIT": _Session.quit,
}
# What stand-alone smtpd answers to the commands it has but does not offer here.
_FIXED_REPLIES: Final = {
    "": "500 5.5.2 Error: bad syntax",
    "VRFY": "502 5.5.1 VRFY command is disabled",
    "ETRN": "458 Unable to queue messages",
    "STARTTLS": "502 5.5.1 Error: command not implemented",
    "AUTH": "503 5.5.1 Error: authentication not enabled",
    "BDAT": "502 5.5.1 Error: command not implemented",
}


def serve_pipe(
    src: BinaryIO, out: BinaryIO, *, settings: Settings, spool: Spool, log: LogSink
) -> SessionEnd:
    """One SMTP session with the client on `src` (its commands and data) and `out` (the
    replies); each message is queued in `spool` before its 250 reply."""
    return _Session(src, out, settings, spool, log).run()
