"""sendmail's other options as Postfix's sendmail(1) documents them: -B (the body type),
-X (a log file, ignored), -O (requiretls, smtputf8), -o (-oi; the rest ignored), -bh/-bH
(ignored), -N, -R and -V (DSN, kept with the queued message)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailcarrier.cli import run
from mailcarrier.queue.qfile import Envelope, parse_envelope

ASCII = b"Subject: options\n\nplain\n"


def _opts(queue: Path, *more: str) -> list[str]:
    return ["-o", f"queue_directory={queue}", "-o", "myorigin=example.org", *more]


def _run(args: list[str], stdin: bytes = ASCII) -> tuple[int, str]:
    err = io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def _envelope(queue: Path) -> Envelope:
    [path] = (queue / "incoming").iterdir()
    return parse_envelope(path.read_bytes())


@pytest.mark.parametrize(
    ("flags", "content", "encoding"),
    [
        ([], ASCII, "7bit"),
        (["-B", "8BITMIME"], ASCII, "8bit"),  # declared: BODY=8BITMIME when sent
        (["-B", "7BIT"], ASCII, "7bit"),
        # 8-bit data overrides a 7BIT declaration (as 8-bit type information overrides
        # 7-bit in Postfix's cleanup): the server must not be told 7bit for it.
        (["-B", "7BIT"], b"Subject: x\n\ncaf\xc3\xa9\n", "8bit"),
    ],
)
def test_b_sets_the_body_type(
    tmp_path: Path, flags: list[str], content: bytes, encoding: str
) -> None:
    assert _run([*_opts(tmp_path), "sendmail", *flags, "r@example.net"], content) == (0, "")
    assert _envelope(tmp_path).encoding == encoding


def test_b_with_another_value_is_one_line_and_exit_64(tmp_path: Path) -> None:
    code, err = _run([*_opts(tmp_path), "sendmail", "-B", "BINARYMIME", "r@example.net"])
    assert (code, err) == (
        64,
        'mailcarrier: fatal: -B "BINARYMIME": the body type is 7BIT or 8BITMIME\n',
    )
    assert not (tmp_path / "incoming").exists()


def test_x_log_file_is_accepted_and_ignored(tmp_path: Path) -> None:
    log = tmp_path / "traffic.log"
    args = ["sendmail", "-X", str(log), "r@example.net"]
    assert _run([*_opts(tmp_path), *args]) == (0, "")
    assert not log.exists()
    assert [r.address for r in _envelope(tmp_path).recipients] == ["r@example.net"]


@pytest.mark.parametrize("flag", ["-XV", "-XV+="])
def test_verp_is_refused(tmp_path: Path, flag: str) -> None:
    code, err = _run([*_opts(tmp_path), "sendmail", flag, "r@example.net"])
    assert (code, err) == (64, f"mailcarrier: fatal: {flag}: VERP is not supported\n")


def test_capital_o_requiretls_and_smtputf8(tmp_path: Path) -> None:
    args = ["sendmail", "-O", "RequireTLS=yes", "-O", "smtputf8=YES", "-O", "x=1", "r@example.net"]
    assert _run([*_opts(tmp_path), *args]) == (0, "")
    env = _envelope(tmp_path)
    assert (env.requiretls, env.smtputf8) == (True, True)


def test_capital_o_off_in_main_cf_is_a_warning(tmp_path: Path) -> None:
    opts = _opts(tmp_path, "-o", "requiretls_enable=no")
    code, err = _run([*opts, "sendmail", "-O", "requiretls=yes", "r@example.net"])
    assert (code, err) == (
        0,
        'mailcarrier: warning: ignoring "-O requiretls=yes": requiretls_enable = no\n',
    )
    assert _envelope(tmp_path).requiretls is False


def test_capital_o_bad_value(tmp_path: Path) -> None:
    code, err = _run([*_opts(tmp_path), "sendmail", "-O", "smtputf8=maybe", "r@example.net"])
    assert (code, err) == (64, 'mailcarrier: fatal: -O "smtputf8=maybe": smtputf8 is yes or no\n')


def test_small_o_options(tmp_path: Path) -> None:
    """-oi as -i; -o7, -o8, -om and any other -o are ignored (Postfix's sendmail)."""
    args = ["sendmail", "-oi", "-o7", "-o8", "-om", "-oQ/var/spool", "r@example.net"]
    assert _run([*_opts(tmp_path), *args], b"Subject: dots\n\n.\nafter\n") == (0, "")
    [path] = (tmp_path / "incoming").iterdir()
    assert path.read_bytes().endswith(b"\n.\nafter\n")


def test_dsn_options_are_kept(tmp_path: Path) -> None:
    args = ["sendmail", "-N", "success,delay", "-R", "hdrs", "-V", "env-1", "r@example.net"]
    assert _run([*_opts(tmp_path), *args]) == (0, "")
    env = _envelope(tmp_path)
    assert (env.dsn_ret, env.dsn_envid) == ("HDRS", "env-1")
    assert env.recipients[0].dsn_notify.wire() == "SUCCESS,DELAY"


@pytest.mark.parametrize("mode", ["-bh", "-bH"])
def test_host_status_modes_do_nothing(tmp_path: Path, mode: str) -> None:
    assert _run([*_opts(tmp_path), "sendmail", mode]) == (0, "")
    assert not (tmp_path / "incoming").exists()


@pytest.mark.parametrize("envid", ["x" * 101, "two words", "tab\there"])
def test_a_bad_envelope_id_is_a_usage_error(tmp_path: Path, envid: str) -> None:
    code, err = _run([*_opts(tmp_path), "sendmail", "-V", envid, "r@example.net"])
    assert code == 64
    assert err == (
        f"mailcarrier: fatal: -V {envid!r}: an envelope ID is at most 100 printable characters\n"
    )
    assert not (tmp_path / "incoming").exists()


@pytest.mark.parametrize("name", ["", "main.cf"])
def test_capital_c_names_the_directory_or_main_cf(tmp_path: Path, name: str) -> None:
    """-C: the directory of main.cf or the file itself, as Postfix's sendmail takes it."""
    config = tmp_path / "etc"
    config.mkdir()
    queue = tmp_path / "queue"
    (config / "main.cf").write_text(f"queue_directory = {queue}\nmyorigin = example.org\n")
    given = str(config / name) if name else str(config)
    assert _run(["sendmail", "-C", given, "-f", "s", "r@example.net"]) == (0, "")
    assert _envelope(queue).sender == "s@example.org"
