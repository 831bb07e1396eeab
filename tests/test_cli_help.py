"""Help that helps: every command and option of `mailcarrier` has a help line, --help exits 0
for each (conf and map, which parse like postconf and postmap, included), no command prints
what there is, --version says which release."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator

import pytest

from mailcarrier import __version__
from mailcarrier.cli import _build_parser, run


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def _commands() -> list[tuple[str, ...]]:
    return [path for path, _ in _parsers(_build_parser()) if path]


def test_every_option_of_every_command_has_a_help_line() -> None:
    missing = []
    for path, parser in _parsers(_build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{' '.join(path) or 'mailcarrier'} {action.dest}")
    assert missing == []


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_of_each_command(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run([*command, "--help"], stdout=stdout, stderr=stderr) == 0
    shown = capsys.readouterr().out + stdout.getvalue()
    assert shown.startswith("usage: mailcarrier")
    assert stderr.getvalue() == ""


def test_no_command_shows_the_commands() -> None:
    stderr = io.StringIO()
    assert run([], stdout=io.StringIO(), stderr=stderr) == 64
    text = stderr.getvalue()
    assert text.startswith("usage: mailcarrier")
    for name in ("deliver", "conf", "map", "postfix", "sendmail", "run", "queue"):
        assert f"\n    {name} " in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert capsys.readouterr().out == f"mailcarrier {__version__}\n"


def test_conf_help_keeps_postconf_h(tmp_path: object) -> None:
    out = io.StringIO()
    assert run(["conf", "--help"], stdout=out, stderr=io.StringIO()) == 0
    assert "-h      the values only" in out.getvalue()
    out = io.StringIO()
    assert run(["conf", "-h", "mail_name"], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == "Postfix\n"  # -h: postconf's value-only output


def test_map_help_explains_the_forms() -> None:
    out = io.StringIO()
    assert run(["map", "--help"], stdout=out, stderr=io.StringIO()) == 0
    text = out.getvalue()
    for form in ("map FILE", "map type:FILE", "map -q KEY", "map -q -", "map -s"):
        assert form in text
