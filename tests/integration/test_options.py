"""CreateContainer options reach the container: seen from inside and from the host."""

import os
from pathlib import Path

import pytest

CONTAINER = "org.pyctrd1.Container"


def cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}")
    pytest.skip(f"no cgroup v1 {controller} controller here")


async def run_to_exit(bus, command, **options):
    """Create, Start, Wait; (path, exit code)."""
    path = await bus.create(command, **options)
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait", timeout=30)
    return path, code


async def read_file(bus, path, name):
    (mountpoint,) = await bus.ctr(path, "Mount", "s", [""])
    try:
        return Path(mountpoint, name.lstrip("/")).read_text()
    finally:
        await bus.ctr(path, "Unmount")


async def test_env_workdir_user_hostname(bus):
    path, code = await run_to_exit(
        bus, ["sh", "-c", 'echo "$FOO|$BAR|$(pwd)|$(id -u):$(id -g)|$(hostname)" > /tmp/out'],
        env=["FOO=foo value", "BAR=a=b"], workdir="/home/app", user="app",
        hostname="box-one")
    assert code == 0
    assert await read_file(bus, path, "/tmp/out") == "foo value|a=b|/home/app|1000:1000|box-one\n"


async def test_user_uid_gid_and_default_hostname(bus):
    path, code = await run_to_exit(
        bus, ["sh", "-c", 'echo "$(id -u):$(id -g)|$(hostname)|$PATH" > /tmp/out'],
        user="1234:4321")
    assert code == 0
    cid = path.rsplit("/", 1)[1]
    uid_gid, hostname, env_path = (await read_file(bus, path, "/tmp/out")).strip().split("|")
    assert uid_gid == "1234:4321"
    assert hostname == cid[:12]
    assert "/bin" in env_path.split(":")


async def test_read_only_rootfs(bus):
    _, code = await run_to_exit(bus, ["sh", "-c", "echo x > /x 2>/dev/null || exit 9"],
                                read_only=True)
    assert code == 9
    _, code = await run_to_exit(bus, ["sh", "-c", "echo x > /x 2>/dev/null || exit 9"])
    assert code == 0


@pytest.mark.parametrize("no_new_privileges,expected", [(True, "1"), (False, "0")])
async def test_no_new_privileges_sets_the_bit(bus, no_new_privileges, expected):
    path, code = await run_to_exit(
        bus, ["sh", "-c", "grep NoNewPrivs: /proc/self/status > /status"],
        no_new_privileges=no_new_privileges)
    assert code == 0
    assert (await read_file(bus, path, "/status")).split() == ["NoNewPrivs:", expected]


async def test_bind_mounts(bus, tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "in.txt").write_text("from host\n")
    _, code = await run_to_exit(
        bus, ["sh", "-c", "cat /ro/in.txt > /rw/out.txt && "
              "{ echo no > /ro/written 2>/dev/null && exit 3; exit 0; }"],
        mounts=[(str(rw), "/rw", "rw"), (str(ro), "/ro", "ro,bind")])
    assert code == 0
    assert (rw / "out.txt").read_text() == "from host\n"
    assert not (ro / "written").exists()


async def test_resource_limits_in_cgroups(bus):
    path = await bus.run(["sleep", "1000"], memory_limit=64 * 1024 * 1024, pids_limit=42,
                         cpu_quota=0.5)
    pid = await bus.prop(path, "PID")
    pids = cgroup_dir(pid, "pids")
    assert (pids / "pids.max").read_text().strip() == "42"
    memory = cgroup_dir(pid, "memory")
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
    cpu = cgroup_dir(pid, "cpu")
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
    assert int((cpu / "cpu.cfs_period_us").read_text()) == 100_000
    await bus.ctr(path, "Stop", "u", [0])


async def test_network_none_and_host(bus):
    path, code = await run_to_exit(bus, ["sh", "-c", "ls /sys/class/net > /tmp/net"])
    assert code == 0
    assert (await read_file(bus, path, "/tmp/net")).split() == ["lo"]
    path, code = await run_to_exit(bus, ["sh", "-c", "ls /sys/class/net > /tmp/net"],
                                   network="host")
    assert code == 0
    assert sorted((await read_file(bus, path, "/tmp/net")).split()) == \
        sorted(os.listdir("/sys/class/net"))


@pytest.mark.parametrize("stop_signal", ["SIGINT", "INT", 2])
async def test_stop_uses_stop_signal(bus, stop_signal):
    # TERM would be ignored by this PID 1; only the configured INT ends it with 3
    path = await bus.run(["sh", "-c", "trap 'exit 3' INT; while :; do sleep 0.1; done"],
                         stop_signal=stop_signal)
    assert await bus.prop(path, "StopSignal") == 2
    await bus.ctr(path, "Stop", "u", [20])
    assert await bus.prop(path, "ExitCode") == 3


async def test_stop_timeout_property(bus):
    path = await bus.create(["true"])
    assert await bus.prop(path, "StopTimeout") == 10
    assert await bus.prop(path, "StopSignal") == 15
    path = await bus.create(["true"], stop_timeout=3)
    assert await bus.prop(path, "StopTimeout") == 3


# The shell's own memory grows past the limit: the kernel's OOM killer ends it.
MEMORY_HOG = ["sh", "-c", "a=$(head -c 200000000 /dev/zero | tr '\\000' x); echo ${#a}"]


async def test_oom_killed(bus):
    path, code = await run_to_exit(bus, MEMORY_HOG, memory_limit=16 * 1024 * 1024)
    assert code == 137
    assert await bus.prop(path, "OOMKilled") is True


async def test_oom_leaves_no_file_in_daemon_cwd(bus, daemon):
    # conmon writes a file named "oom" into its working directory (for CRI-O)
    # besides the one in its persist dir; the daemon's cwd must stay clean.
    stray = daemon.base / "oom"
    stray.unlink(missing_ok=True)
    _, code = await run_to_exit(bus, MEMORY_HOG, memory_limit=16 * 1024 * 1024)
    assert code == 137
    assert not stray.exists(), f"conmon wrote {stray} into the daemon's working directory"
