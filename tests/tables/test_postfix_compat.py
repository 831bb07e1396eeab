"""Indexed tables against Debian's Postfix, both ways: files Postfix's postmap makes are read
by mailcarrier, files ``mailcarrier map`` makes are read by ``postmap -q`` (which reads them
with the same code as Postfix's daemons), and both answer every query alike.

For each of hash, btree, lmdb and cdb, one source file with ASCII and UTF-8 keys and values,
a quoted key with a space, values with spaces and tabs, a continuation line, a duplicate, a
line without a value, a key in ``key:`` form and a line that is not UTF-8 is built by one
side and queried by both with the same keys (mixed case, Unicode case folding: ``ß`` is
``ss``). The warnings of the two builders are the same lines; ``-N``/``-n`` (null byte or
not) and ``-f`` (no case folding) are honoured the same way by both builders and both
readers; an empty value is printed with postmap's warnings. Needs postmap (Debian postfix,
postfix-lmdb, postfix-cdb) and the Python packages of each format: `make peers extras`.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.command import map_main
from tests.support.tablefiles import KINDS, Postmap, need_library

SOURCE = (
    b"# a comment, then entries\n"
    b"Alice@Example.COM        alice@mail.example.com\n"
    b"bob@example.com          Bob Smith <bob@example.org>\n"
    b'"john doe"@example.com   spaces in the key\n'
    b"\xc3\xa9mile@exemple.fr         d\xc3\xa9livr\xc3\xa9 \xc3\xa0 \xc3\xa9mile\n"
    b"Stra\xc3\x9fe@Example.DE        folded: \xc3\x9f is ss\n"
    b"\xc3\x89COLE.example            \xc3\xa9cole value\n"
    b"multi@example.com        first\n"
    b"   and a continuation line\n"
    b"alice@example.com        a duplicate of alice, not kept\n"
    b"justakey\n"
    b"tab@example.com\tvalue\twith\ttabs   \n"
    b"caf\xe9@latin1.example   a latin-1 key: skipped with smtputf8_enable = yes\n"
    b"key:                     alias-style\n"
)
QUERIES = [
    "alice@example.com",
    "ALICE@EXAMPLE.COM",
    "bob@example.com",
    '"john doe"@example.com',
    "john doe@example.com",
    "émile@exemple.fr",
    "ÉMILE@EXEMPLE.FR",
    "strasse@example.de",
    "STRASSE@EXAMPLE.DE",
    "straße@example.de",
    "école.example",
    "École.Example",
    "multi@example.com",
    "justakey",
    "tab@example.com",
    "key:",
    "missing@example.com",
]
EXPECTED = {
    "alice@example.com": "alice@mail.example.com",
    "bob@example.com": "Bob Smith <bob@example.org>",
    '"john doe"@example.com': "spaces in the key",
    "émile@exemple.fr": "délivré à émile",
    "strasse@example.de": "folded: ß is ss",
    "école.example": "école value",
    "multi@example.com": "first   and a continuation line",
    "tab@example.com": "value\twith\ttabs",
    "key:": "alias-style",
}


def _expected(query: str) -> str | None:
    return EXPECTED.get(query.casefold())


def _map(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = map_main(list(argv), out, err, io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def postmap(tmp_path: Path) -> Postmap:
    return Postmap(tmp_path / "postfix-config")


def _source(tmp_path: Path, data: bytes = SOURCE) -> Path:
    source = tmp_path / "virtual"
    source.write_bytes(data)
    return source


def _ours(warnings: str) -> list[str]:
    return [line.removeprefix("mailcarrier: warning: ") for line in warnings.splitlines()]


@pytest.mark.parametrize("kind", KINDS)
def test_postmap_files_are_read_by_mailcarrier(kind: str, tmp_path: Path, postmap: Postmap) -> None:
    postmap.need(kind)
    need_library(kind)
    source = _source(tmp_path)
    postmap.build(f"{kind}:{source}")
    table = open_table(f"{kind}:{source}")
    assert table.warnings == []
    for query in QUERIES:
        status, out, _ = postmap.query(query, f"{kind}:{source}")
        assert table.lookup(query) == _expected(query), query
        assert (status, out) == ((0, f"{_expected(query)}\n") if _expected(query) else (1, ""))


@pytest.mark.parametrize("kind", KINDS)
def test_mailcarrier_files_are_read_by_postmap(kind: str, tmp_path: Path, postmap: Postmap) -> None:
    postmap.need(kind)
    need_library(kind)
    source = _source(tmp_path)
    assert _map(f"{kind}:{source}")[0] == 0
    for query in QUERIES:
        status, out, warnings = postmap.query(query, f"{kind}:{source}")
        expected = _expected(query)
        assert (status, out) == ((0, f"{expected}\n") if expected else (1, "")), query
        assert warnings == []
        assert _map("-q", query, f"{kind}:{source}")[:2] == (status, out)
    keys = "".join(f"{query}\n" for query in QUERIES).encode()
    assert (
        postmap.query_stdin(keys, f"{kind}:{source}")
        == _map("-q", "-", f"{kind}:{source}", stdin=keys.decode())[:2]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_builders_warn_alike(kind: str, tmp_path: Path, postmap: Postmap) -> None:
    postmap.need(kind)
    need_library(kind)
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    ours, theirs = _source(ours_dir), _source(theirs_dir)
    _, _, err = _map(f"{kind}:{ours}")
    warnings = postmap.build(f"{kind}:{theirs}")
    assert [w.replace(str(ours), "SOURCE") for w in _ours(err)] == [
        w.replace(str(theirs), "SOURCE") for w in warnings
    ]
    assert len(warnings) == 4  # duplicate, no value, not UTF-8, "key:" form


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("null", ["-N", "-n"])
def test_null_byte_options_both_ways(
    kind: str, null: str, tmp_path: Path, postmap: Postmap
) -> None:
    postmap.need(kind)
    need_library(kind)
    source = _source(tmp_path, b"Key@Example.com value\n")
    other = "-n" if null == "-N" else "-N"
    for builder in ("postmap", "mailcarrier"):
        if builder == "postmap":
            postmap.build(f"{kind}:{source}", null)
        else:
            assert _map(null, f"{kind}:{source}")[0] == 0
        spec = f"{kind}:{source}"
        # Both readers try both forms by default, and only the one asked for with -N/-n.
        assert postmap.query("KEY@example.com", spec)[:2] == (0, "value\n"), builder
        assert _map("-q", "KEY@example.com", spec)[:2] == (0, "value\n"), builder
        assert postmap.query("key@example.com", spec, options=(null,))[:2] == (0, "value\n")
        assert _map(null, "-q", "key@example.com", spec)[:2] == (0, "value\n"), builder
        assert postmap.query("key@example.com", spec, options=(other,))[:2] == (1, "")
        assert _map(other, "-q", "key@example.com", spec)[:2] == (1, ""), builder


@pytest.mark.parametrize("kind", KINDS)
def test_no_folding_with_f_both_ways(kind: str, tmp_path: Path, postmap: Postmap) -> None:
    postmap.need(kind)
    need_library(kind)
    source = _source(tmp_path, b"MixedCase@Example.COM value\n")
    spec = f"{kind}:{source}"
    for builder in ("postmap", "mailcarrier"):
        if builder == "postmap":
            postmap.build(spec, "-f")
        else:
            assert _map("-f", spec)[0] == 0
        for options in ((), ("-f",)):
            for query in ("MixedCase@Example.COM", "mixedcase@example.com"):
                theirs = postmap.query(query, spec, options=options)[:2]
                assert _map(*options, "-q", query, spec)[:2] == theirs, (builder, options, query)
        assert postmap.query("MixedCase@Example.COM", spec, options=("-f",))[0] == 0
        assert postmap.query("mixedcase@example.com", spec)[0] == 1


def test_an_empty_value_is_printed_with_postmaps_warnings(tmp_path: Path, postmap: Postmap) -> None:
    postmap.need("hash")
    need_library("hash")
    from berkeleydb import db

    source = tmp_path / "empty"
    handle = db.DB()
    handle.open(f"{source}.db", None, db.DB_HASH, db.DB_CREATE)
    handle.put(b"blank\0", b"\0")
    handle.close()
    status, out, warnings = postmap.query("blank", f"hash:{source}")
    code, ours, err = _map("-q", "blank", f"hash:{source}")
    assert (code, ours) == (status, out) == (0, "\n")
    assert (
        _ours(err)
        == warnings
        == [
            f"table hash:{source}: key blank: empty string result is not allowed",
            f"table hash:{source} should return NO RESULT in case of NOT FOUND",
        ]
    )


@pytest.mark.parametrize("kind", ["hash", "btree", "lmdb"])
def test_sequence_lists_the_same_entries(kind: str, tmp_path: Path, postmap: Postmap) -> None:
    postmap.need(kind)
    need_library(kind)
    source = _source(tmp_path)
    postmap.build(f"{kind}:{source}")
    theirs = postmap.sequence(f"{kind}:{source}")
    code, ours, _ = _map("-s", f"{kind}:{source}")
    assert code == 0
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert len(ours.splitlines()) == len(EXPECTED)
