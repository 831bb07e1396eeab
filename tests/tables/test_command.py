"""Tests for tables/command.py: `mailcarrier map` build and query."""

from __future__ import annotations

import io
from pathlib import Path

from mailcarrier.tables.command import map_main


def _run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = map_main(list(argv), out, err, io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def test_build_then_query(tmp_path: Path) -> None:
    source = tmp_path / "access"
    source.write_text("a@example.com OK\nbroken\n")
    code, out, err = _run(str(source))
    assert (code, out) == (0, "")
    assert err == f"mailcarrier: warning: {source}, line 2: expected format: key whitespace value\n"
    assert _run("-q", "A@example.com", f"hash:{source}") == (0, "OK\n", "")
    assert _run("-q", "nobody", f"hash:{source}") == (1, "", "")


def test_build_lmdb_and_query_stdin(tmp_path: Path) -> None:
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
    code, _, err = _run("-q", "k", f"hash:{tmp_path / 'none'}")
    assert code == 78 and err.count("\n") == 1 and "No such file" in err
    code, _, err = _run(str(tmp_path / "none"))
    assert code == 78 and err.startswith("mailcarrier: fatal: ")
    code, _, err = _run("-q", "k", "bogus:x")
    assert code == 78 and "unsupported dictionary type" in err
