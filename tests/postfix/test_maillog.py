"""postfix/maillog.py: an agent logs where Postfix's daemons log. With maillog_file, to the
postlogd socket under queue_directory (a real datagram socket stands in for postlogd, and
the bytes are checked); without, to syslog as ``syslog_name/process``; before the settings
exist, from what master(8) exports.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.loghandlers import LineHandler, PostlogHandler, SyslogHandler
from mailcarrier.postfix.maillog import bootstrap_log, native_log, postlog_path
from mailcarrier.postfix.options import load_settings, parse_argv


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def postlogd(short_tmp: Path) -> Iterator[socket.socket]:
    (short_tmp / "public").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(short_tmp / "public" / "postlog"))
    sock.settimeout(5)
    yield sock
    sock.close()


def _settings(directory: Path, *lines: str, argv: tuple[str, ...] = ()) -> Settings:
    (directory / "main.cf").write_text("\n".join(lines) + "\n")
    options = parse_argv(["/x/smtp", *argv, "-t", "unix"])
    return load_settings(options, {"MAIL_CONFIG": str(directory)}, cwd=str(directory))


def test_with_maillog_file_lines_go_to_postlogd(
    short_tmp: Path, postlogd: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(
        short_tmp,
        "myhostname = mta.test.local",
        f"maillog_file = {short_tmp}/maillog",
        f"maillog_file_prefixes = /var, {short_tmp}",
        argv=("-n", "relay", "-o", "syslog_name=postfix/$service_name"),
    )
    assert postlog_path(settings) == f"{short_tmp}/public/postlog"
    sink = native_log(settings)
    monkeypatch.setattr(sink, "clock", lambda: 86400.0 * 31)
    sink.info("smtp", "Q1: to=<a@x>, status=sent (250 2.0.0 Ok)")
    assert postlogd.recv(4096) == (
        b"Feb 01 00:00:00 mta postfix/relay/smtp[%d]: Q1: to=<a@x>, status=sent (250 2.0.0 Ok)"
        % os.getpid()
    )
    sink.close()


def test_a_maillog_file_outside_the_prefixes_is_refused(short_tmp: Path) -> None:
    settings = _settings(short_tmp, "maillog_file = /tmp/elsewhere")
    with pytest.raises(ConfigError) as info:
        native_log(settings)
    assert str(info.value) == (
        "maillog_file value '/tmp/elsewhere' does not match any prefix in maillog_file_prefixes"
    )
    assert info.value.parameter == "maillog_file"


def test_without_maillog_file_syslog_as_postfix_daemons(short_tmp: Path) -> None:
    settings = _settings(short_tmp, "syslog_name = postfix-out", "syslog_facility = local3")
    sink = native_log(settings, stderr=True)
    syslog, stderr = sink.handlers
    assert isinstance(syslog, SyslogHandler) and isinstance(stderr, LineHandler)
    assert (syslog.syslog_name, syslog.facility) == ("postfix-out", 19 << 3)
    sink.close()


def test_bootstrap_from_what_master_exports(short_tmp: Path, postlogd: socket.socket) -> None:
    environ = {
        "MAIL_LOGTAG": "postfix-b",
        "POSTLOG_SERVICE": f"{short_tmp}/public/postlog",
        "POSTLOG_HOSTNAME": "mta.test.local",
    }
    sink = bootstrap_log(environ)
    sink.clock = lambda: 0.0
    sink.fatal("smtp", 'unexpected process name "agent"')
    assert postlogd.recv(4096) == (
        b'Jan 01 00:00:00 mta postfix-b/smtp[%d]: fatal: unexpected process name "agent"'
        % os.getpid()
    )
    sink.close()
    (syslog,) = bootstrap_log({"MAIL_LOGTAG": "postfix-b"}).handlers
    assert isinstance(syslog, SyslogHandler) and syslog.syslog_name == "postfix-b"
    (handler,) = bootstrap_log(environ).handlers
    assert isinstance(handler, PostlogHandler) and handler.path == environ["POSTLOG_SERVICE"]
