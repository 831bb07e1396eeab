"""The layering of DESIGN.md, enforced: imports point down only, and protocol/ stays sans-IO."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mailcarrier"

# Higher number = higher layer. A module may import its own layer or lower ones.
RANKS: dict[str, int] = {
    "errors": 0,
    "stages": 0,
    "printable": 0,
    "tables": 1,
    "config": 2,
    "status": 3,
    "log": 3,
    "protocol": 4,
    "content": 5,
    "tls": 6,
    "sasl": 6,
    "transport": 7,
    "routing": 8,
    "delivery": 9,
    "queue": 10,
    "api": 11,
    "__init__": 12,
    "cli": 12,
    "console": 12,
}
SANS_IO_FORBIDDEN = {"asyncio", "socket", "ssl", "time", "logging", "selectors", "threading"}


def _layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "mailcarrier"
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _own_layer(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0] if rel.parts else "__init__"


def test_every_module_has_a_layer() -> None:
    for path in _modules():
        assert _own_layer(path) in RANKS, f"{path} is in no layer of DESIGN.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    mine = _own_layer(path)
    for module, lineno in _imports(path):
        if not module.startswith("mailcarrier"):
            continue
        theirs = _layer_of(module)
        assert RANKS[theirs] <= RANKS[mine], (
            f"{path.relative_to(SRC)}:{lineno}: layer {mine} imports higher layer {theirs}"
        )


@pytest.mark.parametrize("path", sorted((SRC / "protocol").rglob("*.py")), ids=lambda p: p.name)
def test_protocol_is_sans_io(path: Path) -> None:
    for module, lineno in _imports(path):
        top = module.split(".")[0]
        assert top not in SANS_IO_FORBIDDEN, f"{path.name}:{lineno} imports {module}"
        assert not module.startswith("mailcarrier.config"), f"{path.name}:{lineno} reads config"


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from mailcarrier.delivery.agent import DeliveryAgent\n")
    assert _imports(bad) == [("mailcarrier.delivery.agent", 1)]
    assert RANKS[_layer_of("mailcarrier.delivery.agent")] > RANKS["protocol"]
