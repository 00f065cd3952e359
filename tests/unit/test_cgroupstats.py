"""pyctrd.oci.cgroupstats: the figures of cgroup v1 and v2 files (fake trees),
and of this process's real cgroups."""

import os
from pathlib import Path

from pyctrd.oci import cgroupstats as cs


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_v2_files(tmp_path: Path) -> None:
    v2 = write(tmp_path / "ctr", {
        "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
        "memory.current": "73400320\n",
        "memory.stat": "anon 52428800\nfile 20971520\ninactive_file 10485760\n",
        "memory.max": "max\n",
        "pids.current": "3\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"
                   "8:16 rbytes=1 wbytes=2 rios=1 wios=1\n",
    })
    dirs = cs.CgroupDirs({}, v2)
    assert cs._cpu_usec(dirs) == 1_500_000
    assert cs._memory(dirs) == (73400320 - 10485760, 0)
    assert cs._pids(dirs) == 3
    assert cs._block(dirs) == (4097, 8194)
    (v2 / "memory.max").write_text("104857600\n")
    assert cs._memory(dirs)[1] == 104857600


def test_v1_files_win_on_a_hybrid_host(tmp_path: Path) -> None:
    v1 = {
        "cpuacct": write(tmp_path / "cpuacct", {"cpuacct.usage": "2000000000\n"}),
        "memory": write(tmp_path / "memory", {
            "memory.usage_in_bytes": "10000\n", "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.stat": "cache 4000\ntotal_inactive_file 3000\n"}),
        "pids": write(tmp_path / "pids", {"pids.current": "7\n"}),
        "blkio": write(tmp_path / "blkio", {
            "blkio.throttle.io_service_bytes_recursive":
                "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Total 300\nTotal 300\n"}),
    }
    v2 = write(tmp_path / "unified", {"cpu.stat": "usage_usec 1\n"})
    dirs = cs.CgroupDirs(v1, v2)
    assert cs._cpu_usec(dirs) == 2_000_000
    assert cs._memory(dirs) == (7000, 0)
    assert cs._pids(dirs) == 7
    assert cs._block(dirs) == (100, 200)


def test_missing_files_read_as_zero(tmp_path: Path) -> None:
    dirs = cs.CgroupDirs({}, tmp_path / "gone")
    assert (cs._cpu_usec(dirs), cs._memory(dirs), cs._pids(dirs), cs._block(dirs)) == (
        0, (0, 0), 0, (0, 0))


def test_a_sub_tree_mount() -> None:
    assert cs._join("/", "/sys/fs/cgroup/memory", "/pyctrd/x") == Path(
        "/sys/fs/cgroup/memory/pyctrd/x")
    # a container's view: its own cgroup mounted as the hierarchy's root
    assert cs._join("/a/b", "/sys/fs/cgroup/memory", "/a/b/c") == Path(
        "/sys/fs/cgroup/memory/c")


def test_this_process() -> None:
    stats = cs.read_stats(os.getpid())
    assert stats["cpu_usec"] > 0
    assert "net_rx_bytes" not in stats  # the daemon's own namespace: no container's figures
    assert set(stats) >= {"cpu_usec", "memory_bytes", "memory_limit", "pids",
                          "block_read_bytes", "block_write_bytes", "read_usec"}
