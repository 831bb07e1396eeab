"""Tests for tables/command.py: `mailcarrier map` build and query."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from mailcarrier.tables.command import USAGE, map_main
from tests.support.tablefiles import need_library


def _run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = map_main(list(argv), out, err, io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def test_build_then_query(tmp_path: Path) -> None:
    need_library("hash")
    source = tmp_path / "access"
    source.write_text("a@example.com OK\nbroken\n")
    code, out, err = _run(str(source))
    assert (code, out) == (0, "")
    assert err == f"mailcarrier: warning: {source}, line 2: expected format: key whitespace value\n"
    assert _run("-q", "A@example.com", f"hash:{source}") == (0, "OK\n", "")
    assert _run("-q", "nobody", f"hash:{source}") == (1, "", "")


def test_build_lmdb_and_query_stdin(tmp_path: Path) -> None:
    need_library("lmdb")
    source = tmp_path / "m"
    source.write_text("k1 v1\nk2 v2\n")
    assert _run(f"lmdb:{source}")[0] == 0
    code, out, _ = _run("-q", "-", f"lmdb:{source}", stdin="k2\nnope\nk1\n")
    assert (code, out) == (0, "k2\tv2\nk1\tv1\n")


def test_query_list_first_match(tmp_path: Path) -> None:
    code, out, _ = _run("-q", "x", "inline:{ y=1 }", "static:fallback")
    assert (code, out) == (0, "fallback\n")


def test_usage_and_errors(tmp_path: Path) -> None:
    assert _run()[0] == 64
    assert _run("-q", "k")[0] == 64
    assert _run("-z", "x")[0] == 64
    assert _run("--help")[0] == 0
    code, _, err = _run(f"regexp:{tmp_path / 'r'}")
    assert code == 64 and "cannot build regexp tables" in err
    code, _, err = _run("-q", "k", f"cdb:{tmp_path / 'none'}")
    assert code == 78 and err.count("\n") == 1 and "No such file" in err
    code, _, err = _run(str(tmp_path / "none"))
    assert code == 78 and err.startswith("mailcarrier: fatal: ")
    code, _, err = _run("-q", "k", "bogus:x")
    assert code == 78 and "unsupported dictionary type" in err


# --- postmap's options and behaviour ------------------------------------------------------


def test_tables_open_when_first_needed(tmp_path: Path) -> None:
    # As postmap: the key is found in the first table, so the missing second is never opened.
    code, out, err = _run("-q", "k", "inline:{ k=v }", f"cdb:{tmp_path / 'missing'}")
    assert (code, out, err) == (0, "v\n", "")
    code, _, err = _run("-q", "other", "inline:{ k=v }", f"cdb:{tmp_path / 'missing'}")
    assert code == 78 and "No such file" in err


def test_keys_from_stdin_every_line_asked(tmp_path: Path) -> None:
    need_library("lmdb")
    source = tmp_path / "m"
    source.write_text("k1 v1\n")
    assert _run(f"lmdb:{source}")[0] == 0
    code, out, err = _run("-q", "-", f"lmdb:{source}", stdin="\nK1\n\nnope\n")
    assert (code, out, err) == (0, "K1\tv1\n", "")


def test_an_empty_value_is_printed_with_two_warnings(tmp_path: Path) -> None:
    need_library("cdb")
    import cdbx

    with open(tmp_path / "m.cdb", "wb") as handle:
        maker = cdbx.CDB.make(handle)
        maker.add(b"blank", b"")
        maker.commit().close()
    code, out, err = _run("-q", "blank", f"cdb:{tmp_path / 'm'}")
    assert (code, out) == (0, "\n")
    assert err == (
        f"mailcarrier: warning: table cdb:{tmp_path}/m: key blank: empty string result is not "
        "allowed\n"
        f"mailcarrier: warning: table cdb:{tmp_path}/m should return NO RESULT in case of NOT "
        "FOUND\n"
    )


def test_sequence(tmp_path: Path) -> None:
    need_library("cdb")
    source = tmp_path / "m"
    source.write_text("B 2\na 1\n")
    assert _run("-n", f"cdb:{source}")[0] == 0
    assert _run("-s", f"cdb:{source}") == (0, "b\t2\na\t1\n", "")
    code, _, err = _run("-s", "inline:{a=b}")
    assert code == 78 and "-s lists only hash, btree, lmdb and cdb tables" in err


def test_null_and_fold_options(tmp_path: Path) -> None:
    need_library("cdb")
    source = tmp_path / "m"
    source.write_text("Key value\n")
    assert _run("-N", "-f", f"cdb:{source}")[0] == 0
    assert _run("-q", "key", f"cdb:{source}")[:2] == (1, "")  # stored as "Key"
    assert _run("-f", "-q", "Key", f"cdb:{source}")[:2] == (0, "value\n")
    assert _run("-fn", "-q", "Key", f"cdb:{source}")[:2] == (1, "")  # stored with the null
    assert _run("-n", "-N", "-fqKey", f"cdb:{source}")[:2] == (0, "value\n")  # the last counts


def test_bare_file_name_is_hash(tmp_path: Path) -> None:
    need_library("hash")
    source = tmp_path / "m"
    source.write_text("k v\n")
    assert _run(str(source))[0] == 0
    assert (tmp_path / "m.db").exists()
    assert _run("-q", "k", str(source))[:2] == (0, "v\n")


def test_stale_index_warning_on_query(tmp_path: Path) -> None:
    need_library("cdb")
    source = tmp_path / "m"
    source.write_text("k v\n")
    assert _run(f"cdb:{source}")[0] == 0
    os.utime(tmp_path / "m.cdb", (1_000_000, 1_000_000))
    os.utime(source, (2_000_000, 2_000_000))
    assert _run("-q", "k", f"cdb:{source}") == (
        0,
        "v\n",
        f"mailcarrier: warning: database {source}.cdb is older than source file {source}\n",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-i", "hash:/x"], "mailcarrier: fatal: postmap's option -i is not supported\n"),
        (["-d", "k", "hash:/x"], "mailcarrier: fatal: postmap's option -d is not supported\n"),
        (["-q", "k", "-s", "hash:/x"], "mailcarrier: fatal: specify only one of -q or -s\n"),
        (["-f"], ""),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    code, out, err = _run(*argv)
    assert (code, out) == (64, "")
    assert err == message + USAGE + "\n"


def test_a_file_that_cannot_be_written(tmp_path: Path) -> None:
    need_library("cdb")
    source = tmp_path / "m"
    source.write_text("k v\n")
    (tmp_path / "m.cdb").mkdir()  # the rename cannot replace a directory
    code, _, err = _run(f"cdb:{source}")
    assert code == 78
    assert err.startswith("mailcarrier: fatal: ") and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
