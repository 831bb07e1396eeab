"""Settings of master.cf services (named transports): main.cf plus the service's -o settings."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mailcarrier.config import Settings
from mailcarrier.errors import ConfigError


def _config(tmp_path: Path, main_cf: str, master_cf: str | None) -> Path:
    (tmp_path / "main.cf").write_text(main_cf)
    if master_cf is not None:
        (tmp_path / "master.cf").write_text(master_cf)
    return tmp_path


def test_a_service_is_main_cf_plus_its_overrides(tmp_path: Path) -> None:
    d = _config(
        tmp_path,
        "myhostname = mc.example\nrelay_helo = relay.$myhostname\nsmtp_connect_timeout = 7s\n",
        "# services\n"
        "out unix - - n - - smtp\n"
        "  -o smtp_helo_name=$relay_helo -o { syslog_name = mc/$service_name }\n"
        "lm unix - - n - - lmtp -o lmtp_lhlo_name=lhlo.example\n"
        "smtpd inet n - n - - smtpd -o smtpd_tls_security_level=may\n",
    )
    settings = Settings.load(d)
    assert list(settings.services) == ["out", "lm"]
    out = settings.service("out")
    # -o values expand against main.cf and the service's name, as in the Postfix daemon.
    assert out.params.smtp_helo_name == "relay.mc.example"
    assert out.params.syslog_name == "mc/out"
    assert out.params.smtp_connect_timeout == 7.0  # main.cf's, not overridden
    assert out.for_transport("smtp").label == "out"
    assert settings.service("lm").params.lmtp_lhlo_name == "lhlo.example"
    # main.cf's own settings are untouched, and the main settings are no service.
    assert settings.params.smtp_helo_name == "mc.example"
    assert settings.for_transport("smtp").label == "smtp"
    # relay_helo is used by master.cf only: no "unused parameter" warning.
    assert settings.warnings == ()
    with pytest.raises(KeyError):
        settings.service("smtpd")


def test_a_bad_override_names_master_cf_and_its_line(tmp_path: Path) -> None:
    d = _config(
        tmp_path,
        "",
        "ok unix - - n - - smtp\n\nbad unix - - n - - smtp\n    -o smtp_connect_timeout=soon\n",
    )
    with pytest.raises(ConfigError) as info:
        Settings.load(d)
    assert str(info.value) == (
        f'{d / "master.cf"}:3: parameter smtp_connect_timeout: bad time value "soon" '
        "(want a number and one of s, m, h, d, w)"
    )
    assert info.value.filename == str(d / "master.cf") and info.value.lineno == 3


def test_a_bad_line_names_master_cf_and_its_line(tmp_path: Path) -> None:
    d = _config(tmp_path, "", "ok unix - - n - - smtp\nbad unix - - n - smtp\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(d)
    assert str(info.value) == f'{d / "master.cf"}:2: missing "command" field'


def test_unknown_override_names_are_warnings(tmp_path: Path) -> None:
    d = _config(tmp_path, "", "x unix - - n - - smtp -o smtp_helo_nmae=h.example\n")
    settings = Settings.load(d)
    assert settings.warnings == (
        f"{d / 'master.cf'}:1: unused parameter: smtp_helo_nmae=h.example "
        '(did you mean "smtp_helo_name"?)',
    )


def test_without_master_cf_there_are_no_services(tmp_path: Path) -> None:
    settings = Settings.load(_config(tmp_path, "", None))
    assert settings.services == {} and settings.master is None
    assert Settings.defaults().services == {}


def test_services_survive_pickling_and_overrides(tmp_path: Path) -> None:
    """Agent processes get the settings pickled; -o on the command line keeps master.cf."""
    d = _config(tmp_path, "", "x unix - - n - - smtp -o smtp_helo_name=x.example\n")
    settings = Settings.load(d, {"smtp_helo_name": "cli.example"})
    for copy in (pickle.loads(pickle.dumps(settings)), settings.with_overrides({"a": "b"})):
        assert copy.params.smtp_helo_name == "cli.example"
        assert copy.service("x").params.smtp_helo_name == "x.example"


def test_master_cf_and_the_tables_of_its_overrides_are_watched(tmp_path: Path) -> None:
    d = _config(tmp_path, "", "x unix - - n - - smtp -o smtp_generic_maps=texthash:generic\n")
    (d / "generic").write_text("")
    files = Settings.load(d).files()
    assert d / "master.cf" in files and d / "generic" in files
