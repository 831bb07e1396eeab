"""Tests for config/postconf.py: `mailcarrier conf` modes, output formats and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mailcarrier.config import PARAMS
from mailcarrier.config.postconf import conf_main

MAIN_CF = """\
# site settings
myhostname = mx.example.org
relayhost = [relay.example]:587
smtp_helo_name = $myhostname
custom_unused = 1
"""


def _run(argv: list[str], config_dir: Path | None, **overrides: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = conf_main(argv, config_dir, overrides, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "main.cf").write_text(MAIN_CF)
    return tmp_path


def test_all_parameters(conf_dir: Path) -> None:
    code, out, err = _run([], conf_dir)
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == len(PARAMS) + 1  # plus the user-defined custom_unused
    assert "relayhost = [relay.example]:587" in lines
    assert "smtp_helo_name = $myhostname" in lines
    assert "soft_bounce = no" in lines
    assert "maillog_file =" in lines  # empty values print as "name =", as postconf does
    assert lines == sorted(lines)
    assert err == f"mailcarrier: warning: {conf_dir}/main.cf:5: unused parameter: custom_unused=1\n"


def test_non_default_expanded_and_overrides(conf_dir: Path) -> None:
    code, out, _ = _run(["-nx"], conf_dir, soft_bounce="yes")
    assert code == 0
    assert out == (
        "custom_unused = 1\n"
        "myhostname = mx.example.org\n"
        "relayhost = [relay.example]:587\n"
        "smtp_helo_name = mx.example.org\n"
        "soft_bounce = yes\n"
    )


def test_selected_names_value_only_and_unknown(conf_dir: Path) -> None:
    code, out, err = _run(["-h", "-x", "lmtp_lhlo_name", "no_such_thing", "relayhost"], conf_dir)
    assert (code, out) == (0, "mx.example.org\n[relay.example]:587\n")
    assert "mailcarrier: warning: no_such_thing: unknown parameter\n" in err


def test_defaults(conf_dir: Path) -> None:
    code, out, err = _run(["-d", "relayhost", "smtp_helo_name", "smtp_tls_protocols"], conf_dir)
    assert (code, err) == (0, "")
    assert out == "relayhost =\nsmtp_helo_name = $myhostname\nsmtp_tls_protocols = >=TLSv1\n"
    code, out, _ = _run(["-dx", "syslog_name"], conf_dir)
    assert out == "syslog_name = postfix\n"
    code, out, err = _run(["-d", "custom_unused", "soft_bounce"], conf_dir)
    assert (code, out) == (0, "soft_bounce = no\n")
    assert err == "mailcarrier: warning: custom_unused: unknown parameter\n"


def test_json(conf_dir: Path) -> None:
    code, out, _ = _run(["--json", "-n"], conf_dir)
    assert code == 0
    assert json.loads(out) == {
        "custom_unused": "1",
        "myhostname": "mx.example.org",
        "relayhost": "[relay.example]:587",
        "smtp_helo_name": "$myhostname",
    }
    code, out, _ = _run(["--json"], conf_dir)
    assert set(json.loads(out)) == set(PARAMS) | {"custom_unused"}


def test_json_and_warnings_with_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """main.cf is bytes to Postfix: a value that is not UTF-8 still gives JSON a strict
    parser reads (U+FFFD), and a warning quoting a name stays one printable line."""
    (tmp_path / "main.cf").write_bytes(b"mail_name = Post\xfffix\ncustom_x = a\x1bb\n")
    code, out, err = _run(["--json", "-n"], tmp_path)
    assert code == 0
    data = json.loads(out)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate
    assert data == {"mail_name": "Post\ufffdfix", "custom_x": "a\x1bb"}
    assert err == f"mailcarrier: warning: {tmp_path}/main.cf:2: unused parameter: custom_x=a?b\n"
    (tmp_path / "main.cf").write_bytes(b"custom\x1b[2J = 1\n")
    code, _, err = _run(["-n"], tmp_path)
    assert (code, err) == (
        78,
        f'mailcarrier: fatal: {tmp_path}/main.cf:1: bad parameter name: "custom?[2J"\n',
    )
    (tmp_path / "main.cf").write_bytes(b"")
    code, _, err = _run(["no_such\x1b[2J"], tmp_path)
    assert (code, err) == (0, "mailcarrier: warning: no_such?[2J: unknown parameter\n")


def test_edit(conf_dir: Path) -> None:
    code, out, err = _run(["-e", "relayhost=[new]:25", "smtp_connect_timeout = 10s"], conf_dir)
    assert (code, out, err) == (0, "", "")
    text = (conf_dir / "main.cf").read_text()
    assert (
        text == MAIN_CF.replace("[relay.example]:587", "[new]:25") + "smtp_connect_timeout = 10s\n"
    )
    assert _run(["-X", "custom_unused"], conf_dir)[0] == 0
    assert "custom_unused" not in (conf_dir / "main.cf").read_text()


def test_edit_that_would_break_the_config_is_refused(conf_dir: Path) -> None:
    code, _, err = _run(["-e", "smtp_connect_timeout=soon"], conf_dir)
    assert code == 78
    assert err.startswith(
        f"mailcarrier: fatal: {conf_dir}/main.cf:6: parameter smtp_connect_timeout"
    )
    assert err.count("\n") == 1
    assert (conf_dir / "main.cf").read_text() == MAIN_CF


def test_edit_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert _run(["-e", "relayhost=[r]"], None)[0] == 0
    assert (tmp_path / "mailcarrier" / "main.cf").read_text() == "relayhost = [r]\n"
    code, out, _ = _run(["relayhost"], None)
    assert (code, out) == (0, "relayhost = [r]\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["-q"],
        ["-n", "-d"],
        ["-e"],
        ["-e", "novalue"],
        ["-e", "bad name=1"],
        ["-X"],
        ["-e", "-X", "a"],
    ],
)
def test_usage_errors(conf_dir: Path, argv: list[str]) -> None:
    code, out, err = _run(argv, conf_dir)
    assert (code, out) == (64, "")
    assert err.count("\n") == 1


def test_config_errors(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("soft_bounce = perhaps\n")
    code, out, err = _run([], tmp_path)
    assert (code, out) == (78, "")
    assert (
        err == f"mailcarrier: fatal: {tmp_path}/main.cf:1: parameter soft_bounce: "
        'bad boolean value "perhaps" (want yes or no)\n'
    )
    assert _run([], tmp_path / "missing")[0] == 78
    code, _, err = _run([], tmp_path, **{"bad name": "1"})
    assert code == 78


def test_defaults_that_differ_from_the_manual_say_why(conf_dir: Path) -> None:
    code, out, _ = _run(["-d", "--notes", "smtp_line_length_limit", "mail_name"], conf_dir)
    assert code == 0
    assert out == (
        "smtp_line_length_limit = 998\n"
        "# smtp(8) manual: 990; Postfix 2.9 and later: 998 (RFC 5321's 1000 with CRLF)\n"
        "mail_name = Postfix\n"
    )
    code, out, _ = _run(["-dh", "--notes", "smtp_line_length_limit"], conf_dir)
    assert out == "998\n"  # values only: nothing else
    code, out, _ = _run(["-d", "smtp_line_length_limit"], conf_dir)
    assert out == "smtp_line_length_limit = 998\n"  # postconf's output, as it is
    _, out, _ = _run(["-d"], conf_dir)
    assert "#" not in "".join(line[:1] for line in out.splitlines())  # the listing stays plain
    _, out, _ = _run(["-d", "--notes"], conf_dir)
    noted = [n for n, p in PARAMS.items() if p.note]
    assert sum(line.startswith("# ") for line in out.splitlines()) == len(noted)


def test_unknown_and_undefined_names_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        "relay_host = [a.example]\nmyhostname = mx.$my_domain\ncost = $$5 ${unset?x}\n"
    )
    code, _, err = _run(["-n"], tmp_path)
    assert code == 0
    assert err.splitlines() == [
        f"mailcarrier: warning: {tmp_path}/main.cf:1: unused parameter: "
        'relay_host=[a.example] (did you mean "relayhost"?)',
        f"mailcarrier: warning: {tmp_path}/main.cf:3: unused parameter: cost=$$5 ${{unset?x}}",
        f"mailcarrier: warning: {tmp_path}/main.cf:2: undefined parameter: "
        'my_domain (did you mean "mydomain"?)',
    ]
