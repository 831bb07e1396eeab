"""The API's Postfix lines are records on the application's `logging` (log.py's LoggerLog):
on ``mailcarrier.<process>`` loggers, printable, with the process name in an attribute;
nothing printed when the application configured no logging."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import mailcarrier
from mailcarrier.log import LoggerLog
from tests.support.peers.aiosmtpd_server import AiosmtpdServer


def test_delivery_lines_reach_the_applications_handlers(
    smtp_server: AiosmtpdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailcarrier")
    request = mailcarrier.make_request(
        b"Subject: x\n\nx\n", sender="a@example.org", recipients=["b@example.net"],
        nexthop=smtp_server.nexthop,
    )  # fmt: skip
    result = mailcarrier.deliver_sync(request)
    assert result.recipients[0].status is mailcarrier.DeliveryStatus.SENT
    (record,) = [r for r in caplog.records if "to=<b@example.net>" in r.getMessage()]
    assert record.name == "mailcarrier.smtp" and record.levelno == logging.INFO
    assert record.postfix_process == "smtp"  # type: ignore[attr-defined]
    assert record.getMessage().startswith(f"{request.queue_id}: to=<b@example.net>, relay=")
    assert "status=sent (250 " in record.getMessage()


def test_text_from_outside_is_made_printable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailcarrier")
    LoggerLog().warning("smtp\n", "host said: 550 evil\r\nforged: line\x1b[31m")
    (record,) = caplog.records
    assert record.name == "mailcarrier.smtp?"
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "host said: 550 evil??forged: line?[31m"


def test_nothing_is_printed_without_logging_configured() -> None:
    code = (
        "from mailcarrier.log import LoggerLog\n"
        "import mailcarrier\n"
        "LoggerLog().warning('smtp', 'a warning nobody asked to see')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("", "")
