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


# issue 13: a value accepted at create never makes Start fail for being invalid.
# Each case is at the edge of what CreateContainer accepts; each starts and exits 0.
INT64_MAX = (1 << 63) - 1
ACCEPTED_EDGES = [
    {"memory_limit": 6 << 20},
    {"memory_limit": INT64_MAX},
    {"cpu_quota": 0.01},
    {"cpu_quota": float((os.cpu_count() or 1) * 1000)},
    {"pids_limit": 1 << 22},
    {"hostname": "h" * 64},
    {"user": "2147483647:2147483647"},  # runc's largest id
    {"env": ["K=" + "v" * ((32 << 12) - 3)]},  # the longest string execve takes
    {"labels": {"k": "v" * 60_000}},
    {"stop_signal": "SIGRTMAX", "stop_timeout": (1 << 32) - 1},
    {"mounts": [("{tmp}", "/a/b/c/d", "ro")]},
    {"ulimits": [("nofile", 64, 64), ("as", 4 << 30, 4 << 30), ("data", 1 << 30, 1 << 30),
                 ("cpu", 1, 1), ("nproc", 0, 0), ("locks", 0, 0)]},
    {"ulimits": [("nofile", "{hard}", "{hard}"), ("core", 0, (1 << 64) - 1)]},
    {"cap_drop": ["ALL"]},
    {"cap_add": ["ALL"]},
    {"privileged": True},
    {"seccomp": "unconfined"},
]


@pytest.mark.parametrize("options", ACCEPTED_EDGES,
                         ids=["-".join(sorted(o)) + str(i) for i, o in enumerate(ACCEPTED_EDGES)])
async def test_accepted_edge_values_start(bus, tmp_path, options):
    hard = int(Path("/proc/self/limits").read_text().split("Max open files")[1].split()[1])
    given = dict(options)
    if "mounts" in given:
        given["mounts"] = [(str(tmp_path), dst, opts) for _src, dst, opts in given["mounts"]]
    if "ulimits" in given:
        given["ulimits"] = [(n, hard if s == "{hard}" else s, hard if h == "{hard}" else h)
                            for n, s, h in given["ulimits"]]
    command = ["/bin/true"] if "pids_limit" in given else ["sh", "-c", "exit 0"]
    _, code = await run_to_exit(bus, command, **given)
    assert code == 0


REFUSED_EDGES = [
    ({"cpu_quota": float("nan")}, "cpu_quota"),
    ({"cpu_quota": 0.005}, "cpu_quota"),
    ({"memory_limit": (1 << 64) - 1}, "memory_limit"),
    ({"memory_limit": (6 << 20) - 1}, "memory_limit"),
    ({"pids_limit": (1 << 22) + 1}, "pids_limit"),
    ({"user": "99999999999999999999"}, "uid and gid"),
    ({"user": "4294967294"}, "uid and gid"),
    ({"ulimits": [("nofile", 63, 64)]}, "least"),
    ({"ulimits": [("as", 1 << 20, 1 << 30)]}, "least"),
    ({"ulimits": [("cpu", 0, 0)]}, "least"),
    ({"hostname": "h" * 1000}, "hostname"),
    ({"hostname": "h" * 65}, "hostname"),
    ({"mounts": [("{tmp}", "/proc", "")]}, "mount destination"),
    ({"mounts": [("{tmp}", "/proc/sys/kernel", "")]}, "mount destination"),
    ({"mounts": [("{tmp}", "/", "")]}, "mount destination"),
    ({"mounts": [("{tmp}", "/x/../dev", "")]}, "mount destination"),
    ({"env": ["K=" + "v" * (32 << 12)]}, "env"),
    ({"labels": {"k": "v" * (64 << 10)}}, "labels and annotations"),
    ({"cap_add": ["CAP_NOSUCH"]}, "unknown capability"),
    ({"cap_add": ["SYS_RESOURCE"]}, "bounding set"),
    ({"ulimits": [("nofile", 2, 1)]}, "soft limit"),
    ({"ulimits": [("nofile", 64, (1 << 64) - 1)]}, "cannot raise"),
    ({"ulimits": [("bogus", 1, 1)]}, "unknown ulimit"),
    ({"seccomp": "runtime/default"}, "seccomp"),
]


@pytest.mark.parametrize(("options", "message"), REFUSED_EDGES,
                         ids=[f"{'-'.join(o)}{i}" for i, (o, _m) in enumerate(REFUSED_EDGES)])
async def test_refused_at_create_with_nothing_made(bus, tmp_path, options, message):
    if "SYS_RESOURCE" in str(options) and "CAP_SYS_RESOURCE" in _bounding_names():
        pytest.skip("this host's root has CAP_SYS_RESOURCE")
    given = dict(options)
    if "mounts" in given:
        given["mounts"] = [(str(tmp_path), dst, opts) for _src, dst, opts in given["mounts"]]
    (before,) = await bus.manager("ListContainers")
    err = await bus.fails(bus.create(["true"], **given))
    assert err.type == "org.pyctrd1.Error.InvalidArgument", (err.type, err.text)
    assert message in err.text
    assert (await bus.manager("ListContainers")) == [before]


def _bounding_names() -> set[str]:
    from pyctrd.oci.capabilities import bounding_set
    return set(bounding_set())
