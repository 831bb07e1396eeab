"""Tests for tables/cidr.py beyond the golden cases."""

from __future__ import annotations

from pathlib import Path

from mailcarrier.tables import open_table


def test_ipv6_and_first_match(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text("::1 loopback6\n::/0 any6\n0.0.0.0/0 any4\n")
    table = open_table(f"cidr:{path}")
    assert table.lookup("::1") == "loopback6"
    assert table.lookup("fe80::1") == "any6"
    assert table.lookup("8.8.8.8") == "any4"
    assert table.lookup("") is None


def test_if_endif_errors(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_text("endif\nif\nif 10.0.0.0/8\n10.1.0.0/16 x\n")
    table = open_table(f"cidr:{path}")
    assert table.warnings == [
        f"{path}:1: ignoring ENDIF without matching IF",
        f"{path}:2: missing network after IF; skipping this rule",
        f"{path}:4: IF has no matching ENDIF",
    ]
    assert table.lookup("10.1.2.3") == "x"
    assert table.lookup("11.1.2.3") is None


def test_braced_rules_in_main_cf() -> None:
    """``cidr:{{rule}, {rule}}`` (Postfix 3.7), as smtp_requiretls_policy's default uses."""
    table = open_table("cidr:{{0.0.0.0/0 opportunistic}, {::/0 opportunistic}, {10.0.0.1/8 x}}")
    assert table.lookup("127.0.0.1") == "opportunistic"
    assert table.lookup("[::1]") == "opportunistic"
    assert table.lookup("example.com") is None
    assert table.files() == ()
    assert table.warnings == [
        "cidr:{{0.0.0.0/0 opportunistic}, {::/0 opportunistic}, {10.0.0.1/8 x}}:3: non-null host "
        'address bits in "10.0.0.1/8", perhaps you should use "10.0.0.0/8" instead; skipping '
        "this rule"
    ]
