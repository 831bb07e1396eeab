"""The agent's start (postfix/main.py) as master(8) would run it, in a subprocess: a table
main.cf names that cannot be opened stops it with one fatal line naming the parameter (as
smtp(8) does), never a table read as empty; so does a table whose format needs a Python
package that is not installed; Postfix's own hash:, btree:, lmdb: and cdb: files (made by
postmap) are read, and the agent goes on to look for master(8). An event_log_file that
cannot be opened and a metrics_directory that is not a directory stop it too. With -V the
lines go to stderr, as Postfix daemons' do. (The command is ``python -c``: its argv[0] names no
personality, so ``-n`` does.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.postfix.main import table_changes
from mailcarrier.tables import build_index
from tests.support.tablefiles import KINDS, Postmap, need_library


def _start(
    tmp_path: Path, main_cf: str, *args: str, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "main.cf").write_text(main_cf)
    env = {"MAIL_CONFIG": str(conf), "GENERATION": "1", "LANG": "C"}
    code = f"import sys; {prelude}from mailcarrier.postfix.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "-t", "unix", "-V", *args],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_table_that_cannot_be_opened_stops_the_agent(tmp_path: Path) -> None:
    missing = tmp_path / "generic"
    done = _start(tmp_path, f"smtp_generic_maps = lmdb:{missing}\n", "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert "fatal: smtp_generic_maps: open database" in line and str(missing) in line


@pytest.mark.parametrize("personality", ["smtp", "lmtp"])
def test_personality_from_the_program_name(tmp_path: Path, personality: str) -> None:
    done = _start(tmp_path, "smtp_generic_maps = hash:/nonexistent/x\n", "-n", personality)
    assert done.returncode == 1
    assert f"postfix/{personality}[" in done.stderr.splitlines()[0]


def test_postfixs_own_table_files_are_read(tmp_path: Path) -> None:
    postmap = Postmap(tmp_path / "postmap")
    specs = []
    for kind in KINDS:
        postmap.need(kind)
        need_library(kind)
        source = tmp_path / f"generic-{kind}"
        source.write_text(f"a@{kind}.test b@{kind}.test\n")
        postmap.build(f"{kind}:{source}")
        specs.append(f"{kind}:{source}")
    done = _start(tmp_path, f"smtp_generic_maps = {', '.join(specs)}\n", "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()  # past the tables, it looks for master(8)
    assert line.endswith("fatal: no status socket on fd 5: not started by master(8)")


@pytest.mark.parametrize(
    ("kind", "module", "extra"),
    [("hash", "berkeleydb", "berkeleydb"), ("lmdb", "lmdb", "lmdb"), ("cdb", "cdbx", "cdb")],
)
def test_a_table_type_whose_package_is_missing_stops_the_agent(
    tmp_path: Path, kind: str, module: str, extra: str
) -> None:
    table = f"{kind}:{tmp_path / 'generic'}"
    prelude = f"sys.modules[{module!r}] = None; "  # as if the package were not installed
    done = _start(tmp_path, f"smtp_generic_maps = {table}\n", "-n", "smtp", prelude=prelude)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        f"fatal: smtp_generic_maps: {table}: this table type needs the Python package "
        f"{module}: pip install 'mailcarrier[{extra}]'"
        + (
            " (it builds against Berkeley DB: Debian package libdb5.3-dev)"
            if kind == "hash"
            else ""
        )
    )


def test_table_changes_watches_the_table_files_not_main_cf(tmp_path: Path) -> None:
    need_library("cdb")
    conf = tmp_path / "conf"
    conf.mkdir()
    source = tmp_path / "generic"
    source.write_text("a@test b@test\n")
    build_index(source, "cdb")
    main_cf = f"smtp_generic_maps = cdb:{source}\n"
    (conf / "main.cf").write_text(main_cf)
    changed = table_changes(Settings.load(conf))
    assert changed() is None
    (conf / "main.cf").write_text(main_cf + "# edited: postfix reload is for that\n")
    assert changed() is None
    build_index(source, "cdb")  # a new file renamed over the old one
    assert changed() == f"{source}.cdb"


def test_a_metrics_directory_that_is_not_one_stops_the_agent(tmp_path: Path) -> None:
    missing = tmp_path / "metrics"
    done = _start(tmp_path, f"metrics_directory = {missing}\n", "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.endswith(f"fatal: parameter metrics_directory: {missing} is not a directory")


def test_an_event_log_file_that_cannot_be_opened_stops_the_agent(tmp_path: Path) -> None:
    bad = tmp_path / "missing" / "events.jsonl"
    main_cf = f"event_log_file = {bad}\ndata_directory = {tmp_path}\n"
    done = _start(tmp_path, main_cf, "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        f"fatal: parameter event_log_file: cannot open {bad}: No such file or directory"
    )


def test_records_and_metrics_configured_the_agent_goes_on(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    main_cf = (
        f"event_log_file = {tmp_path / 'events.jsonl'}\ndata_directory = {tmp_path}\n"
        f"metrics_directory = {tmp_path / 'metrics'}\n"
    )
    done = _start(tmp_path, main_cf, "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()  # past them, it looks for master(8)
    assert line.endswith("fatal: no status socket on fd 5: not started by master(8)")
    assert (tmp_path / "events.jsonl").exists() and (tmp_path / "fleet_node_id").exists()
