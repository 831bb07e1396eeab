"""`mailcarrier conf -P`: master.cf services' -o settings, as postconf -P prints them (and,
where Postfix's postconf is installed, byte for byte the same as its output)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mailcarrier.config.postconf import conf_main

MAIN_CF = "myhostname = mc.example\nrelay_helo = relay.$myhostname\n"
MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
named     unix  -       -       n       -       -       smtp
    -o smtp_helo_name=$relay_helo -o { syslog_name = mc/$service_name }
    -vosmtp_bind_address=127.0.0.2
"""
ALL = """\
submission/inet/smtpd_tls_security_level = encrypt
submission/inet/syslog_name = postfix/submission
named/unix/smtp_bind_address = 127.0.0.2
named/unix/smtp_helo_name = $relay_helo
named/unix/syslog_name = mc/$service_name
"""


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "main.cf").write_text(MAIN_CF)
    (tmp_path / "master.cf").write_text(MASTER_CF)
    return tmp_path


def _run(argv: list[str], config_dir: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = conf_main(argv, config_dir, {}, out, err)
    return code, out.getvalue(), err.getvalue()


def test_all_services(conf_dir: Path) -> None:
    assert _run(["-P"], conf_dir) == (0, ALL, "")


def test_expanded_as_the_service_sees_them(conf_dir: Path) -> None:
    assert _run(["-Px", "named"], conf_dir) == (
        0,
        "named/unix/smtp_bind_address = 127.0.0.2\n"
        "named/unix/smtp_helo_name = relay.mc.example\n"
        "named/unix/syslog_name = mc/named\n",
        "",
    )


def test_patterns_values_json_and_unmatched(conf_dir: Path) -> None:
    assert _run(["-P", "-h", "named/unix/smtp_helo_name"], conf_dir) == (0, "$relay_helo\n", "")
    code, out, err = _run(["-P", "--json", "*/inet/syslog_name", "nosuch"], conf_dir)
    assert code == 0 and json.loads(out) == {"submission/inet/syslog_name": "postfix/submission"}
    assert err == 'mailcarrier: warning: unmatched request: "nosuch"\n'
    assert _run(["-P", "a/b/c/d"], conf_dir) == (
        64,
        "",
        "mailcarrier: conf: -P needs service_name[/type[/parameter]]\n",
    )


def test_notes_say_which_services_are_not_run(conf_dir: Path) -> None:
    code, out, _ = _run(["-P", "--notes"], conf_dir)
    assert code == 0
    assert out.splitlines()[0] == "# smtp/inet: command smtpd is not used by mailcarrier"
    assert "# submission/inet: command smtpd is not used by mailcarrier" in out.splitlines()


def test_without_master_cf(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("")
    assert _run(["-P"], tmp_path) == (0, "", "")


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix's postconf not installed")
@pytest.mark.parametrize("argv", [["-P"], ["-Px", "named"], ["-P", "submission/inet"]])
def test_same_as_postconf(conf_dir: Path, argv: list[str]) -> None:
    postconf = shutil.which("postconf")
    assert postconf is not None
    theirs = subprocess.run(
        [postconf, "-c", str(conf_dir), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert _run(argv, conf_dir) == (0, theirs, "")
