"""The daemon spawns programs only through pyctrd/oci/spawn.py (issue 20).

asyncio's subprocesses fork on the loop thread and, with Python 3.11's default
child watcher, block a thread per child in waitpid; spawn.py uses posix_spawn
and pidfds. pyctr (pyctrd/cli) is a short-lived client and may use anything.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyctrd"
FORBIDDEN = {"create_subprocess_exec", "create_subprocess_shell"}


def asyncio_subprocess_calls(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio.subprocess":
            found.append(f"{path.relative_to(root)}:{node.lineno}: asyncio.subprocess")
    return found


def test_no_daemon_module_uses_asyncio_subprocesses() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             if "cli" not in path.relative_to(PACKAGE).parts[:1]
             for hit in asyncio_subprocess_calls(path)]
    assert found == []


def test_the_rule_sees_a_call(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import asyncio\nfrom asyncio.subprocess import PIPE\n\n"
                       "async def f():\n"
                       "    await asyncio.create_subprocess_exec('true', stdout=PIPE)\n")
    assert asyncio_subprocess_calls(planted, tmp_path) == [
        "planted.py:2: asyncio.subprocess", "planted.py:5: create_subprocess_exec"]
