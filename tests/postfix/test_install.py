"""``mailcarrier postfix install`` and ``check`` against a Postfix configuration directory of
the test's own (Postfix's real postconf(1) reads and edits it; no Postfix runs, and nothing
outside the test's directory changes: its main.cf names a private daemon_directory).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from mailcarrier.cli import run

pytestmark = pytest.mark.skipif(
    not os.access("/usr/sbin/postconf", os.X_OK), reason="Postfix's postconf is not installed"
)
SCRIPT = Path(sys.executable).parent / "mailcarrier-smtp"


@pytest.fixture
def postfix_dir(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    for sub in ("conf", "daemon", "queue"):
        (tmp_path / sub).mkdir()
    (conf / "main.cf").write_text(
        f"daemon_directory = {tmp_path / 'daemon'}\n"
        f"queue_directory = {tmp_path / 'queue'}\n"
        "myhostname = mta.test.local\n"
        "relayhost = [127.0.0.1]:2525\n"
    )
    (conf / "master.cf").write_text(
        "smtp      unix  -       -       y       -       -       smtp\n"
        "relay unix - - y - 7 smtp -o syslog_name=postfix/relay\n"
    )
    return tmp_path


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(["postfix", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_check_names_every_problem_of_a_stock_postfix(postfix_dir: Path) -> None:
    code, out, err = _run("check", "-c", str(postfix_dir / "conf"))
    assert (code, err) == (78, "")
    daemon = postfix_dir / "daemon"
    assert out.splitlines() == [
        f"{daemon}/mailcarrier-smtp is missing: run mailcarrier postfix install",
        "master.cf service smtp/unix runs smtp, not mailcarrier-smtp",
        "master.cf service smtp/unix has chroot y: mailcarrier needs n",
    ]


def test_dry_run_changes_nothing(postfix_dir: Path) -> None:
    conf = postfix_dir / "conf"
    before = (conf / "master.cf").read_text()
    code, out, _ = _run("install", "-c", str(conf), "--service", "relay", "--dry-run")
    assert code == 0
    assert not (postfix_dir / "daemon" / "mailcarrier-smtp").exists()
    assert (conf / "master.cf").read_text() == before
    assert out.splitlines()[1] == (
        "master.cf line: relay unix - - n - 7 mailcarrier-smtp -o syslog_name=postfix/relay"
    )
    assert "to go back: postconf -M 'relay/unix=relay unix - - y - 7 smtp -o" in out


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the mailcarrier-smtp script is not installed")
def test_apply_then_check_is_clean(postfix_dir: Path) -> None:
    conf = postfix_dir / "conf"
    code, out, _ = _run("install", "-c", str(conf), "--apply")
    assert code == 0, out
    link = postfix_dir / "daemon" / "mailcarrier-smtp"
    assert link.is_symlink() and link.resolve() == SCRIPT.resolve()
    lines = [line.split() for line in (conf / "master.cf").read_text().splitlines()]
    assert ["smtp", "unix", "-", "-", "n", "-", "-", "mailcarrier-smtp"] in lines
    assert _run("check", "-c", str(conf)) == (0, "", "")


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the mailcarrier-smtp script is not installed")
def test_check_loads_main_cf_as_the_agent_does(postfix_dir: Path) -> None:
    conf = postfix_dir / "conf"
    assert _run("install", "-c", str(conf), "--apply")[0] == 0
    with (conf / "main.cf").open("a") as main_cf:
        main_cf.write("smtp_helo_timeout = soon\n")
    code, out, _ = _run("check", "-c", str(conf))
    assert code == 78
    (line,) = out.splitlines()
    assert "smtp_helo_timeout" in line and "main.cf" in line


def test_without_postfix_configuration_one_line_and_69(tmp_path: Path) -> None:
    code, out, err = _run("check", "-c", str(tmp_path / "nowhere"))
    assert (code, out) == (69, "")
    assert err.startswith("mailcarrier: fatal: ") and err.count("\n") == 1
