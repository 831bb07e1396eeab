"""What a Postfix admin types first: sendmail's recipient arguments as RFC 822 address lists,
-bp (the queue as mailq shows it), -q (flush), the modes refused with one line, `mailq`
(and mailcarrier-mailq), and `queue show` as postcat shows a queue file."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from mailcarrier.cli import run

MESSAGE = b"Subject: habits\nFrom: s@example.org\n\nfirst body line\nsecond\n"


def _opts(queue: Path) -> list[str]:
    return ["-o", f"queue_directory={queue}", "-o", "myorigin=example.org"]


def _run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _only_id(queue: Path) -> str:
    (name,) = os.listdir(queue / "incoming")
    return name


def test_recipient_arguments_are_address_lists(tmp_path: Path) -> None:
    args = ["sendmail", "-f", "s@example.org", "Ann <ann@example.net>", "b@x.example, c@y.example"]
    assert _run([*_opts(tmp_path), *args], MESSAGE)[0] == 0
    code, out, _ = _run([*_opts(tmp_path), "queue", "show", "--envelope", _only_id(tmp_path)])
    assert code == 0
    recipients = [line for line in out.splitlines() if line.startswith("recipient: ")]
    assert recipients == [
        "recipient: ann@example.net",
        "recipient: b@x.example",
        "recipient: c@y.example",
    ]


def test_a_bad_recipient_list_queues_nothing(tmp_path: Path) -> None:
    code, _, err = _run([*_opts(tmp_path), "sendmail", "Ann <ann@example.net"], MESSAGE)
    assert code == 65
    assert err == (
        "mailcarrier: fatal: cannot parse recipient address list: 'Ann <ann@example.net'\n"
    )
    assert not (tmp_path / "incoming").exists() or os.listdir(tmp_path / "incoming") == []


def test_bp_lists_the_queue_and_q_flushes_it(tmp_path: Path) -> None:
    o = _opts(tmp_path)
    _run([*o, "sendmail", "a@example.net"], MESSAGE)
    code, out, _ = _run([*o, "sendmail", "-bp"])
    assert code == 0 and out.startswith("-Queue ID-") and "in 1 Request." in out
    assert _run([*o, "mailq"])[1] == out
    assert _run([*o, "sendmail", "-q"])[0] == 0
    assert (tmp_path / "flush.request").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["-bd"], "-bd: mailcarrier has no SMTP listener; the queue daemon is `mailcarrier run`"),
        (["-q1h"], "-q1h: a queue run interval: use `mailcarrier run`"),
    ],
)
def test_modes_that_are_not_here_say_so(tmp_path: Path, flags: list[str], line: str) -> None:
    code, _, err = _run([*_opts(tmp_path), "sendmail", *flags])
    assert (code, err) == (64, f"mailcarrier: fatal: {line}\n")


def test_queue_show_as_postcat(tmp_path: Path) -> None:
    o = _opts(tmp_path)
    _run([*o, "sendmail", "-f", "s@example.org", "-N", "failure", "r@example.net"], MESSAGE)
    qid = _only_id(tmp_path)
    code, out, _ = _run([*o, "queue", "show", qid])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"*** ENVELOPE RECORDS incoming/{qid} ***"
    assert "sender: s@example.org" in lines
    assert "notify_flags: FAILURE" in lines
    assert lines[lines.index("recipient: r@example.net") + 1] == "status: pending"
    start = lines.index(f"*** MESSAGE CONTENTS incoming/{qid} ***")
    assert lines[start + 1 :][-4:] == ["", "first body line", "second", lines[-1]]
    assert lines[-1] == f"*** MESSAGE FILE END incoming/{qid} ***"
    body = _run([*o, "queue", "show", "--body", qid])[1].splitlines()
    assert body == [
        f"*** MESSAGE CONTENTS incoming/{qid} ***",
        "first body line",
        "second",
        f"*** MESSAGE FILE END incoming/{qid} ***",
    ]
    headers = _run([*o, "queue", "show", "--headers", qid])[1].splitlines()
    assert "Subject: habits" in headers and "first body line" not in headers


def test_queue_show_of_an_unknown_id(tmp_path: Path) -> None:
    code, _, err = _run([*_opts(tmp_path), "queue", "show", "NOSUCHID"])
    assert (code, err) == (
        64,
        "mailcarrier: fatal: queue show: NOSUCHID: no such message in the queue\n",
    )


def test_mailq_entry_point_is_installed() -> None:
    assert (Path(sys.executable).parent / "mailcarrier-mailq").exists()
