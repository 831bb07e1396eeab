"""cli_queue_admin.py: ``queue shape`` and the selections of ``queue list`` and the bulk
actions, on a queue built with known ages, domains, senders and deferral reasons
(tests/queue/helpers.py `known_queue`; the messages are numbered 1 to 6 as in its table).

The queue's ages are counted from the real clock here (the command reads it): every age is
minutes below the next bucket limit or --older-than value it is compared with (message 6,
10 minutes old, is at a limit it only moves away from), so a slow machine changes nothing."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from mailcarrier.cli import run
from tests.queue.helpers import known_queue


def _run(queue: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(["-o", f"queue_directory={queue}", "queue", *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _ids(queue: Path) -> list[str]:
    """The queue IDs of known_queue's messages 1 to 6, in order."""
    return sorted(n for q in ("incoming", "deferred") for n in os.listdir(queue / q))


def _where(queue: Path) -> dict[str, tuple[str, float]]:
    """Every queue file: its queue and its modification time (the next attempt's time)."""
    out = {}
    for name in ("incoming", "active", "deferred", "hold", "corrupt"):
        for queue_id in os.listdir(queue / name):
            out[queue_id] = (name, os.stat(queue / name / queue_id).st_mtime)
    return out


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    known_queue(tmp_path, time.time())
    return tmp_path


HEAD = " " * 39 + "  T  5 10 20 40 80 160 320 640 1280 1280+\n"


def test_shape_of_incoming_and_active(queue: Path) -> None:
    assert _run(queue, "shape") == (
        0,
        HEAD
        + " " * 34 + "TOTAL  6  2  1  0  1  0   0   1   0    0     1\n"
        + " " * 28 + "example.com  4  2  0  0  1  0   0   0   0    0     1\n"
        + " " * 28 + "example.net  1  0  1  0  0  0   0   0   0    0     0\n"
        + " " * 23 + "mail.example.net  1  0  0  0  0  0   0   1   0    0     0\n",
        "",
    )  # fmt: skip


def test_shape_of_senders_in_named_queues_and_the_top_row(queue: Path) -> None:
    assert _run(queue, "shape", "-s", "-n", "1", "incoming", "deferred") == (
        0,
        HEAD
        + " " * 34 + "TOTAL  6  1  1  1  1  0   0   1   0    0     1\n"
        + " " * 28 + "example.org  4  1  1  1  0  0   0   0   0    0     1\n",
        "",
    )  # fmt: skip


def test_shape_of_an_empty_queue(tmp_path: Path) -> None:
    assert _run(tmp_path, "shape", "hold", "-b", "2") == (
        0,
        " " * 71 + "  T  5 5+\n" + " " * 66 + "TOTAL  0  0  0\n",
        "",
    )


def test_list_shows_only_the_selected_messages(queue: Path) -> None:
    ids = _ids(queue)
    code, out, _ = _run(queue, "list", "--json", "--domain", "example.com", "--older-than", "20m")
    assert code == 0
    assert [json.loads(line)["queue_id"] for line in out.splitlines()] == [ids[2], ids[4]]
    code, out, _ = _run(queue, "list", "--reason", "mailbox busy")
    listed = [line.split()[0] for line in out.splitlines() if line[:1].isalnum()]
    assert code == 0 and listed == [ids[5]]
    assert _run(queue, "list", "--sender", "nobody@example.org") == (0, "Mail queue is empty\n", "")


def test_hold_acts_on_exactly_the_selected_messages(queue: Path) -> None:
    ids = _ids(queue)
    before = _where(queue)
    code, out, err = _run(queue, "hold", "--domain", "example.com", "--older-than", "20m")
    assert (code, out) == (0, "")
    assert err.splitlines()[-1] == "mailcarrier: Placed on hold: 2 messages"
    assert [line.split(": ", 1)[1] for line in err.splitlines()[:-1]] == [
        f"{ids[2]}: placed on hold",
        f"{ids[4]}: placed on hold",
    ]
    after = _where(queue)
    assert {i for i in ids if after[i] != before[i]} == {ids[2], ids[4]}
    assert after[ids[2]][0] == after[ids[4]][0] == "hold"


def test_ids_and_a_selection_both_count(queue: Path) -> None:
    ids = _ids(queue)
    code, _, err = _run(queue, "requeue", ids[1], ids[2], "--domain", "example.net")
    assert code == 0 and err.endswith("mailcarrier: Requeued: 1 message\n")
    assert _run(queue, "hold", "ALL", "--sender", "<>")[2].endswith("Placed on hold: 1 message\n")
    assert _where(queue)[ids[2]][0] == "hold"
    code, _, err = _run(queue, "release", "--reason", "busy")  # 6 is not on hold
    assert code == 0 and err == "mailcarrier: Released from hold: 0 messages\n"
    assert _run(queue, "release", "--older-than", "20m")[2].endswith("hold: 1 message\n")
    assert _where(queue)[ids[2]] == ("deferred", 0.0)


def test_flush_makes_only_the_selected_deferred_mail_due(queue: Path) -> None:
    ids = _ids(queue)
    assert _run(queue, "flush", "--reason", "no such reason") == (0, "", "")
    assert _where(queue)[ids[5]][1] > 0
    assert _run(queue, "flush", "--domain", "example.com", "--reason", "4.2.0") == (0, "", "")
    assert _where(queue)[ids[5]] == ("deferred", 0.0)


@pytest.mark.parametrize(
    ("action", "selection", "chosen", "note"),
    [
        ("delete", ["--sender", "example.org"], [0, 1, 4, 5], "removed"),
        ("hold", ["--domain", ".example.net"], [3], "placed on hold"),
        ("requeue", ["--older-than", "1h"], [3, 4], "requeued"),
        ("flush", ["--reason", "busy"], [5], "flushed"),
        ("release", ["ALL"], [], "released from hold"),
    ],
)
def test_dry_run_prints_what_it_would_touch_and_touches_nothing(
    queue: Path, action: str, selection: list[str], chosen: list[int], note: str
) -> None:
    ids = _ids(queue)
    before = _where(queue)
    code, out, err = _run(queue, action, *selection, "--dry-run")
    assert code == 0
    assert out == "".join(f"{ids[i]}: would be {note}\n" for i in chosen)
    plural = "" if len(chosen) == 1 else "s"
    assert err == f"mailcarrier: dry run: {len(chosen)} message{plural} would be {note}\n"
    assert _where(queue) == before
    assert not (queue / "flush.request").exists()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["hold", "--reason", "(x"], "bad --reason '(x': missing ), unterminated subpattern"),
        (["delete", "--older-than", "2x"], "bad --older-than '2x': expected a number and a unit"),
        (["list", "--older-than", "soon"], "bad --older-than 'soon'"),
        (["requeue", "--domain", "a@b"], "bad --domain 'a@b'"),
        (["release", "--sender", "a@b@c", "--dry-run"], "bad --sender 'a@b@c'"),
        (["hold"], "queue hold: name queue IDs, ALL, or select messages"),
        (["delete", "--dry-run"], "queue delete: name queue IDs, ALL, or select messages"),
        (["shape", "maildrop"], "queue shape: 'maildrop': not one of incoming, active,"),
        (["shape", "-b", "0"], "queue shape: -b must be at least 1"),
        (["shape", "-t", "soon"], "mailcarrier queue shape: argument -t: invalid int value"),
    ],
)
def test_bad_input_is_one_line_and_exit_64(queue: Path, args: list[str], error: str) -> None:
    before = _where(queue)
    code, out, err = _run(queue, *args)
    assert (code, out) == (64, "")
    assert err.startswith(f"mailcarrier: fatal: {error}") and err.count("\n") == 1
    assert _where(queue) == before


def test_flush_by_queue_id_as_postqueue_i(queue: Path) -> None:
    ids = _ids(queue)
    code, out, err = _run(queue, "flush", ids[5], ids[0])
    assert (code, out) == (0, "")
    assert err.split(": ", 1)[1] == f"warning: {ids[0]}: no such message in deferred\n"
    assert _where(queue)[ids[5]] == ("deferred", 0.0)
    assert (queue / "flush.request").exists()
