"""The daemon's own limits: one daemon per root (rootlock), its descriptors (fdbudget)."""

import errno
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pyctrd import fdbudget
from pyctrd.errors import LimitsExceeded
from pyctrd.rootlock import LOCK_NAME, AlreadyLocked, RootLock

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, soft: int | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, its soft open-files limit set to ``soft``."""
    def limit() -> None:
        if soft is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=30, preexec_fn=limit, cwd=REPO)


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    root, run = tmp_path / "root", tmp_path / "run"
    with RootLock(root, run):
        assert (root / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        # another process (flock is per open file, so this one would do, but say it)
        out = run_python(f"""
            from pathlib import Path
            from pyctrd.rootlock import AlreadyLocked, RootLock
            try:
                RootLock(Path({str(root)!r}), Path({str(tmp_path / 'run2')!r})).acquire()
            except AlreadyLocked as err:
                print(err.pid, err.directory)
                print(err)
        """)
        assert out.stdout.splitlines()[0] == f"{os.getpid()} {root}", out.stderr
        assert f"another pyctrd (pid {os.getpid()}) uses {root}" in out.stdout
        # all or nothing: the run root it locked first was let go again
        with RootLock(tmp_path / "run2"):
            pass
        with pytest.raises(AlreadyLocked):
            RootLock(tmp_path / "elsewhere", run).acquire()
    with RootLock(root, run):  # released with the first holder
        pass


def test_lock_on_one_directory_given_twice_is_taken_once(tmp_path):
    with RootLock(tmp_path / "both", tmp_path / "both"):
        pass


def test_lock_dies_with_its_holder(tmp_path):
    out = run_python(f"""
        import os
        from pathlib import Path
        from pyctrd.rootlock import RootLock
        RootLock(Path({str(tmp_path)!r})).acquire()
        os._exit(0)  # no clean-up: the kernel drops the flock
    """)
    assert out.returncode == 0, out.stderr
    with RootLock(tmp_path):
        pass


def test_lock_is_not_inherited_by_children(tmp_path):
    """conmon and runc outlive the daemon: they must not keep its lock."""
    with RootLock(tmp_path):
        out = subprocess.run(["ls", "-l", "/proc/self/fd"], capture_output=True, text=True,
                             timeout=10, close_fds=False)
        assert LOCK_NAME not in out.stdout, out.stdout


def test_raise_limit_lifts_soft_to_hard():
    out = run_python("""
        import resource
        from pyctrd import fdbudget
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        print(*fdbudget.raise_limit())
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    """, soft=100)
    before, now, after = out.stdout.splitlines()
    soft, hard = map(int, now.split())
    assert int(before) == 100
    assert soft == hard == int(after) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_check_refuses_before_the_reserve_and_guard_maps_emfile():
    """Under a limit of 100, streams are refused while the reserve is still free, and an
    EMFILE met anyway becomes LimitsExceeded."""
    out = run_python("""
        import os
        from pyctrd import fdbudget
        from pyctrd.errors import LimitsExceeded
        held = []
        refused = None
        for _ in range(200):
            try:
                with fdbudget.guard("a test stream"):
                    held.append(os.open("/dev/null", os.O_RDONLY))
            except LimitsExceeded as err:
                refused = err
                break
        print(len(held), fdbudget.available(), fdbudget.reserve())
        print(refused)
        # past the reserve by hand, to the very end: the kernel's EMFILE is mapped
        while True:
            try:
                held.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                break
        print(fdbudget.available())
        try:
            fdbudget.check("y", 0)
        except LimitsExceeded as err:
            print("refused at zero:", err)
    """, soft=100)
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stdout + out.stderr
    opened, left, reserve = map(int, lines[0].split())
    assert reserve == fdbudget.RESERVE_MIN
    assert left == reserve  # it stops exactly where the reserve begins
    assert opened > 0
    assert "refusing a test stream" in lines[1] and "keeps 32" in lines[1]
    assert lines[2] == "0"
    assert lines[3].startswith("refused at zero:")


def test_guard_turns_emfile_inside_into_limits_exceeded():
    with (pytest.raises(LimitsExceeded, match="out of file descriptors"),
          fdbudget.guard("a stream", needed=0)):
        raise OSError(errno.EMFILE, "Too many open files")
    with pytest.raises(OSError, match="other"), fdbudget.guard("a stream", needed=0):
        raise OSError(errno.EACCES, "other")


def test_counting_is_cheap_enough_per_stream():
    t0 = time.perf_counter()
    for _ in range(100):
        fdbudget.available()
    assert (time.perf_counter() - t0) / 100 < 0.005
