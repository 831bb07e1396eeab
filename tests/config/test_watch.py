"""Tests for config/watch.py: reloading a changed configuration at a safe point, as
``mailcarrier run`` does (cli.py; queue/daemon.py asks `changed()` once per pass and calls
`reload()` then or on SIGHUP; end to end: tests/test_cli_queue.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailcarrier.config.watch import ConfigReloader
from mailcarrier.errors import ConfigError


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_reload_on_main_cf_change(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("relayhost = [a]\n")
    reloader = ConfigReloader(tmp_path, {"soft_bounce": "yes"})
    first = reloader.settings
    assert not reloader.changed()
    main_cf.write_text("relayhost = [b]\n")
    assert reloader.changed() and reloader.changed_files() == (main_cf,)
    assert reloader.reload() is reloader.settings
    assert reloader.settings.get_list("relayhost") == ("[b]",)
    assert reloader.settings.get_bool("soft_bounce")  # overrides survive a reload
    assert first.get_list("relayhost") == ("[a]",)  # work in progress keeps its settings
    assert not reloader.changed()


def test_bad_edit_keeps_old_settings_and_reports_once(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("smtp_connect_timeout = 10s\n")
    reloader = ConfigReloader(tmp_path)
    main_cf.write_text("smtp_connect_timeout = ten seconds\n")
    assert reloader.changed()
    with pytest.raises(ConfigError) as info:
        reloader.reload()
    assert "main.cf:1: parameter smtp_connect_timeout" in str(info.value)
    assert reloader.settings.get_time("smtp_connect_timeout") == 10.0
    assert not reloader.changed()
    main_cf.write_text("smtp_connect_timeout = 20s\n")
    _touch_later(main_cf)
    assert reloader.changed()
    reloader.reload()
    assert reloader.settings.get_time("smtp_connect_timeout") == 20.0


def test_reload_on_table_change(tmp_path: Path) -> None:
    table = tmp_path / "generic"
    table.write_text("a@x b@y\n")
    (tmp_path / "main.cf").write_text("smtp_generic_maps = texthash:generic\n")
    reloader = ConfigReloader(tmp_path)
    table.write_text("a@x c@z\n")
    assert reloader.changed_files() == (table,)
    reloader.reload()
    match = reloader.settings.open_maps("smtp_generic_maps").find("a@x")
    assert match is not None and match.value == "c@z"
