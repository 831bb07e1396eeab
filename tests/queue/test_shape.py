"""queue/shape.py: qshape's table for a queue built with known ages, domains and senders.

Every expected table is written out by hand: the columns' widths follow from their headings
and the TOTAL row's counts (a width of one more than the longer of the two, at least 3), and
the name column takes what is left of 80 (at least 18).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.queue.shape import (
    Shape,
    ShapeTable,
    fold_domain,
    format_shape,
    parent_domain,
    shape_queue,
)
from mailcarrier.queue.spool import Spool
from tests.queue.helpers import known_queue

NOW = 1_700_000_000.0


# Headings and widths of the default buckets: T 5 10 20 40 80 (3 each), 160 320 640 (4 each),
# 1280 (5), 1280+ (6): 41 columns, so the names take 39.
HEAD = " " * 39 + "  T  5 10 20 40 80 160 320 640 1280 1280+\n"


def test_recipient_domains_of_incoming_and_active(tmp_path: Path) -> None:
    table = shape_queue(known_queue(tmp_path, NOW), ("incoming", "active"), Shape(), NOW)
    assert format_shape(table) == (
        HEAD
        + " " * 34 + "TOTAL  6  2  1  0  1  0   0   1   0    0     1\n"
        + " " * 28 + "example.com  4  2  0  0  1  0   0   0   0    0     1\n"
        + " " * 28 + "example.net  1  0  1  0  0  0   0   0   0    0     0\n"
        + " " * 23 + "mail.example.net  1  0  0  0  0  0   0   1   0    0     0\n"
    )  # fmt: skip


def test_senders_count_each_message_once(tmp_path: Path) -> None:
    table = shape_queue(
        known_queue(tmp_path, NOW), ("incoming", "active"), Shape(senders=True), NOW
    )
    assert format_shape(table) == (
        HEAD
        + " " * 34 + "TOTAL  5  1  1  0  1  0   0   1   0    0     1\n"
        + " " * 28 + "example.org  3  1  1  0  0  0   0   0   0    0     1\n"
        + " " * 30 + "other.org  1  0  0  0  0  0   0   1   0    0     0\n"
        + " " * 26 + "MAILER-DAEMON  1  0  0  0  1  0   0   0   0    0     0\n"
    )  # fmt: skip


def test_an_age_at_a_bucket_limit_is_in_the_next_bucket(tmp_path: Path) -> None:
    # Message 6 is exactly 10 minutes old: not under 10, so in [10, 20).
    table = shape_queue(known_queue(tmp_path, NOW), ("deferred",), Shape(), NOW)
    assert format_shape(table) == (
        HEAD
        + " " * 34 + "TOTAL  1  0  0  1  0  0   0   0   0    0     0\n"
        + " " * 28 + "example.com  1  0  0  1  0  0   0   0   0    0     0\n"
    )  # fmt: skip


def test_fewer_longer_buckets_and_the_top_rows(tmp_path: Path) -> None:
    # -b 3 -t 60: [0, 60), [60, 120), 120+; widths 3 (T), 3 (60), 4 (120), 5 (120+).
    shape = Shape(buckets=3, bucket_time=60, top=1)
    table = shape_queue(known_queue(tmp_path, NOW), ("incoming", "deferred"), shape, NOW)
    assert format_shape(table) == (
        " " * 65 + "  T 60 120 120+\n"
        + " " * 60 + "TOTAL  7  5   0    2\n"
        + " " * 54 + "example.com  5  4   0    1\n"
    )  # fmt: skip


def test_parent_domains_with_enough_subdomains(tmp_path: Path) -> None:
    # .example.net has one subdomain (mail.example.net); example.com has none below it.
    shape = Shape(parents=True, min_subdomains=1, buckets=2, bucket_time=60)
    table = shape_queue(known_queue(tmp_path, NOW), ("incoming",), shape, NOW)
    assert format_shape(table) == (
        " " * 70 + "  T 60 60+\n"
        + " " * 65 + "TOTAL  6  4   2\n"
        + " " * 59 + "example.com  4  3   1\n"
        + " " * 59 + "example.net  1  1   0\n"
        + " " * 58 + ".example.net  1  0   1\n"
        + " " * 54 + "mail.example.net  1  0   1\n"
    )  # fmt: skip
    fewer = Shape(parents=True, buckets=2, bucket_time=60)  # -m 5: .example.net is not shown
    lines = format_shape(shape_queue(Spool(tmp_path), ("incoming",), fewer)).splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        "TOTAL",
        "example.com",
        "example.net",
        "mail.example.net",
    ]


def test_linear_buckets_and_a_single_bucket() -> None:
    assert Shape(linear=True, buckets=4, bucket_time=10).headings() == [
        "T",
        "10",
        "20",
        "30",
        "30+",
    ]
    assert Shape(buckets=5, bucket_time=1).headings() == ["T", "1", "2", "4", "8", "8+"]
    assert Shape(buckets=1).headings() == ["T", "0+"]
    linear = Shape(linear=True, buckets=4, bucket_time=10)
    ages = [0, 599, 600, 1199, 1200, 1799, 1800, 10**9]
    assert [linear.bucket(a) for a in ages] == [1, 1, 2, 2, 3, 3, 4, 4]
    doubling = Shape()
    ages = [-60, 0, 299, 300, 599, 600, 1199, 1200, 76799, 76800, 10**9]
    assert [doubling.bucket(a) for a in ages] == [1, 1, 1, 2, 2, 3, 3, 4, 9, 10, 10]


def test_long_names_are_cut_on_the_left() -> None:
    # Widths 3 (T) and 3 ("0+"): the names take 40 - 6 = 34 columns.
    table = ShapeTable(Shape(buckets=1, width=40))
    long = "a-very-long-host-name.mail.example.com"  # 38 characters
    table.add("u@" + long, 1)
    table.add("u@x." + long, 1)
    assert format_shape(table) == (
        " " * 34 + "  T 0+\n"
        + " " * 29 + "TOTAL  2  2\n"
        + "+" + long[-33:] + "  1  1\n"
        + "+" + ("x." + long)[-33:] + "  1  1\n"
    )  # fmt: skip
    # Narrower than 18 columns is not asked for: the names keep 18, a parent is cut to ".+".
    parents = ShapeTable(Shape(buckets=1, width=20, parents=True, min_subdomains=1))
    parents.add("u@host.a-long-parent-domain.example", 1)
    assert format_shape(parents).splitlines()[2:] == [
        ".+" + "long-parent-domain.example"[-16:] + "  1  1",
        "+" + "host.a-long-parent-domain.example"[-17:] + "  1  1",
    ]


def test_names_from_the_queue_are_made_printable() -> None:
    table = ShapeTable(Shape(buckets=1, width=30))
    table.add("u@evil\x1b[2J.example", 1)
    assert format_shape(table).splitlines()[2] == " " * 8 + "evil?[2j.example  1  1"


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("", "MAILER-DAEMON"),
        ("User@Example.COM", "example.com"),
        ("a@b@host..example.org.", "host.example.org"),
        ("no-at-sign", "no-at-sign"),
        ("x@.example.net", "example.net"),
    ],
)
def test_fold_domain(address: str, domain: str) -> None:
    assert fold_domain(address) == domain


def test_parent_domain() -> None:
    assert parent_domain("mail.example.com") == ".example.com"
    assert parent_domain(".a.b.example.com") == ".b.example.com"
    assert parent_domain("example.com") is None
    assert parent_domain(".example.com") is None
