"""The layering of pyctrd, as import rules that a walk of the source checks.

Every import counts, wherever it stands: at module level, inside a function,
under ``if TYPE_CHECKING``, and importlib.import_module("literal") calls.
Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so
the walk follows parent packages too.

A rule forbids a package (``source``) to reach some modules (``targets``),
directly or through other pyctrd modules: varlink → pyctrd.ops.polkit →
dbus_fast loads dbus_fast all the same. A direct edge is reported where it
stands; otherwise the shortest chain, from the importer's first step.
"""

import ast
import json
import subprocess
import sys
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pyctrd"

DAEMON_INTERNALS = ("pyctrd.core", "pyctrd.oci", "pyctrd.storage", "pyctrd.store",
                    "pyctrd.database", "pyctrd.bus", "pyctrd.varlink", "pyctrd.daemon")


@dataclass(frozen=True)
class Rule:
    source: str  # a package (or module) whose modules the rule binds
    targets: tuple[str, ...]  # modules or packages it may not import
    why: str
    exempt: tuple[str, ...] = ()  # modules of ``source`` the rule does not bind


RULES = (
    Rule("pyctrd.core",
         ("pyctrd.bus", "pyctrd.varlink", "pyctrd.cli", "pyctrd.ops", "pyctrd.daemon",
          "dbus_fast", "asyncvarlink"),
         "the core knows no front end and no wire"),
    Rule("pyctrd.varlink", ("pyctrd.bus", "dbus_fast"),
         "the Varlink front end must load without dbus_fast"),
    Rule("pyctrd.bus", ("pyctrd.varlink",), "the D-Bus front end does not use Varlink's"),
    Rule("pyctrd.cli", DAEMON_INTERNALS,
         "pyctr imports no daemon internals (only pyctrd.ops.names/options/errors, "
         "pyctrd.errors, pyctrd.detachkeys)"),
    Rule("pyctrd.ops",
         ("dbus_fast", "asyncvarlink", "pyctrd.bus", "pyctrd.varlink", "pyctrd.cli"),
         "the operations layer is front-end neutral (only its polkit adapter speaks D-Bus)",
         exempt=("pyctrd.ops.polkit",)),
)

# What pyctr may import from pyctrd outside pyctrd.cli (package __init__s aside).
CLI_ALLOWED = ("pyctrd.ops.names", "pyctrd.ops.options", "pyctrd.ops.errors",
               "pyctrd.errors", "pyctrd.detachkeys")


@dataclass(frozen=True)
class Import:
    target: str  # the module imported (resolved, absolute)
    path: Path
    line: int


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(root: Path, path: Path) -> str:
    """root/pyctrd/bus/__init__.py → pyctrd.bus; root/pyctrd/bus/x.py → pyctrd.bus.x."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, exists: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.exists = exists
        self.found: list[tuple[str, int]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            # `from pyctrd.ops import polkit` imports the submodule pyctrd.ops.polkit
            sub = f"{module}.{alias.name}"
            self.found.append((sub if sub in self.exists else module, node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__") and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            self.found.append((node.args[0].value, node.lineno))
        self.generic_visit(node)


def import_graph(root: Path, package: str = "pyctrd") -> dict[str, list[Import]]:
    """Every module of ``package`` under ``root`` → what it imports."""
    files = {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    exists = set(files)
    graph: dict[str, list[Import]] = {}
    for module, path in files.items():
        collector = _Collector(module, path.name == "__init__.py", exists)
        collector.visit(ast.parse(path.read_text(), str(path)))
        graph[module] = [Import(target, path, line) for target, line in collector.found]
    return graph


def _loaded_with(target: str, graph: dict[str, list[Import]]) -> list[str]:
    """The pyctrd modules that importing ``target`` runs: it and its parent packages."""
    parts = target.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in graph]


def _chain(graph: dict[str, list[Import]], start: str,
           bad: tuple[str, ...]) -> list[tuple[str, Import]] | None:
    """The shortest import chain from ``start`` to a module within ``bad``, through
    pyctrd modules; None if there is none."""
    seen = {start}
    queue: deque[tuple[str, list[tuple[str, Import]]]] = deque([(start, [])])
    while queue:
        module, chain = queue.popleft()
        for imp in graph.get(module, []):
            if any(_within(imp.target, b) for b in bad):
                return [*chain, (module, imp)]
            for nxt in _loaded_with(imp.target, graph):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append((nxt, [*chain, (module, imp)]))
    return None


def _where(root: Path, imp: Import) -> str:
    return f"{imp.path.relative_to(root)}:{imp.line}"


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """One line per forbidden edge: file:line: importer → imported (rule)."""
    graph = import_graph(root)
    found: list[str] = []
    for rule in rules:
        for module in graph:
            if not _within(module, rule.source) or module in rule.exempt:
                continue
            direct = False
            for imp in graph[module]:
                if any(_within(imp.target, t) for t in rule.targets):
                    found.append(f"{_where(root, imp)}: {module} → {imp.target} "
                                 f"(forbidden: {rule.why})")
                    direct = True
            if not direct:
                chain = _chain(graph, module, rule.targets)
                if chain:
                    first = chain[0][1]
                    path = " → ".join([module, *(imp.target for _m, imp in chain)])
                    steps = ", ".join(f"{_where(root, imp)}" for _m, imp in chain)
                    found.append(f"{_where(root, first)}: {path} (through {steps}; "
                                 f"forbidden: {rule.why})")
    return found


def cli_outside_imports(root: Path) -> list[str]:
    """pyctr's direct imports of pyctrd modules that are not on its short list."""
    graph = import_graph(root)
    found = []
    for module, imports in graph.items():
        if not _within(module, "pyctrd.cli"):
            continue
        for imp in imports:
            target = imp.target
            if not _within(target, "pyctrd") or _within(target, "pyctrd.cli"):
                continue
            if target in ("pyctrd", "pyctrd.ops") or target in CLI_ALLOWED:
                continue
            found.append(f"{_where(root, imp)}: {module} → {target} (pyctr may import "
                         f"only {', '.join(CLI_ALLOWED)} from the daemon's package)")
    return found


def test_no_forbidden_import_edge() -> None:
    found = violations(PACKAGE.parent)
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_pyctr_imports_only_the_shared_modules() -> None:
    found = cli_outside_imports(PACKAGE.parent)
    assert not found, "pyctr imports daemon internals:\n" + "\n".join(found)


def test_the_walk_sees_the_whole_package() -> None:
    graph = import_graph(PACKAGE.parent)
    assert {"pyctrd.cli.main", "pyctrd.ops.errors", "pyctrd.core"} <= set(graph)
    assert any(imp.target == "pyctrd.cli.bus" for imp in graph["pyctrd.cli.main"])


def test_pyctr_loads_no_daemon_internals() -> None:
    """What the walk says, seen at run time: import every pyctr module, list what loaded."""
    code = ("import importlib, json, pkgutil, sys, pyctrd.cli\n"
            "for m in pkgutil.walk_packages(pyctrd.cli.__path__, 'pyctrd.cli.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, cwd=PACKAGE.parent)
    loaded = json.loads(out.stdout)
    assert "pyctrd.cli.main" in loaded and "pyctrd.cli.commands.run" in loaded
    internal = [m for m in loaded if any(_within(m, t) for t in DAEMON_INTERNALS)]
    assert not internal, f"importing pyctr loads daemon internals: {internal}"
    outside = [m for m in loaded if _within(m, "pyctrd") and not _within(m, "pyctrd.cli")
               and m not in ("pyctrd", "pyctrd.ops", *CLI_ALLOWED)]
    assert not outside, f"importing pyctr loads more of pyctrd than it may: {outside}"


# The checker checked: a tree with planted edges.

def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for directory in {p.parent for p in root.rglob("*.py")}:
        (directory / "__init__.py").touch()
    return root


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    return _plant(tmp_path, {
        "pyctrd/errors.py": "",
        "pyctrd/core/engine.py": """\
            from typing import TYPE_CHECKING

            import os

            if TYPE_CHECKING:
                from pyctrd.bus.names import BUS_NAME

            def late():
                import dbus_fast
            """,
        "pyctrd/core/image.py": "from ..varlink import protocol\n",
        "pyctrd/bus/names.py": "X = 1\n",
        "pyctrd/bus/service.py": "from pyctrd.ops import operations\n",
        "pyctrd/varlink/protocol.py": "",
        "pyctrd/varlink/server.py": "from pyctrd.ops.authority import Caller\n",
        "pyctrd/varlink/clean.py": "from pyctrd.ops import names\nimport asyncvarlink\n",
        "pyctrd/ops/authority.py": "import pyctrd.ops.polkit\n",
        "pyctrd/ops/polkit.py": "from dbus_fast.aio import MessageBus\n",
        "pyctrd/ops/operations.py": "from pyctrd.core import engine\n",
        "pyctrd/ops/names.py": "",
        "pyctrd/cli/main.py": """\
            import importlib
            from pyctrd.ops import names
            from pyctrd.errors import PyctrdError

            def run():
                importlib.import_module("pyctrd.oci.runtime")
            """,
        "pyctrd/oci/runtime.py": "",
    })


def test_planted_edges_are_caught_with_file_and_line(planted: Path) -> None:
    found = "\n".join(violations(planted))
    # under TYPE_CHECKING, inside a function, relative
    assert "pyctrd/core/engine.py:6: pyctrd.core.engine → pyctrd.bus.names" in found
    assert "pyctrd/core/engine.py:9: pyctrd.core.engine → dbus_fast" in found
    assert "pyctrd/core/image.py:1: pyctrd.core.image → pyctrd.varlink.protocol" in found
    # transitive: varlink → ops.authority → ops.polkit → dbus_fast
    assert ("pyctrd/varlink/server.py:1: pyctrd.varlink.server → pyctrd.ops.authority → "
            "pyctrd.ops.polkit → dbus_fast.aio") in found
    # ops' polkit adapter may speak D-Bus; the rest of ops may not load it
    assert ("pyctrd/ops/authority.py:1: pyctrd.ops.authority → pyctrd.ops.polkit → "
            "dbus_fast.aio") in found
    assert "pyctrd/ops/polkit.py:1: pyctrd.ops.polkit" not in found
    # importlib.import_module("literal") counts
    assert "pyctrd/cli/main.py:6: pyctrd.cli.main → pyctrd.oci.runtime" in found
    # allowed: varlink → ops.names, asyncvarlink; bus → ops → core; cli → ops.names, errors
    assert "pyctrd.varlink.clean" not in found
    assert "pyctrd.bus.service" not in found
    # a chain through the core counts against ops too
    assert ("pyctrd/ops/operations.py:1: pyctrd.ops.operations → pyctrd.core.engine → "
            "pyctrd.bus.names") in found
    assert len(found.splitlines()) == 7, found


def test_parent_packages_count_on_a_transitive_path(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "pyctrd/ops/__init__.py": "from pyctrd.ops import polkit\n",
        "pyctrd/ops/polkit.py": "import dbus_fast\n",
        "pyctrd/ops/names.py": "",
        "pyctrd/varlink/server.py": "from pyctrd.ops.names import X\n",
    })
    found = violations(root)
    assert len(found) == 2, found
    assert found[0].startswith("pyctrd/varlink/server.py:1: pyctrd.varlink.server → "
                               "pyctrd.ops.names → pyctrd.ops.polkit → dbus_fast (through "
                               "pyctrd/varlink/server.py:1, pyctrd/ops/__init__.py:1, "
                               "pyctrd/ops/polkit.py:1; "), found
    assert found[1].startswith("pyctrd/ops/__init__.py:1: pyctrd.ops → pyctrd.ops.polkit → "
                               "dbus_fast"), found


def test_pyctr_short_list_is_enforced(planted: Path) -> None:
    found = cli_outside_imports(planted)
    assert found == ["pyctrd/cli/main.py:6: pyctrd.cli.main → pyctrd.oci.runtime (pyctr may "
                     f"import only {', '.join(CLI_ALLOWED)} from the daemon's package)"]
