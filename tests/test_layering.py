"""The layering of DESIGN.md, enforced: imports point down only, protocol/ stays sans-IO, no
module is part of an import cycle, and no module uses another module's underscore names.

Each rule reads the source with `ast` and imports nothing. The two newer rules have explicit
allowlists (`KNOWN_CYCLES`, `KNOWN_PRIVATE_USES`) of what was there when they were written:
those lists may only shrink. A fixed entry must be removed (the test says so), and a new
cycle or private use fails with the file and line and what to do instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mailcarrier"

# Higher number = higher layer. A module may import its own layer or lower ones.
RANKS: dict[str, int] = {
    "errors": 0,
    "stages": 0,
    "printable": 0,
    "aio": 0,
    "durable": 0,
    "progress": 0,
    "idn": 0,
    "lazy": 0,
    "notify": 0,
    "tables": 1,
    "config": 2,
    "status": 3,
    "log": 3,
    "loghandlers": 3,
    "events": 3,
    "protocol": 4,
    "content": 5,
    "fleet": 5,
    "tls": 6,
    "sasl": 6,
    "transport": 7,
    "routing": 8,
    "delivery": 9,
    "queue": 10,
    "lean": 10,
    "eventlog": 10,
    "counters": 10,
    "postfix": 10,
    "observe": 11,
    "api": 11,
    "api_content": 11,
    "sending": 11,
    "__init__": 12,
    "__main__": 12,
    "cli": 12,
    "entry": 12,
    "cli_queue": 12,
    "cli_queue_admin": 12,
    "cli_sendmail": 12,
    "cli_fleet": 12,
    "cli_observe": 12,
    "cli_support": 12,
    "contrib": 12,
    "message_input": 12,
    "console": 12,
    "service": 12,
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


# --- no import cycle --------------------------------------------------------------------------
#
# Every import counts: at module level, under `if TYPE_CHECKING:` and inside functions. A
# strongly connected set of modules in the import graph is a cycle.

# The cycles that existed when this check was written. Remove an entry when its cycle is gone
# (the test fails until you do); never add one.
KNOWN_CYCLES: Final[frozenset[frozenset[str]]] = frozenset({})


@dataclass(frozen=True)
class ImportSite:
    """One import statement of `module` that reaches `target` (both dotted module names)."""

    module: str
    target: str
    path: Path
    line: int
    where: str  # "", "under TYPE_CHECKING" or "inside a function"


def _module_names(root: Path) -> dict[str, Path]:
    """Dotted module name (from `root`'s parent) of every .py file under the package `root`."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _placed_nodes(tree: ast.AST, where: str = "") -> Iterator[tuple[ast.AST, str]]:
    """Every node of `tree` with where it sits: inside a function, under TYPE_CHECKING or not."""
    for child in ast.iter_child_nodes(tree):
        place = where
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            place = "inside a function"
        elif isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
            yield child, where
            for node in child.body:
                yield node, where or "under TYPE_CHECKING"
                yield from _placed_nodes(node, where or "under TYPE_CHECKING")
            for node in child.orelse:
                yield node, where
                yield from _placed_nodes(node, where)
            continue
        yield child, place
        yield from _placed_nodes(child, place)


def _imported_modules(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    """The modules an import statement reaches: `import a.b` reaches a.b; `from a import b`
    reaches the submodule a.b if there is one, else a (the module that holds the name b).
    Names outside `modules` are cut back to the nearest module of the package, if any."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    else:
        return []
    reached = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name not in reached:
            reached.append(name)
    return reached


def _import_sites(root: Path) -> list[ImportSite]:
    """Each import between two modules of the package `root`."""
    modules = _module_names(root)
    sites: list[ImportSite] = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, where in _placed_nodes(ast.parse(path.read_text(), str(path))):
            for target in _imported_modules(node, package, modules):
                if target != module:
                    line = getattr(node, "lineno", 0)
                    sites.append(ImportSite(module, target, path, line, where))
    return sites


def _strongly_connected(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative: the sets of two or more modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.add(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        found.append(frozenset(members))
    return found


def _cycles(root: Path) -> dict[frozenset[str], list[ImportSite]]:
    """Each import cycle of the package `root` (names without the package prefix), with the
    imports that make it."""
    sites = _import_sites(root)
    edges: dict[str, set[str]] = {}
    for site in sites:
        edges.setdefault(site.module, set()).add(site.target)
    prefix = root.name + "."
    cycles: dict[frozenset[str], list[ImportSite]] = {}
    for members in _strongly_connected(edges):
        inside = [s for s in sites if s.module in members and s.target in members]
        cycles[frozenset(m.removeprefix(prefix) for m in members)] = inside
    return cycles


def _describe_cycle(members: frozenset[str], sites: list[ImportSite]) -> str:
    lines = [f"import cycle among {', '.join(sorted(members))}:"]
    for site in sorted(sites, key=lambda s: (str(s.path), s.line)):
        how = f" ({site.where})" if site.where else ""
        lines.append(f"  {_repo_path(site.path)}:{site.line}: imports {site.target}{how}")
    lines.append(
        "  Break it: move what both sides need into a lower module, or have the caller pass "
        "it in (a typing.Protocol parameter). An import under TYPE_CHECKING or inside a "
        "function still makes a cycle. (KNOWN_CYCLES lists old cycles to remove; adding "
        "to it is not a fix.)"
    )
    return "\n".join(lines)


def _repo_path(path: Path) -> str:
    try:
        return str(path.relative_to(SRC.parents[1]))
    except ValueError:
        return str(path)


def test_no_import_cycle() -> None:
    cycles = _cycles(SRC)
    problems = []
    for members, sites in sorted(cycles.items(), key=lambda c: sorted(c[0])):
        if members in KNOWN_CYCLES:
            continue
        text = _describe_cycle(members, sites)
        if any(members < known for known in KNOWN_CYCLES):
            text += "\n  It is smaller than a KNOWN_CYCLES entry: replace that entry with it."
        problems.append(text)
    for known in sorted(KNOWN_CYCLES - cycles.keys(), key=sorted):
        if not any(members < known or members > known for members in cycles):
            problems.append(
                f"{', '.join(sorted(known))} no longer import each other: remove that entry "
                "from KNOWN_CYCLES in tests/test_layering.py (the list may only shrink)."
            )
    assert not problems, "\n\n".join(problems)


def test_the_cycle_check_counts_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n"
    )
    (package / "c.py").write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    import pkg.e\n"
        "def f():\n    import pkg.a\n"
    )
    (package / "d.py").write_text("import pkg.a\n")  # imports into the cycle, not part of it
    (package / "e.py").write_text("")
    cycles = _cycles(package)
    assert list(cycles) == [frozenset({"a", "sub.b", "c"})]
    text = _describe_cycle(*next(iter(cycles.items())))
    assert "pkg/sub/b.py:3: imports pkg.c (under TYPE_CHECKING)" in text
    assert "pkg/c.py:7: imports pkg.a (inside a function)" in text
    assert "pkg/a.py:1: imports pkg.sub.b\n" in text
    # The else branch of `if TYPE_CHECKING:` is what runs.
    assert [s.where for s in _import_sites(package) if s.target == "pkg.e"] == [""]


# --- no use of another module's underscore names ------------------------------------------------
#
# A name with one leading underscore is private to the module that defines it. Another module
# may not import it (`from x import _name`), reach it through a module or an object
# (`x._name`, `obj._name`, `getattr(obj, "_name")`) or pass it as a keyword (`f(_name=1)`).
# Inside the module that defines the name all of that is fine: an access on something other
# than self/cls counts only when this module defines no such name (function, class, attribute,
# variable or parameter). Dunder names are public; so are enum's _sunder_ names, the
# documented namedtuple methods and os._exit.

PUBLIC_DESPITE_THE_UNDERSCORE: Final = frozenset(
    {"_asdict", "_fields", "_field_defaults", "_make", "_replace"}
)
PUBLIC_STDLIB_NAMES: Final = frozenset({"os._exit"})

# (file under src/mailcarrier, name): the uses that existed when this check was written.
# Remove an entry when its last use is gone (the test fails until you do); never add one.
KNOWN_PRIVATE_USES: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        # The server's certificate chain: Python 3.11 has it only on ssl's private _sslobj
        # (getattr, with a fallback to the leaf); public from 3.13. Found by this check.
        ("delivery/tls_step.py", "_sslobj"),
    }
)


@dataclass(frozen=True)
class PrivateUse:
    path: Path
    line: int
    name: str
    text: str  # the expression, as written

    @property
    def key(self) -> tuple[str, str]:
        return (str(self.path.relative_to(SRC)), self.name)


def _is_private(name: str) -> bool:
    """One leading underscore (or a mangled __name), not a dunder nor an enum _sunder_."""
    if not name.startswith("_") or name.endswith("__"):
        return False
    sunder = len(name) > 2 and name.endswith("_") and not name.startswith("__")
    return not sunder and name not in PUBLIC_DESPITE_THE_UNDERSCORE


def _names_defined_here(tree: ast.AST) -> set[str]:
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return defined


def _on_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _accessed_name(node: ast.AST) -> tuple[str, ast.expr | None] | None:
    """The underscore name a node reaches on something (and that something), if any."""
    if isinstance(node, ast.Attribute):
        return node.attr, node.value
    if isinstance(node, ast.keyword) and node.arg:
        return node.arg, None
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return None
    name = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
    if ast.unparse(node.func) in ("getattr", "setattr", "hasattr", "delattr") and name:
        return (name, node.args[0]) if isinstance(name, str) else None
    return None


def _private_uses(path: Path) -> list[PrivateUse]:
    tree = ast.parse(path.read_text(), str(path))
    defined = _names_defined_here(tree)
    uses: list[PrivateUse] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom):
            imported = [a.name for a in node.names if _is_private(a.name)]
            uses += [PrivateUse(path, line, n, ast.unparse(node)) for n in imported]
            continue
        accessed = _accessed_name(node)
        if accessed is None or not _is_private(accessed[0]) or accessed[0] in defined:
            continue
        name, owner = accessed
        if owner is not None and _on_self(owner):
            continue
        text = ast.unparse(node) if owner is None else f"{ast.unparse(owner)}.{name}"
        if text not in PUBLIC_STDLIB_NAMES:
            uses.append(PrivateUse(path, line, name, text))
    return uses


def _describe_use(use: PrivateUse) -> str:
    return (
        f"{_repo_path(use.path)}:{use.line}: {use.text} uses {use.name}, a private name of "
        "another module. Give it a public name (no underscore) in the module that defines "
        "it, or move this code into that module. (KNOWN_PRIVATE_USES lists old uses to remove; "
        "adding to it is not a fix.)"
    )


def test_no_use_of_another_modules_private_names() -> None:
    uses = [use for path in _modules() for use in _private_uses(path)]
    problems = [_describe_use(use) for use in uses if use.key not in KNOWN_PRIVATE_USES]
    for file, name in sorted(KNOWN_PRIVATE_USES - {use.key for use in uses}):
        problems.append(
            f"src/mailcarrier/{file} no longer uses {name}: remove ({file!r}, {name!r}) from "
            "KNOWN_PRIVATE_USES in tests/test_layering.py (the list may only shrink)."
        )
    assert not problems, "\n".join(problems)


def test_the_private_check_finds_each_form(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text(
        "from mailcarrier.transport.session import _mine, _theirs, public\n"
        "import os\n"
        "_mine = 1\n"
        "class K:\n"
        "    def __init__(self, other, _flag=0):\n"
        "        self._own = other._own\n"  # defined here: fine
        "        other._reply()\n"
        "        getattr(other, '_wire')\n"
        "        make(_depth=1, _flag=2)\n"  # _flag is a parameter here: fine
        "        self._anything, cls._x = other.__dict__, other._replace()\n"
        "        os._exit(0)\n"  # documented public
        "        Color._missing_(1)\n"  # enum's sunder API
    )
    found = sorted((use.line, use.name, use.text) for use in _private_uses(path))
    assert found == [
        (1, "_mine", "from mailcarrier.transport.session import _mine, _theirs, public"),
        (1, "_theirs", "from mailcarrier.transport.session import _mine, _theirs, public"),
        (7, "_reply", "other._reply"),
        (8, "_wire", "other._wire"),
        (9, "_depth", "_depth=1"),
    ]
    (reply,) = [use for use in _private_uses(path) if use.name == "_reply"]
    assert _describe_use(reply) == (
        f"{path}:7: other._reply uses _reply, a private name of another module. Give it a "
        "public name (no underscore) in the module that defines it, or move this code into "
        "that module. (KNOWN_PRIVATE_USES lists old uses to remove; adding to it is not a fix.)"
    )
