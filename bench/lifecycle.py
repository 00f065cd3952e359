#!/usr/bin/env python3
"""One container lifecycle of /bin/true: pyctrd beside conmon+runtime, raw runtime, podman.

For each runtime (runc, then crun), side by side in one run, interleaved
round-robin (each round starting one column later) so that a busy machine,
or what one column leaves behind, slows every column alike:

- pyctrd: CreateContainer+Start+Wait+Remove over the bus from one long-lived
  client (the daemon started with `--runtime`);
- conmon+runtime: the same cycle without a daemon (bench/baseline.py), on a
  plain extracted rootfs (pyctrd mounts an overlay and a /dev/shm per container);
- the same with pyctrd's own config.json (its seccomp profile, masked paths,
  mounts): what the runtime costs for pyctrd's containers, so that the rest of
  the difference is the daemon's own;
- `runtime run` of the same bundle;
- `podman run --rm --network none` of the same busybox image (`podman import`),
  with a private config (bench/podman.py); skipped when podman is missing.

Ratios are against the conmon+runtime cycle (target: pyctrd ≤ 1.15x, issue 20). crun
1.8.1 refuses hosts with hybrid cgroups; when it does, the crun set is rerun
in a private mount namespace with /sys/fs/cgroup/unified unmounted and
labelled so (--no-crun-unshare to skip that).

    .venv/bin/python bench/lifecycle.py [-n 30] [--runtimes runc,crun] [--with-podman]
        [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from baseline import Bench
from common import (
    CONTAINER,
    MANAGER,
    MANAGER_PATH,
    NO_NETWORK,
    Daemon,
    PrivateBus,
    append_section,
    call,
    machine,
    make_busybox,
    median_ms,
)
from dbus_fast.aio import MessageBus
from podman import PrivatePodman, missing_note, podman_available

from pyctrd.oci.spec import SpecInput, build_spec

WARMUP = 3
COLUMNS = ("pyctrd", "conmon", "run", "podman")
UNSHARED = "in a private mount namespace with /sys/fs/cgroup/unified unmounted"


def column_title(col: str, runtime: str) -> str:
    return {"pyctrd": "pyctrd", "conmon": f"conmon+{runtime}",
            "same": f"conmon+{runtime}, pyctrd's spec", "run": f"{runtime} run",
            "podman": "podman run --rm"}[col]


def pyctrd_spec(rootfs: Path, shm: Path) -> dict:
    """The config.json pyctrd writes for this benchmark's container (network none)."""
    return build_spec(SpecInput(cid="bench", rootfs=rootfs, args=["/bin/true"], env=[],
                                cwd="/", uid=0, gid=0, hostname="bench", shm_dir=shm))


class PyctrdClient:
    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.phases: dict[str, list[float]] = {}

    async def cycle(self) -> float:
        marks = [time.perf_counter()]
        (path,) = await call(self.bus, MANAGER_PATH, MANAGER, "CreateContainer", "sasa{sv}",
                             ["busybox", ["/bin/true"], NO_NETWORK])
        marks.append(time.perf_counter())
        try:
            await call(self.bus, path, CONTAINER, "Start")
            marks.append(time.perf_counter())
            (code,) = await call(self.bus, path, CONTAINER, "Wait")
            marks.append(time.perf_counter())
        except RuntimeError:
            await call(self.bus, path, CONTAINER, "Remove", "b", [True])
            raise
        await call(self.bus, path, CONTAINER, "Remove", "b", [False])
        marks.append(time.perf_counter())
        if code != 0:
            raise RuntimeError(f"/bin/true exited {code}")
        for name, a, b in zip(("Create", "Start", "Wait", "Remove"), marks, marks[1:],
                              strict=False):
            self.phases.setdefault(name, []).append(b - a)
        return marks[-1] - marks[0]


async def run_set(work: Path, tarball: Path, runtime: str, n: int,
                  use_podman: bool) -> dict:
    """All columns for one runtime: {"times": {col: [s]}, "failed": {col: msg}, "phases"}."""
    runtime_path = shutil.which(runtime) or runtime
    work = work / runtime
    work.mkdir()
    bus_proc = PrivateBus(work)
    daemon = Daemon(work, bus_proc.address, ["--runtime", runtime_path])
    podman = PrivatePodman(runtime) if use_podman else None
    baseline = Bench(work, runtime_path, tarball)
    same_spec = Bench(work, runtime_path, tarball, make_spec=pyctrd_spec,
                      name=f"{runtime}-pyctrd-spec")
    failed: dict[str, str] = {}
    times: dict[str, list[float]] = {}
    try:
        await daemon.start_async()
        bus = await MessageBus(bus_address=bus_proc.address, negotiate_unix_fd=True).connect()
        fd = os.open(tarball, os.O_RDONLY)
        await call(bus, MANAGER_PATH, MANAGER, "ImportImage", "hs", [0, "busybox"], [fd])
        os.close(fd)
        client = PyctrdClient(bus)
        conmon_phases: dict[str, list[float]] = {}
        same_phases: dict[str, list[float]] = {}

        async def sync(fn: Callable[[], float]) -> float:
            return fn()

        columns: dict[str, Callable[[], Awaitable[float]]] = {
            "pyctrd": client.cycle,
            "conmon": lambda: sync(lambda: baseline.conmon_cycle(conmon_phases)),
            "same": lambda: sync(lambda: same_spec.conmon_cycle(same_phases)),
            "run": lambda: sync(baseline.runtime_run),
        }
        if podman:
            image = podman.import_image(tarball)
            columns["podman"] = lambda: sync(lambda: podman.timed(
                "run", "--rm", "--network", "none", image, "/bin/true"))
        for i in range(n + WARMUP):
            if i == WARMUP:  # phases count only the measured runs
                client.phases.clear()
                conmon_phases.clear()
                same_phases.clear()
            # Each round starts one column later: every column follows every other
            # alike (what one leaves behind, e.g. the kernel's deferred teardown of
            # podman's mounts, falls on the next one).
            order = list(columns.items())
            shift = i % len(order)
            for col, one in order[shift:] + order[:shift]:
                try:
                    elapsed = await one()
                except (RuntimeError, subprocess.SubprocessError, OSError) as err:
                    failed[col] = str(err).strip().splitlines()[-1][:300]
                    del columns[col]  # a runtime that refuses this host refuses every time
                    print(f"{runtime}: {column_title(col, runtime)} failed: {failed[col]}",
                          flush=True)
                    continue
                if i >= WARMUP:
                    times.setdefault(col, []).append(elapsed)
        bus.disconnect()
        return {"times": times, "failed": failed,
                "phases": {"pyctrd": client.phases, "conmon": conmon_phases,
                           "same": same_phases}}
    finally:
        daemon.stop()
        bus_proc.stop()
        if podman:
            podman.cleanup()


def run_unshared(args: argparse.Namespace, work: Path, use_podman: bool) -> dict:
    """This script's crun set again, in a mount namespace without the cgroup2 hierarchy."""
    out = work / "unshared.json"
    argv = [sys.executable, __file__, "--runtimes", "crun", "-n", str(args.n),
            "--child-json", str(out)]
    if use_podman:
        argv.append("--with-podman")
    script = 'umount /sys/fs/cgroup/unified && exec "$@"'
    subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                    *argv], check=True, timeout=3600)
    return json.loads(out.read_text())["crun"]


def fmt_ms(values: list[float] | None) -> str:
    return f"{median_ms(values):.1f} ms" if values else "—"


def ratio(a: list[float] | None, b: list[float] | None) -> str:
    return f"{median_ms(a) / median_ms(b):.2f}x" if a and b else "—"


def report(sets: dict[str, dict], n: int) -> list[str]:
    lines = ["| runtime | N | pyctrd | conmon cycle | conmon cycle, pyctrd's spec "
             "| runtime run | podman run --rm "
             "| pyctrd ÷ conmon (target ≤ 1.15x) | pyctrd ÷ conmon with its spec "
             "| pyctrd ÷ run | podman ÷ pyctrd |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for label, res in sets.items():
        t = res["times"]
        lines.append(f"| {label} | {n} | {fmt_ms(t.get('pyctrd'))} | {fmt_ms(t.get('conmon'))} "
                     f"| {fmt_ms(t.get('same'))} "
                     f"| {fmt_ms(t.get('run'))} | {fmt_ms(t.get('podman'))} "
                     f"| {ratio(t.get('pyctrd'), t.get('conmon'))} "
                     f"| {ratio(t.get('pyctrd'), t.get('same'))} "
                     f"| {ratio(t.get('pyctrd'), t.get('run'))} "
                     f"| {ratio(t.get('podman'), t.get('pyctrd'))} |")
        for col, msg in res["failed"].items():
            notes.append(f"- {label}: {column_title(col, label.split()[0])} failed: `{msg}`")
        if res.get("skipped"):
            notes.append(f"- {label}: {res['skipped']}")
    lines += ["", "Phases (medians): pyctrd's calls beside the conmon cycle's steps "
              "(plain spec / pyctrd's spec).", "",
              "| runtime | pyctrd Create | Start | Wait | Remove | conmon create | start "
              "| wait (pidfd) | delete |", "|---|---|---|---|---|---|---|---|---|"]
    for label, res in sets.items():
        p, c = res["phases"]["pyctrd"], res["phases"]["conmon"]
        same = res["phases"].get("same", {})
        if not p and not c:
            continue
        cells = [fmt_ms(p.get(k)) for k in ("Create", "Start", "Wait", "Remove")]
        cells += [f"{fmt_ms(c.get(k))} / {fmt_ms(same.get(k))}"
                  for k in ("create", "start", "wait", "delete")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + (["", *notes] if notes else [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--runtimes", default="runc,crun")
    ap.add_argument("--with-podman", action="store_true",
                    help="apt-get install podman if it is missing")
    ap.add_argument("--no-crun-unshare", action="store_true",
                    help="do not rerun a refused crun set in a private mount namespace")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    ap.add_argument("--child-json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    machine_text = machine()
    use_podman = podman_available(args.with_podman) is not None
    skipped = "" if use_podman else missing_note()
    if skipped and not args.child_json:
        print(skipped)
    work = Path(tempfile.mkdtemp(prefix="pyctrd-lifecycle-"))
    sets: dict[str, dict] = {}
    try:
        tarball = make_busybox(work)
        for runtime in args.runtimes.split(","):
            res = asyncio.run(run_set(work, tarball, runtime, args.n, use_podman))
            res["skipped"] = skipped
            sets[runtime] = res
            if (runtime == "crun" and res["failed"] and not args.no_crun_unshare
                    and not args.child_json):
                print(f"crun refused this host; rerunning the crun set {UNSHARED}", flush=True)
                try:
                    sets["crun (unshared cgroup2)"] = run_unshared(args, work, use_podman)
                except (subprocess.SubprocessError, OSError, KeyError) as err:
                    print(f"the unshared crun set failed too: {err}")
        if args.child_json:
            Path(args.child_json).write_text(json.dumps(sets))
            return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = report(sets, args.n)
    print("\n".join(lines))
    note = args.note
    if "crun (unshared cgroup2)" in sets:
        note += (f" crun (unshared cgroup2): the whole crun set (bus, pyctrd, conmon, crun, "
                 f"podman) ran {UNSHARED}, since crun 1.8.1 refuses hybrid cgroup hosts.")
    append_section(args.output, "Lifecycle: pyctrd beside conmon+runtime, runtime run, podman",
                   machine_text, lines, note.strip())


if __name__ == "__main__":
    main()
