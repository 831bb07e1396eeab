"""lean/options.py against cli.py's parser: a command line the lean path takes means, to
argparse, a plain submission with the same sender, full name, flags, recipients and
configuration directory; everything else is left to argparse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.cli import _build_parser
from mailcarrier.errors import UsageError
from mailcarrier.lean.options import parse

WORDS = [
    "-c",
    "DIR",
    "-C",
    "main.cf",
    "-t",
    "-i",
    "-v",
    "-f",
    "-r",
    "-F",
    "-o",
    "-oi",
    "i",
    "-fs@example.org",
    "-rs",
    "-FName",
    "-bm",
    "-b",
    "m",
    "v",
    "-bv",
    "-ti",
    "-f=x",
    "-N",
    "never",
    "--",
    "-",
    "",
    "--requiretls",
    "-q",
    "sendmail",
    "r@example.net",
    "Name",
    "-x",
    "-CDIR",
    "=x",
    "-o=i",
    "-vv",
    "-h",
]


@given(
    head=st.lists(st.sampled_from(["-c", "DIR", "-o", "a=b"]), max_size=3),
    words=st.lists(st.sampled_from(WORDS), max_size=8),
)
def test_what_it_takes_argparse_reads_alike(head: list[str], words: list[str]) -> None:
    argv = [*head, "sendmail", *words]
    request = parse(argv)
    if request is None:
        return
    args = _build_parser("sendmail").parse_args(argv)
    assert args.command == "sendmail" and args.mode == "m"
    assert (args.notify, args.ret, args.envid, args.body_type) == ("", "", "", "")
    assert (args.named_options, args.requiretls, args.log_file, args.queue_run) == (
        [],
        False,
        None,
        None,
    )
    assert args.overrides == []
    assert request.sender == args.sender
    assert request.full_name == args.full_name
    assert request.extract == args.extract
    assert request.ignore_dots == (args.ignore_dots or "i" in args.options)
    assert request.recipients == args.recipients
    assert request.config == (args.sendmail_config or args.config_dir)


@given(words=st.lists(st.sampled_from(WORDS), max_size=8))
def test_mailcarrier_sendmail_arguments_alike(words: list[str]) -> None:
    request = parse(words, command_word=False)
    if request is not None:
        assert parse(["sendmail", *words]) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["sendmail", "-t"],
        ["-c", "/etc/mc", "sendmail", "-i", "-f", "s@example.org", "r@example.net"],
        ["sendmail", "-oi", "-fs@example.org", "-F", "Joe", "-bm", "r@example.net"],
        ["sendmail", "-C", "/etc/mc/main.cf", "-r", "", "-v", "r@example.net"],
    ],
)
def test_ordinary_command_lines_are_taken(argv: list[str]) -> None:
    assert parse(argv) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["sendmail", "-bv", "r@example.net"],  # another mode
        ["sendmail", "r@example.net", "-t"],  # an option after a recipient
        ["sendmail", "-ti", "r@example.net"],  # combined flags
        ["sendmail", "-f", "-x", "r@example.net"],  # a value like an option
        ["sendmail", "-N", "never", "r@example.net"],
        ["-o", "myorigin=x", "sendmail", "r@example.net"],
        ["sendmail", "--", "r@example.net"],
        ["queue", "list"],
    ],
)
def test_the_rest_is_left_to_argparse(argv: list[str]) -> None:
    assert parse(argv) is None


def test_a_bad_command_line_is_left_to_argparse() -> None:
    assert parse(["sendmail", "-f"]) is None
    with pytest.raises(UsageError):
        _build_parser("sendmail").parse_args(["sendmail", "-f"])
