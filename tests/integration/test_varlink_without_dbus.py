"""The Varlink front end runs where dbus_fast cannot be imported.

A child Python refuses every import of dbus_fast (a sys.meta_path finder),
builds the core Engine over a scratch layout and serves io.pyctrd on a
socket with no Authority, as a session daemon does; `python -m varlink.cli`
(the reference client, another implementation) then calls it.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PYCTRD, REPO

PYTHON = str(PYCTRD.with_name("python"))
TIMEOUT = 60.0

SERVE = textwrap.dedent("""\
    import asyncio
    import sys
    from pathlib import Path


    class NoDBus:
        \"\"\"As if dbus_fast were not installed.\"\"\"

        def find_spec(self, name, path=None, target=None):
            if name == "dbus_fast" or name.startswith("dbus_fast."):
                raise ModuleNotFoundError(f"No module named {name!r} (refused)", name=name)
            return None


    sys.meta_path.insert(0, NoDBus())

    from pyctrd.core.engine import Engine
    from pyctrd.layout import Layout
    from pyctrd.oci.conmon import Conmon
    from pyctrd.oci.runtime import OCIRuntime
    from pyctrd.ops.operations import Operations
    from pyctrd.varlink.server import VarlinkServer

    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("dbus_fast was importable after all")


    async def main() -> None:
        base = Path(sys.argv[1])
        layout = Layout(base / "root", base / "run")
        oci = OCIRuntime("/usr/sbin/runc", layout.runtime_root)
        engine = Engine(layout, oci, Conmon(oci))
        server = VarlinkServer(Operations(engine), layout.run_root / "io.pyctrd", None)
        server.start()
        loaded = sorted(m for m in sys.modules
                        if m.split(".")[0] == "dbus_fast" or m.startswith("pyctrd.bus"))
        print(f"serving {server.path} loaded={loaded}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()
        engine.close()


    asyncio.run(main())
    """)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """The socket of a child serving Varlink without dbus_fast; stopped at the end."""
    child = subprocess.Popen([PYTHON, "-c", SERVE, str(tmp_path)], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    try:
        line = child.stdout.readline()
        if not line.startswith("serving "):
            child.kill()
            _out, err = child.communicate(timeout=TIMEOUT)
            raise AssertionError(f"the child did not serve: {line!r}\n{err}")
        path, loaded = line.split()[1:]
        assert loaded == "loaded=[]", f"the child loaded D-Bus modules: {loaded}"
        yield Path(path)
    finally:
        if child.poll() is None:
            child.stdin.close()  # the child's cue to stop
            try:
                child.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        err = child.stderr.read() if child.stderr is not None else ""
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == 0, err
    assert "Traceback" not in err, err


def call(sock: Path, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    out = subprocess.run([PYTHON, "-m", "varlink.cli", "call", f"unix:{sock}/{method}",
                          json.dumps(params or {})], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd="/",
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_varlink_serves_without_dbus_fast(served: Path) -> None:
    info = call(served, "org.varlink.service.GetInfo")
    assert info["vendor"] == "pyctrd"
    assert {"io.pyctrd.Container", "io.pyctrd.Image", "io.pyctrd.Events",
            "org.varlink.service"} <= set(info["interfaces"])
    assert call(served, "io.pyctrd.Container.List") == {"containers": []}
    assert call(served, "io.pyctrd.Image.List") == {"images": []}
    described = call(served, "org.varlink.service.GetInterfaceDescription",
                     {"interface": "io.pyctrd.Container"})["description"]
    assert described == (REPO / "varlink" / "io.pyctrd.Container.varlink").read_text()
