"""Tests for config/edit.py: in-place, order- and comment-preserving, atomic main.cf edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.config.edit import edit_main_cf, edited_text
from mailcarrier.errors import ConfigError

BEFORE = """\
# Global settings
relayhost = [old.example]
# keep me
mydestination = a,
    b,
    # comment in the middle
    c
myorigin = example.com
relayhost = [again]
"""


def test_replace_everywhere_keep_comments_and_order() -> None:
    after = edited_text(BEFORE, {"relayhost": "[new]", "mydestination": "x"}, "main.cf")
    assert after == (
        "# Global settings\n"
        "relayhost = [new]\n"
        "# keep me\n"
        "mydestination = x\n"
        "myorigin = example.com\n"
        "relayhost = [new]\n"
    )


def test_append_and_remove() -> None:
    after = edited_text(BEFORE, {"myorigin": None, "new_param": "1", "empty": ""}, "main.cf")
    assert after.endswith("    c\nrelayhost = [again]\nnew_param = 1\nempty =\n")
    assert "myorigin" not in after
    assert edited_text("", {"a": None}, "main.cf") == ""


def test_edit_file_atomically_and_keep_mode(tmp_path: Path) -> None:
    path = tmp_path / "main.cf"
    path.write_text(BEFORE)
    path.chmod(0o640)
    edit_main_cf(path, {"myorigin": "example.net"})
    assert "myorigin = example.net\n" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.cf"]


def test_edit_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "main.cf"
    edit_main_cf(path, {"relayhost": "[r]"})
    assert path.read_text() == "relayhost = [r]\n"


def test_edit_refuses_unparsable_file(tmp_path: Path) -> None:
    path = tmp_path / "main.cf"
    path.write_text("garbage line\n")
    with pytest.raises(ConfigError, match=r"main\.cf:1"):
        edit_main_cf(path, {"a": "b"})
    assert path.read_text() == "garbage line\n"
