"""Tests for config/settings.py: loading, overrides, validation errors, warnings, views."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mailcarrier.config import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.tables import TableError


def _dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "main.cf").write_text(text)
    return tmp_path


def test_defaults_need_no_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nonexistent"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings.defaults()
    assert settings.config_dir is None
    assert settings.get_str("queue_directory") == str(tmp_path / "state/mailcarrier/queue")
    assert settings.get_str("config_directory") == str(tmp_path / "nonexistent/mailcarrier")
    assert settings.get_str("syslog_name") == "postfix"
    assert "." in settings.get_str("myhostname")
    assert settings.get_str("mydomain") == settings.get_str("myhostname").split(".", 1)[1]
    assert settings.get_time("smtp_connect_timeout") == 30.0
    assert settings.get_int("smtp_destination_recipient_limit") == 50
    assert settings.get_size("message_size_limit") == 10240000
    assert settings.warnings == ()
    assert not (tmp_path / "state").exists()
    assert Settings.load().config_dir is None


def test_load_without_dir_reads_the_per_user_main_cf(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "mailcarrier").mkdir()
    _dir(tmp_path / "mailcarrier", "relayhost = [r.example]\n")
    settings = Settings.load()
    assert settings.config_dir == tmp_path / "mailcarrier"
    assert settings.get_list("relayhost") == ("[r.example]",)


def test_load_and_expand(tmp_path: Path) -> None:
    settings = Settings.load(
        _dir(
            tmp_path,
            "myhostname = mx.example.org\nmulti_instance_name = b\n"
            "smtp_helo_name = ${myhostname}\n",
        ),
        {"relayhost": "[relay]:587"},
    )
    assert settings.get_str("mydomain") == "example.org"
    assert settings.get_str("lmtp_lhlo_name") == "mx.example.org"
    assert settings.get_str("syslog_name") == "b"
    assert settings.get_list("mydestination") == (
        "mx.example.org",
        "localhost.example.org",
        "localhost",
    )
    assert settings.expanded("smtp_helo_name") == "mx.example.org"
    assert settings.raw("smtp_helo_name") == "${myhostname}"
    assert settings.is_set("relayhost") and not settings.is_set("myorigin")
    assert settings.source("relayhost") is not None
    assert settings.source("relayhost").filename == "-o"  # type: ignore[union-attr]
    assert settings.default("smtp_helo_name") == "$myhostname"
    assert list(settings.non_default()) == [
        "myhostname",
        "multi_instance_name",
        "smtp_helo_name",
        "relayhost",
    ]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope")


@pytest.mark.parametrize(
    ("text", "parameter", "message"),
    [
        (
            "\n\nsmtp_always_send_ehlo = maybe\n",
            "smtp_always_send_ehlo",
            'bad boolean value "maybe"',
        ),
        ("x = 1\nsmtp_connect_timeout = 10 minutes\n", "smtp_connect_timeout", "bad time value"),
        (
            "smtp_tls_security_level = sometimes\n",
            "smtp_tls_security_level",
            'unknown value "sometimes"',
        ),
        ("smtp_generic_maps = dbm:/x\n", "smtp_generic_maps", "unsupported dictionary type"),
        ("smtp_mx_address_limit = -1\n", "smtp_mx_address_limit", "below the minimum"),
        (
            "default_destination_recipient_limit = lots\n",
            "default_destination_recipient_limit",
            "bad numerical",
        ),
        (
            "my = lots\nsmtp_mx_session_limit = $my\n",
            "smtp_mx_session_limit",
            'bad numerical value "lots"',
        ),
    ],
)
def test_bad_values_name_parameter_value_and_line(
    tmp_path: Path, text: str, parameter: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(_dir(tmp_path, text))
    error = info.value
    assert error.parameter == parameter
    assert message in str(error)
    if parameter in text:
        lineno = (
            text.splitlines().index(
                next(line for line in text.splitlines() if line.startswith(parameter))
            )
            + 1
        )
        assert str(error).startswith(f"{tmp_path / 'main.cf'}:{lineno}: parameter {parameter}: ")
        assert error.value
    assert "\n" not in str(error)


def test_recursion_blames_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(_dir(tmp_path, "a = $b\nmyorigin = $a\nb = $myorigin\n"))
    assert "recursive expansion" in str(info.value)
    assert info.value.lineno in (1, 2, 3) and info.value.filename.endswith("main.cf")


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match="bad parameter name"):
        Settings.defaults().with_overrides({"bad name": "x"})
    with pytest.raises(ConfigError, match="parameter soft_bounce"):
        Settings.defaults().with_overrides({"soft_bounce": "perhaps"})


def test_with_overrides_keeps_the_rest(tmp_path: Path) -> None:
    base = Settings.load(_dir(tmp_path, "myorigin = example.com\n"))
    changed = base.with_overrides({"smtp_connect_timeout": "5s"})
    assert changed.get_time("smtp_connect_timeout") == 5.0
    assert changed.get_str("myorigin") == "example.com"
    assert changed.config_dir == base.config_dir
    assert base.get_time("smtp_connect_timeout") == 30.0


def test_warnings(tmp_path: Path) -> None:
    settings = Settings.load(
        _dir(tmp_path, "my_var = x\nrelayhost = $my_var\ntypo_paramter = 1\nprocess_id = 7\n")
    )
    path = tmp_path / "main.cf"
    assert settings.warnings == (
        f"{path}:3: unused parameter: typo_paramter=1",
        f"{path}:4: read-only parameter ignored: process_id",
    )
    assert settings.get_list("relayhost") == ("x",)
    assert settings.get_str("process_id") == str(os.getpid())
    assert settings.expanded("my_var") == "x"
    chain = Settings.defaults().with_overrides({"one": "$two", "two": "2"})
    assert chain.warnings == ("unused parameter: one=$two",)


def test_agent_view() -> None:
    settings = Settings.defaults().with_overrides(
        {
            "smtp_helo_name": "smtp.example",
            "lmtp_lhlo_name": "lmtp.example",
            "lmtp_sasl_password_maps": "static:u:p",
        }
    )
    smtp, lmtp = settings.for_transport("smtp"), settings.for_transport("lmtp")
    assert (smtp.params.helo_name, lmtp.params.helo_name) == ("smtp.example", "lmtp.example")
    assert (smtp.params.connect_timeout, lmtp.params.connect_timeout) == (30.0, 0.0)
    assert lmtp.name("helo_timeout") == "lmtp_lhlo_timeout" and lmtp.is_lmtp
    assert lmtp.name("not_a_param") == "smtp_not_a_param"
    assert smtp.params.skip_quit_response and smtp.params.mx_session_limit == 2
    assert smtp.params.pix_workarounds == ("disable_esmtp", "delay_dotcrlf")
    assert not smtp.open_maps("sasl_password_maps")
    assert lmtp.open_maps("sasl_password_maps").find("x").value == "u:p"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="unknown transport"):
        settings.for_transport("uucp")


def test_getter_misuse_is_a_bug() -> None:
    settings = Settings.defaults()
    with pytest.raises(KeyError, match="unknown parameter"):
        settings.value("nope")
    with pytest.raises(AssertionError):
        settings.get_bool("smtp_connect_timeout")


def test_open_maps_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "generic").write_text("a@x b@y\n")
    settings = Settings.load(_dir(tmp_path, "smtp_generic_maps = texthash:generic\n"))
    assert settings.open_maps("smtp_generic_maps").find("a@x").value == "b@y"  # type: ignore[union-attr]
    broken = settings.with_overrides({"smtp_generic_maps": "texthash:missing"})
    with pytest.raises(TableError, match="No such file"):
        broken.open_maps("smtp_generic_maps")


def test_tables_are_opened_once_per_configuration(tmp_path: Path) -> None:
    table = tmp_path / "generic"
    table.write_text("a@x b@y\n")
    settings = Settings.load(_dir(tmp_path, "smtp_generic_maps = texthash:generic\n"))
    maps = settings.open_maps("smtp_generic_maps")
    assert settings.open_maps("smtp_generic_maps") is maps  # kept, as smtp(8) keeps them
    watcher = settings.watcher()
    table.write_text("a@x c@z\n")
    assert watcher.changed()  # a changed table makes new settings (config/watch.py) ...
    assert settings.open_maps("smtp_generic_maps").find("a@x").value == "b@y"  # type: ignore[union-attr]
    reloaded = Settings.load(tmp_path)  # ... which open it again
    assert reloaded.open_maps("smtp_generic_maps").find("a@x").value == "c@z"  # type: ignore[union-attr]


def test_a_table_that_failed_to_open_is_tried_again(tmp_path: Path) -> None:
    settings = Settings.load(_dir(tmp_path, "smtp_generic_maps = texthash:later\n"))
    with pytest.raises(TableError, match="No such file"):
        settings.open_maps("smtp_generic_maps")
    (tmp_path / "later").write_text("a@x b@y\n")
    assert settings.open_maps("smtp_generic_maps").find("a@x").value == "b@y"  # type: ignore[union-attr]


def test_files_and_watcher(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("k v\n")
    settings = Settings.load(
        _dir(
            tmp_path,
            "transport_maps = hash:/abs/x, inline:{a=b}\n"
            "mydestination = texthash:t, localhost\nrelayhost = [h]:25\n",
        )
    )
    assert settings.files() == (
        tmp_path / "main.cf",
        tmp_path / "t",
        Path("/abs/x"),
        Path("/abs/x.db"),
    )
    watcher = settings.watcher()
    assert not watcher.changed()
    (tmp_path / "main.cf").write_text("relayhost = [other]\n")
    assert watcher.changed()


def test_per_transport_parameters(tmp_path: Path) -> None:
    settings = Settings.load(
        _dir(
            tmp_path,
            "relay_destination_concurrency_limit = 5\n"
            "default_destination_recipient_limit = 7\n"
            "relay_destination_rate_delay = 1m\n",
        )
    )
    assert settings.warnings == ()
    assert settings.get_transport("relay", "destination_concurrency_limit") == 5
    assert settings.get_transport("relay", "destination_recipient_limit") == 7
    assert settings.get_transport("relay", "destination_rate_delay") == 60.0
    assert settings.get_transport("smtp", "destination_recipient_limit") == 7
    assert settings.get_transport("other", "initial_destination_concurrency") == 5
    with pytest.raises(ConfigError, match="-o: parameter relay_destination_concurrency"):
        settings.with_overrides({"relay_destination_concurrency_limit": "x"})
    with pytest.raises(KeyError):
        settings.get_transport("relay", "not_a_suffix")


def _sqlite_table(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "t.db").close()
    (tmp_path / "t.cf").write_text(f"dbpath = {tmp_path / 't.db'}\nquery = SELECT 1\n")


@pytest.mark.parametrize(
    "name",
    ["smtp_reply_filter", "lmtp_delivery_status_filter", "smtp_header_checks", "smtp_body_checks"],
)
def test_line_filters_refuse_tables_that_ask_a_server(tmp_path: Path, name: str) -> None:
    _sqlite_table(tmp_path)
    settings = Settings.load(_dir(tmp_path, f"{name} = regexp:/dev/null, sqlite:{tmp_path}/t.cf\n"))
    with pytest.raises(TableError) as info:
        settings.open_maps(name)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"{name}: sqlite:{tmp_path}/t.cf: a table that asks a server cannot be used here: "
        "every line would wait for it (use regexp:, pcre:, cidr: or a file table)"
    )
    assert info.value.parameter == name


def test_address_tables_may_ask_a_server(tmp_path: Path) -> None:
    _sqlite_table(tmp_path)
    settings = Settings.load(_dir(tmp_path, f"smtp_generic_maps = sqlite:{tmp_path}/t.cf\n"))
    assert settings.open_maps("smtp_generic_maps").network
