"""lean/mainconf.py against config/settings.py: a main.cf the lean path takes is one that
`Settings.load` takes too, with the same queue directory, host names and limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.lean.mainconf import Conf, is_host_name, load
from mailcarrier.queue.params import QueueParams

LINES = [
    "queue_directory = /var/spool/mc",
    "queue_directory =",
    "queue_directory = relative/queue",
    "queue_directory = /a//b",
    "queue_directory = ~/queue",
    "queue_directory = /$x",
    "myhostname = mx.example.org",
    "myhostname = mx",
    "myhostname =",
    "myhostname = -bad.example",
    "myhostname = under_score.example",
    "mydomain = example.com",
    "mydomain =",
    "myorigin = example.net",
    "myorigin =",
    "myorigin = $mydomain",
    "myorigin = $(myhostname)",
    "myorigin = ${mydomain}",
    "myorigin = $myhostname$mydomain",
    "message_size_limit = 1000",
    "message_size_limit = 0",
    "message_size_limit = -1",
    "message_size_limit = 10k",
    "header_size_limit = 0",
    "header_size_limit = 2048",
    "header_size_limit = \u0661\u0662",
    "smtputf8_enable = Yes",
    "smtputf8_enable = on",
    "requiretls_enable = no",
    "maillog_file =",
    "maillog_file = /dev/stderr",
    "event_log_file = /tmp/events",
    "relayhost = [192.0.2.1]",
    "relayhost = $mydomain",
    "smtp_tls_security_level = may",
    "smtp_helo_timeout = 30s",
    "smtp_helo_timeout = 30x",
    "smtp_line_length_limit = 1",
    "default_destination_concurrency_limit = 0",
    "relay_destination_concurrency_limit = 2",
    "smtp_sasl_password_maps = hash:/etc/x",
    "smtputf8_autodetect_classes = sendmail, bogus",
    "compatibility_level = 2",
    "process_name = x",
    "unknown_parameter = 1",
    "# comment",
    "  continued",
    "bad line",
    "bad-name = x",
    "MYHOSTNAME = x",
]


def _general(directory: Path | None) -> Conf | str:
    try:
        loaded = Settings.load(directory)
    except ConfigError as exc:
        return f"error: {exc}"
    params = QueueParams(loaded)
    return Conf(
        str(params.queue_directory()),
        params.myhostname(),
        params.myorigin(),
        loaded.params.header_size_limit,
        loaded.params.message_size_limit,
    )


def _fields(conf: Conf | str) -> object:
    if isinstance(conf, str):
        return conf
    return (
        conf.queue,
        conf.myhostname,
        conf.myorigin,
        conf.header_size_limit,
        conf.message_size_limit,
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(lines=st.lists(st.sampled_from(LINES), max_size=5))
def test_what_it_takes_settings_take_alike(tmp_path: Path, lines: list[str]) -> None:
    (tmp_path / "main.cf").write_text("\n".join(lines) + "\n")
    lean = load(str(tmp_path))
    if lean is not None:
        assert _fields(lean) == _fields(_general(tmp_path))


def test_the_per_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    lean = load(None)
    assert lean is not None
    assert lean.queue == str(tmp_path / "state" / "mailcarrier" / "queue")
    assert _fields(lean) == _fields(_general(None))
    (tmp_path / "config" / "mailcarrier").mkdir(parents=True)
    (tmp_path / "config" / "mailcarrier" / "main.cf").write_text("myorigin = example.org\n")
    lean = load(None)
    assert lean is not None and lean.myorigin == "example.org"
    assert _fields(lean) == _fields(_general(None))
    (tmp_path / "config" / "mailcarrier" / "master.cf").write_text("")
    assert load(None) is None  # master.cf: the general path's


def test_a_main_cf_file_names_its_directory(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("myhostname = mx.example.org\n")
    lean = load(str(tmp_path / "main.cf"))
    assert lean is not None and lean.myhostname == "mx.example.org"


@pytest.mark.parametrize(
    "text",
    [
        "relayhost = $mydomain\n",  # an expression
        "smtp_tls_security_level = may\n",  # a default refers to it
        "smtp_helo_timeout = 30x\n",  # not a time
        "myorigin = $myhostname.example\n",  # an expression
        "event_log_file = /var/log/events.jsonl\n",  # event records
        "bad line\n",
        "header_size_limit = 0\n",  # below the minimum
    ],
)
def test_the_rest_is_left_to_the_general_path(tmp_path: Path, text: str) -> None:
    (tmp_path / "main.cf").write_text(text)
    assert load(str(tmp_path)) is None


def test_a_missing_directory_is_left_to_the_general_path(tmp_path: Path) -> None:
    assert load(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mx.example.org", True),
        ("a", True),
        ("a-b.c", True),
        ("-a", False),
        ("a.", False),
        ("a..b", False),
        ("a_b", False),
        ("é.x", False),
        ("", False),
    ],
)
def test_host_names(name: str, expected: bool) -> None:
    assert is_host_name(name) is expected
