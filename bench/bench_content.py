"""Microbenchmark of mailcarrier.content: SMTP DATA encoding throughput in MB/s.

Run as ``python -m bench.bench_content [--size-mb N] [--chunk-size BYTES]``. Each case builds
one chunk of representative content in memory, feeds it repeatedly to a fresh `DataEncoder`
until N MB went through, and prints the input throughput. This measures the encoder alone (no
file or socket I/O); it is not a test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Final

from mailcarrier.content.encoder import DataEncoder

_WORDS: Final = (
    b"the quick brown fox jumps over lazy dog mail carrier queue relay smtp client "
    b"message delivery status notification header body line"
).split()


def _text(size: int, newline: bytes, *, seed: int = 1) -> bytes:
    """Ordinary text: lines of 0..76 bytes, a few starting with a dot."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    total = 0
    while total < size:
        line = b" ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 12)))[:76]
        if rng.random() < 0.01:
            line = b"." + line
        lines.append(line)
        total += len(line) + len(newline)
    return (newline.join(lines) + newline)[:size]


def _long_lines(size: int) -> bytes:
    line = b"x" * 4000 + b"\n"
    return (line * (size // len(line) + 1))[:size]


def _text_with_a_long_line(size: int) -> bytes:
    """Ordinary text with one 2000-byte line (an HTML blob, say) in the middle."""
    text = _text(size, b"\n")
    middle = text.index(b"\n", size // 2) + 1
    return (text[:middle] + b"<p>" + b"z" * 1997 + b"\n" + text[middle:])[:size]


def _eight_bit(size: int) -> bytes:
    return _text(size, b"\n").replace(b"e", b"\xc3\xa9")[:size]


CASES: Final[dict[str, Callable[[int], bytes]]] = {
    "text, CRLF line endings": lambda n: _text(n, b"\r\n"),
    "text, bare LF line endings": lambda n: _text(n, b"\n"),
    "text, bare CR line endings": lambda n: _text(n, b"\r"),
    "text, UTF-8 (8bit)": _eight_bit,
    "text with one 2000-byte line per chunk": _text_with_a_long_line,
    "4000-byte lines (broken at 998)": _long_lines,
    "one endless line (broken at 998)": lambda n: b"y" * n,
}


def run_case(chunk: bytes, total: int, *, line_length_limit: int = 998) -> float:
    """Feed `chunk` repeatedly until `total` bytes went in; return MB/s of input."""
    encoder = DataEncoder(line_length_limit=line_length_limit)
    rounds = max(1, total // len(chunk))
    start = time.perf_counter()
    for _ in range(rounds):
        encoder.feed(chunk)
    encoder.finish()
    elapsed = time.perf_counter() - start
    return rounds * len(chunk) / elapsed / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_content", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=100, help="MB of input per case")
    parser.add_argument("--chunk-size", type=int, default=65536, help="bytes per feed()")
    args = parser.parse_args(argv)
    total = args.size_mb * 1_000_000
    print(f"DataEncoder, {args.size_mb} MB per case, {args.chunk_size}-byte chunks")
    for name, make in CASES.items():
        rate = run_case(make(args.chunk_size), total)
        print(f"  {name:<40} {rate:8.0f} MB/s")
    rate = run_case(_text(args.chunk_size, b"\n"), total, line_length_limit=0)
    print(f"  {'text, bare LF, no line limit':<40} {rate:8.0f} MB/s")


if __name__ == "__main__":
    main()
