"""Tests for tables/cfgfile.py: *_table(5) files and main.cf-style table parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables.base import TableError
from mailcarrier.tables.cfgfile import TableConfig, is_file_name, split_nameval


def test_lines_comments_and_continuations(tmp_path: Path) -> None:
    path = tmp_path / "x.cf"
    path.write_text(
        "# a comment\n"
        "hosts = 127.0.0.1\n"
        "\n"
        "query = SELECT v\n"
        "# comment inside the logical line\n"
        "   FROM t WHERE k='%s'\n"
        "user=postfix\n"
        "hosts = 127.0.0.2\n"
    )
    config = TableConfig.from_file(path)
    assert config.string("query") == "SELECT v   FROM t WHERE k='%s'"
    assert config.string("user") == "postfix"
    assert config.string("hosts") == "127.0.0.2"
    assert config.settings["hosts"].lineno == 8
    assert config.warnings == [f"{path}:8: overriding earlier entry: hosts=127.0.0.1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query SELECT 1\n", "missing '=' after attribute name: \"query SELECT 1\""),
        ("= value\n", 'missing attribute name: "= value"'),
    ],
)
def test_malformed_line_is_one_line_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "x.cf"
    path.write_text("hosts = a\n\n" + text)
    with pytest.raises(TableError) as info:
        TableConfig.from_file(path)
    assert str(info.value) == f"{path}:3: {message}"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("line", "call", "message"),
    [
        ("retry_interval = soon", ("int", "retry_interval", 60, 1),
         "bad numerical configuration: retry_interval = soon"),
        ("retry_interval = 0", ("int", "retry_interval", 60, 1),
         "invalid retry_interval parameter value 0 < 1"),
        ("require_result_set = maybe", ("bool", "require_result_set", True, 0),
         "bad boolean configuration: require_result_set = maybe"),
        ("dbname =", ("str", "dbname", "", 1),
         "bad string length 0 < 1: dbname = "),
    ],
)  # fmt: skip
def test_bad_values_name_file_line_and_parameter(
    tmp_path: Path, line: str, call: tuple[str, str, object, int], message: str
) -> None:
    path = tmp_path / "x.cf"
    path.write_text(f"# first\n{line}\n")
    config = TableConfig.from_file(path)
    kind, name, default, minimum = call
    with pytest.raises(TableError) as info:
        if kind == "int":
            config.integer(name, int(str(default)), minimum)
        elif kind == "bool":
            config.boolean(name, bool(default))
        else:
            config.string(name, str(default), min_len=minimum)
    assert str(info.value) == f"{path}:2: {message}"
    assert info.value.parameter == name
    assert info.value.lineno == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError) as info:
        TableConfig.from_file(tmp_path / "nope.cf")
    path = tmp_path / "nope.cf"
    assert str(info.value) == f"{path}: open {path}: No such file or directory"


def test_unknown_parameters_are_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "x.cf"
    path.write_text("hosts = a\nqeury = SELECT 1\n")
    config = TableConfig.from_file(path)
    config.check_names(["hosts", "query"], "pgsql")
    assert config.warnings == [f"{path}:2: unknown pgsql parameter ignored: qeury"]


def test_main_cf_style() -> None:
    values = {"pgsource_hosts": "db1 db2", "pgsource_retry_interval": "x", "other": "1"}
    config = TableConfig.from_main_cf("pgsource", values.get, ["hosts", "retry_interval"])
    assert config.string("hosts") == "db1 db2"
    with pytest.raises(TableError) as info:
        config.integer("retry_interval", 60, 1)
    assert str(info.value) == "bad numerical configuration: pgsource_retry_interval = x"
    assert info.value.parameter == "pgsource_retry_interval"


def test_file_name_rule() -> None:
    assert is_file_name("/etc/postfix/x.cf") and is_file_name("./x.cf")
    assert not is_file_name("pgsource")


@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    st.sampled_from(["=", " = ", "\t=  ", " ="]),
)
def test_split_nameval_grammar(name: str, value: str, sep: str) -> None:
    assert split_nameval(f"{name}{sep}{value}") == (name, value.strip())
