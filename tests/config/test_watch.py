"""Tests for config/watch.py: reloading a changed configuration at a safe point."""

from __future__ import annotations

import os
from pathlib import Path

from mailcarrier.config.watch import ConfigReloader


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_reload_on_main_cf_change(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("relayhost = [a]\n")
    reloader = ConfigReloader(tmp_path, {"soft_bounce": "yes"})
    first = reloader.settings
    assert reloader.poll() is None
    main_cf.write_text("relayhost = [b]\n")
    result = reloader.poll()
    assert result is not None and result.error is None and result.settings is not None
    assert result.changed_files == (main_cf,)
    assert reloader.settings.get_list("relayhost") == ("[b]",)
    assert reloader.settings.get_bool("soft_bounce")  # overrides survive a reload
    assert first.get_list("relayhost") == ("[a]",)  # work in progress keeps its settings
    assert reloader.poll() is None


def test_bad_edit_keeps_old_settings_and_reports_once(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("smtp_connect_timeout = 10s\n")
    reloader = ConfigReloader(tmp_path)
    main_cf.write_text("smtp_connect_timeout = ten seconds\n")
    result = reloader.poll()
    assert result is not None and result.settings is None and result.error is not None
    assert "main.cf:1: parameter smtp_connect_timeout" in str(result.error)
    assert reloader.settings.get_time("smtp_connect_timeout") == 10.0
    assert reloader.poll() is None
    main_cf.write_text("smtp_connect_timeout = 20s\n")
    _touch_later(main_cf)
    assert reloader.poll() is not None
    assert reloader.settings.get_time("smtp_connect_timeout") == 20.0


def test_reload_on_table_change(tmp_path: Path) -> None:
    table = tmp_path / "generic"
    table.write_text("a@x b@y\n")
    (tmp_path / "main.cf").write_text("smtp_generic_maps = texthash:generic\n")
    reloader = ConfigReloader(tmp_path)
    table.write_text("a@x c@z\n")
    result = reloader.poll()
    assert result is not None and result.changed_files == (table,)
    match = reloader.settings.open_maps("smtp_generic_maps").find("a@x")
    assert match is not None and match.value == "c@z"
