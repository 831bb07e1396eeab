"""``mailcarrier queue shape``: how the queue is spread over domains and ages, as qshape(1).

One row per recipient domain (or sender domain, with `Shape.senders`: ``-s``) and a TOTAL
row, against age columns: ``T`` (all ages), then buckets whose headings are their upper age
limits in minutes. The first bucket holds ages under `bucket_time` minutes; each next one
ends at twice the limit of the one before (``-l``: one more `bucket_time` instead), and the
last one (heading ``LIMIT+``) has no limit. Ages are counted from the message's arrival.
A recipient address is counted once per message while it has no final verdict; a sender
once per message, the null sender as ``MAILER-DAEMON``. Domains are folded to lower case,
with doubled and outer dots removed; with `Shape.parents` (``-p``), each address counts too
for its parent domains (``.example.com``), except top-level ones, and a parent is shown when
it has at least `min_subdomains` distinct subdomains. Rows are ordered by their totals, then
by the length of the name, then by name; `top` rows at most (0: all). The table is
right-justified to `width` columns: a name that does not fit is cut on the left, marked
``+`` (``.+`` for a parent domain). Reading goes through the spool; nothing is changed.
Neighbours: admin.py (mailq, postsuper), show.py (postcat).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from mailcarrier.printable import printable
from mailcarrier.queue.spool import QueueMessage, Spool

__all__ = ["DEFAULT_SHAPE_QUEUES", "Shape", "ShapeTable", "format_shape", "shape_queue"]

DEFAULT_SHAPE_QUEUES: Final = ("incoming", "active")
_TOTAL: Final = "TOTAL"
_MIN_NAME_WIDTH: Final = 18


@dataclass(frozen=True, slots=True)
class Shape:
    """What to count and how to show it (qshape's options)."""

    senders: bool = False  # -s
    parents: bool = False  # -p
    min_subdomains: int = 5  # -m
    buckets: int = 10  # -b
    bucket_time: int = 5  # -t, minutes
    linear: bool = False  # -l
    width: int = 80  # -w
    top: int = 0  # -n: rows after TOTAL (0: all)

    def limits(self) -> list[int]:
        """The upper age limits in minutes of all buckets but the last."""
        out: list[int] = []
        for i in range(self.buckets - 1):
            if self.linear or i == 0:
                out.append(self.bucket_time * (i + 1))
            else:
                out.append(out[-1] * 2)
        return out

    def headings(self) -> list[str]:
        limits = self.limits()
        last = f"{limits[-1] if limits else 0}+"
        return ["T", *(str(m) for m in limits), last]

    def bucket(self, age: float) -> int:
        """The bucket (1 to `buckets`) of a message `age` seconds old."""
        for index, limit in enumerate(self.limits(), 1):
            if age < limit * 60:
                return index
        return self.buckets


@dataclass
class ShapeTable:
    """Counts by row name: [total, bucket 1, ..., bucket N]; subdomains of parents."""

    shape: Shape
    counts: dict[str, list[int]] = field(default_factory=dict)
    subdomains: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str, bucket: int) -> bool:
        """Count one address for `name`; true when `name` was new."""
        row = self.counts.get(name)
        new = row is None
        if row is None:
            row = self.counts[name] = [0] * (self.shape.buckets + 1)
        row[0] += 1
        row[bucket] += 1
        return new

    def add(self, address: str, bucket: int) -> None:
        self._count(_TOTAL, bucket)
        name = fold_domain(address)
        new = self._count(name, bucket)
        while self.shape.parents:
            parent = parent_domain(name)
            if parent is None:
                break
            parent_new = self._count(parent, bucket)
            if new:
                self.subdomains[parent] = self.subdomains.get(parent, 0) + 1
            name, new = parent, parent_new

    def rows(self) -> list[tuple[str, list[int]]]:
        """TOTAL first, then the rows to show, biggest first."""
        total = self.counts.get(_TOTAL, [0] * (self.shape.buckets + 1))
        names = [
            n
            for n in self.counts
            if n != _TOTAL
            and (not n.startswith(".") or self.subdomains.get(n, 0) >= self.shape.min_subdomains)
        ]
        names.sort(key=lambda n: (-self.counts[n][0], len(n), n))
        if self.shape.top > 0:
            names = names[: self.shape.top]
        return [(_TOTAL, total), *((n, self.counts[n]) for n in names)]


def fold_domain(address: str) -> str:
    """The domain qshape shows for `address`: what follows the last "@", in lower case,
    doubled dots made one and outer dots removed; ``MAILER-DAEMON`` for the null sender."""
    if not address:
        return "MAILER-DAEMON"
    domain = address.rpartition("@")[2].lower()
    while ".." in domain:
        domain = domain.replace("..", ".")
    return domain.strip(".") or domain


def parent_domain(name: str) -> str | None:
    """``.example.com`` for ``mail.example.com`` or ``.mail.example.com``; None for a
    name whose parent would be a top-level domain."""
    labels = name.lstrip(".").split(".")
    if len(labels) < 3:
        return None
    return "." + ".".join(labels[1:])


def shape_queue(
    spool: Spool, queues: Sequence[str], shape: Shape, now: float | None = None
) -> ShapeTable:
    """Count the messages of `queues` (ages from `now`, default the spool's clock)."""
    when = spool.clock() if now is None else now
    table = ShapeTable(shape)
    for queue in queues:
        for message in spool.scan(queue):
            bucket = shape.bucket(when - message.envelope.arrival_time)
            for address in _addresses(message, shape.senders):
                table.add(address, bucket)
    return table


def _addresses(message: QueueMessage, senders: bool) -> Iterable[str]:
    env = message.envelope
    if senders:
        return [env.sender]
    return [env.recipients[i].address for i in message.pending()]


def format_shape(table: ShapeTable, *, utf8: bool = True) -> str:
    """The table as text, one line per row, headings first. Names come from queue files:
    they are made printable (printable.py) before they are measured."""
    shape = table.shape
    headings = shape.headings()
    total = table.counts.get(_TOTAL, [0] * (shape.buckets + 1))
    widths = []
    for heading, count in zip(headings, total, strict=True):
        size = max(len(heading), len(str(count)))
        widths.append(size + 1 if size > 2 else 3)
    name_width = max(_MIN_NAME_WIDTH, shape.width - sum(widths))
    lines = [_line("", headings, widths, name_width)]
    for name, counts in table.rows():
        shown = printable(name, utf8=utf8)
        lines.append(_line(shown, [str(c) for c in counts], widths, name_width))
    return "".join(line + "\n" for line in lines)


def _line(name: str, cells: list[str], widths: list[int], name_width: int) -> str:
    if len(name) > name_width:
        mark = ".+" if name.startswith(".") else "+"
        name = mark + name[len(name) - name_width + len(mark) :]
    return name.rjust(name_width) + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
