"""Containers are confined as podman's are (issue 13): seen from inside by a probe.

The probe is a small static C program (gcc -static, no libc needed in the
image) bind-mounted into a busybox container. It prints its own
/proc/self/status Seccomp and CapEff lines and tries the four system calls
issue 13 named (add_key, perf_event_open, io_uring_setup,
personality(READ_IMPLIES_EXEC)), each as "name=OK" or "name=ERRNO-NAME".
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MANAGER, MANAGER_PATH, Client

from integration.cli_support import ok
from integration.system_bus import (
    Polkitd,
    SystemBus,
    SystemDaemon,
    call_as,
    polkit_system,
)
from pyctrd.oci.capabilities import CAPABILITIES, DEFAULT_CAPS

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    if (rc >= 0) printf("%s=OK\n", name);
    else printf("%s=%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
}

int main(void) {
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "Seccomp:", 8) || !strncmp(line, "CapEff:", 7)) fputs(line, stdout);
    report("add_key", syscall(SYS_add_key, "user", "pyctrd-probe", "x", 1, -2 /* process */));
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.exclude_kernel = 1;
    report("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    unsigned char params[120];
    memset(params, 0, sizeof params);
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
    report("personality", syscall(SYS_personality, READ_IMPLIES_EXEC));
    return 0;
}
"""
CALLS = ("add_key", "perf_event_open", "io_uring_setup", "personality")
# What containers-common's profile answers for each (its defaultErrnoRet is ENOSYS;
# perf_event_open without CAP_SYS_ADMIN has a rule of its own giving EPERM).
REFUSED = {"add_key": "ENOSYS", "perf_event_open": "EPERM", "io_uring_setup": "ENOSYS",
           "personality": "ENOSYS"}
NOBODY = 65534
DEFAULT_MASK = sum(1 << CAPABILITIES.index(c) for c in DEFAULT_CAPS)
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (make deps installs it)")
    directory = tmp_path_factory.mktemp("probe")
    (directory / "probe.c").write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(directory / "probe"),
                    str(directory / "probe.c")], check=True, timeout=120)
    return directory


async def probe(bus: Client, probe_dir: Path, **options: Any) -> dict[str, str]:
    """Run the probe in a new container; its report as {key: value}."""
    out = probe_dir / "out"
    out.unlink(missing_ok=True)
    path = await bus.create(["sh", "-c", "/probe/probe > /probe/out 2>&1"],
                            mounts=[(str(probe_dir), "/probe", "rw")], **options)
    await bus.ctr(path, "Start")
    (code,) = await bus.ctr(path, "Wait", timeout=30)
    await bus.ctr(path, "Remove", "b", [True])
    bus.created.remove(path)
    text = out.read_text()
    assert code == 0, text
    report = {}
    for line in text.splitlines():
        key, _, value = line.replace(":", "=", 1).partition("=")
        report[key.strip()] = value.strip()
    return report


def host_bounding_set() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd")


async def test_default_profile_is_in_force(bus: Client, probe_dir: Path) -> None:
    report = await probe(bus, probe_dir)
    assert report["Seccomp"] == "2", report
    assert {name: report[name] for name in CALLS} == REFUSED
    assert int(report["CapEff"], 16) == DEFAULT_MASK  # podman's default 11


async def test_unconfined_allows_them(bus: Client, probe_dir: Path) -> None:
    report = await probe(bus, probe_dir, seccomp="unconfined")
    assert report["Seccomp"] == "0", report
    # Nothing filters them any more: each succeeds or fails for a reason of the
    # kernel's own (perf_event_paranoid, io_uring_disabled), never seccomp's ENOSYS.
    for name in CALLS:
        assert report[name] != "ENOSYS", report
    assert report["add_key"] == "OK" and report["personality"] == "OK", report


async def test_cap_add_follows_the_profile(bus: Client, probe_dir: Path) -> None:
    """containers-common's rules for CAP_SYS_ADMIN apply once it is added."""
    report = await probe(bus, probe_dir, cap_add=["SYS_ADMIN"])
    assert report["Seccomp"] == "2"
    assert int(report["CapEff"], 16) & 1 << 21
    assert report["perf_event_open"] != "EPERM" or _paranoid() >= 3, report
    assert report["add_key"] == "ENOSYS"  # not allowed by any capability


async def test_cap_drop(bus: Client, probe_dir: Path) -> None:
    report = await probe(bus, probe_dir, cap_drop=["ALL"], cap_add=["CHOWN"])
    assert int(report["CapEff"], 16) == 1  # CAP_CHOWN only
    report = await probe(bus, probe_dir, cap_drop=["CAP_CHOWN", "kill"])
    assert int(report["CapEff"], 16) == DEFAULT_MASK & ~(1 | 1 << 5)


async def test_privileged_has_every_capability_and_no_filter(
        bus: Client, probe_dir: Path) -> None:
    report = await probe(bus, probe_dir, privileged=True)
    assert report["Seccomp"] == "0", report
    assert int(report["CapEff"], 16) == host_bounding_set()


async def test_default_ulimits_and_a_lowered_one(bus: Client, probe_dir: Path) -> None:
    path = await bus.create(["sh", "-c", "ulimit -n > /probe/out; ulimit -Hn >> /probe/out; "
                             "ulimit -u >> /probe/out"],
                            mounts=[(str(probe_dir), "/probe", "rw")])
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait", timeout=30)) == [0]
    nofile = min(1_048_576, int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True,
                                               text=True, timeout=10).stdout))
    soft, hard, nproc = (probe_dir / "out").read_text().split()
    assert int(soft) == int(hard) == nofile
    assert nproc != "unlimited"
    path = await bus.create(["sh", "-c", "echo $(ulimit -n) $(ulimit -Hn) > /probe/out"],
                            mounts=[(str(probe_dir), "/probe", "rw")],
                            ulimits=[("nofile", 512, 1024)])
    await bus.ctr(path, "Start")
    assert (await bus.ctr(path, "Wait", timeout=30)) == [0]
    assert (probe_dir / "out").read_text().split() == ["512", "1024"]


async def test_unreachable_ulimit_is_refused_at_create(bus: Client) -> None:
    hard = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True,
                              timeout=10).stdout)
    err = await bus.fails(bus.create(["true"], ulimits=[("nofile", 64, hard + 1)]))
    assert err.type == "org.pyctrd1.Error.InvalidArgument", err.text
    assert "cannot raise" in err.text


def _paranoid() -> int:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except OSError:
        return 2


# -- who may ask for them: only with org.pyctrd1.container.create-privileged


@pytest.fixture(scope="module")
def polkit_env(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[SystemBus, Polkitd, SystemDaemon]]:
    with polkit_system("confinement", tmp_path_factory.mktemp("pyctrd-confine"), busybox_tar,
                       mock=True) as env:
        yield env


@pytest.mark.parametrize("option,value", [
    ("privileged", ["b", True]),
    ("cap_add", ["as", ["NET_ADMIN"]]),
    ("seccomp", ["s", "unconfined"]),
    # core's soft limit above the inherited 0, its hard one (unlimited) kept
    ("ulimits", ["a(stt)", [["core", 1 << 20, (1 << 64) - 1]]]),
])
async def test_escapes_need_create_privileged(
        polkit_env: tuple[SystemBus, Polkitd, SystemDaemon], client_factory: Any,
        option: str, value: list[Any]) -> None:
    bus, polkit, _daemon = polkit_env
    root = await client_factory(bus.address)
    create = {"path": MANAGER_PATH, "interface": MANAGER, "member": "CreateContainer",
              "signature": "sasa{sv}",
              "body": ["busybox", ["true"], {option: {"variant": value}}]}
    polkit.set_allowed(["org.pyctrd1.container.create"])
    polkit.clear_calls()
    try:
        (denied,) = call_as(NOBODY, bus.address, [create])["results"]
        assert denied.get("error") == ACCESS_DENIED, denied
        assert "create-privileged" in denied["message"]
        polkit.set_allowed(["org.pyctrd1.container.create",
                            "org.pyctrd1.container.create-privileged"])
        (created,) = call_as(NOBODY, bus.address, [create])["results"]
        assert "reply" in created, created
        root.created.append(created["reply"][0])
    finally:
        polkit.set_allowed([])


async def test_lowered_ulimits_and_cap_drop_need_only_create(
        polkit_env: tuple[SystemBus, Polkitd, SystemDaemon], client_factory: Any) -> None:
    bus, polkit, _daemon = polkit_env
    root = await client_factory(bus.address)
    create = {"path": MANAGER_PATH, "interface": MANAGER, "member": "CreateContainer",
              "signature": "sasa{sv}",
              "body": ["busybox", ["true"], {
                  "ulimits": {"variant": ["a(stt)", [["nofile", 64, 128]]]},
                  "cap_drop": {"variant": ["as", ["ALL"]]},
                  "seccomp": {"variant": ["s", "default"]}}]}
    polkit.set_allowed(["org.pyctrd1.container.create"])
    polkit.clear_calls()
    try:
        (created,) = call_as(NOBODY, bus.address, [create])["results"]
        assert "reply" in created, created
        root.created.append(created["reply"][0])
        assert [a for _s, a, _d, _f in polkit.check_calls()] == [
            "org.pyctrd1.container.create"]
    finally:
        polkit.set_allowed([])


async def test_inspect_shows_the_confinement(bus: Client) -> None:
    path = await bus.create(["true"], cap_drop=["ALL"], cap_add=["KILL"],
                            ulimits=[("nofile", 100, 200)], no_new_privileges=True)
    (text,) = await bus.ctr(path, "Inspect")
    host = json.loads(text)["HostConfig"]
    assert host["Privileged"] is False
    assert host["Capabilities"] == ["CAP_KILL"]
    assert host["SecurityOpt"] == ["seccomp=default", "no-new-privileges"]
    assert {"Name": "RLIMIT_NOFILE", "Soft": 100, "Hard": 200} in host["Ulimits"]


def test_pyctr_flags_as_podman_has_them(daemon: Any, probe_dir: Path) -> None:
    out = ok(daemon.bus_address, "run", "--rm", "--security-opt", "seccomp=unconfined",
             "--cap-add", "sys_time", "--ulimit", "nofile=100:200",
             "-v", f"{probe_dir}:/probe", "busybox", "sh", "-c",
             "/probe/probe | grep -E '^(Seccomp|CapEff)'; ulimit -n; ulimit -Hn")
    capeff_line, seccomp_line, soft, hard = out.split("\n")[:4]  # status order
    assert seccomp_line.split() == ["Seccomp:", "0"]
    assert int(capeff_line.split()[1], 16) == DEFAULT_MASK | 1 << 25  # CAP_SYS_TIME
    assert (soft, hard) == ("100", "200")
    out = ok(daemon.bus_address, "run", "--rm", "--privileged", "-v", f"{probe_dir}:/probe",
             "busybox", "/probe/probe")
    assert "Seccomp:\t0" in out and f"{host_bounding_set():016x}" in out
