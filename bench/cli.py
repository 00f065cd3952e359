#!/usr/bin/env python3
"""pyctr as a user types it (issue 20): whole commands, beside podman's.

With no container defined: `pyctr ps` over Varlink (the daemon's socket, as
pyctr uses it when the bus is the default one) and over D-Bus, `pyctr run
--rm --network none busybox true`, and podman's `ps` and `run --rm --network
none` of the same image with a private config; `python -c pass` (the
interpreter alone, site included) as the floor. `run` goes over Varlink
like `ps` (Create, OpenLog, Start, Wait, Remove), and over D-Bus beside it. Rounds alternate the
commands, so load that comes and goes falls on all of them alike.

    .venv/bin/python bench/cli.py [-n 30] [--output bench/RESULTS.md] [--note TEXT]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, Daemon, PrivateBus, append_section, machine, make_busybox
from podman import PrivatePodman, missing_note, podman_available

PYCTR = str(REPO / ".venv/bin/pyctr")
PYTHON = str(REPO / ".venv/bin/python")
# As a user runs it: modules compiled once (the warm-up round writes their .pyc),
# not at every start as with PYTHONDONTWRITEBYTECODE.
PYCTR_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
                   stdin=subprocess.DEVNULL, env=env, timeout=120)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=30, help="rounds")
    ap.add_argument("--output", help="append the results to this Markdown file")
    ap.add_argument("--note", default="", help="a remark recorded with the results")
    args = ap.parse_args()
    machine_text = machine()
    work = Path(tempfile.mkdtemp(prefix="pyctrd-cli-"))
    tarball = make_busybox(work)
    bus = PrivateBus(work)
    daemon = Daemon(work, bus.address)
    podman = PrivatePodman() if podman_available(False) else None
    try:
        daemon.start()
        sock = str(work / "run" / "io.pyctrd")
        subprocess.run([PYCTR, "--address", bus.address, "import", str(tarball), "busybox"],
                       check=True, stdout=subprocess.DEVNULL)
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "python -c pass (the floor)": ([PYTHON, "-c", "pass"], PYCTR_ENV),
            "pyctr ps (Varlink)": ([PYCTR, "--address", bus.address, "--varlink", sock,
                                    "ps"], PYCTR_ENV),
            "pyctr ps (D-Bus)": ([PYCTR, "--address", bus.address, "--varlink", "", "ps"],
                                 PYCTR_ENV),
            "pyctr run --rm --network none busybox true": (
                [PYCTR, "--address", bus.address, "--varlink", sock, "run", "--rm",
                 "--network", "none", "busybox", "true"], PYCTR_ENV),
            "pyctr run (D-Bus)": (
                [PYCTR, "--address", bus.address, "--varlink", "", "run", "--rm",
                 "--network", "none", "busybox", "true"], PYCTR_ENV),
        }
        if podman is not None:
            image = podman.import_image(tarball)
            commands["podman ps"] = (["podman", "ps"], podman.env)
            commands["podman run --rm --network none IMAGE true"] = (
                ["podman", "run", "--rm", "--network", "none", image, "true"], podman.env)
        for argv, env in commands.values():  # warm caches (page cache, .pyc)
            timed(argv, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.n):
            for label, (argv, env) in commands.items():
                times[label].append(timed(argv, env))
    finally:
        daemon.stop()
        bus.stop()
        if podman is not None:
            podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for label, values in times.items():
        rows.append(f"| {label} | {statistics.median(values) * 1e3:.1f} ms "
                    f"| {min(values) * 1e3:.1f} ms | {max(values) * 1e3:.1f} ms |")
    pyctr_run = statistics.median(times["pyctr run --rm --network none busybox true"])
    verdicts = [f"pyctr ps (Varlink) median "
                f"{statistics.median(times['pyctr ps (Varlink)']) * 1e3:.1f} ms "
                f"(target ≤ 100 ms)."]
    podman_run = times.get("podman run --rm --network none IMAGE true")
    if podman_run:
        ratio = pyctr_run / statistics.median(podman_run)
        verdicts.append(f"pyctr run / podman run (medians): {ratio:.2f}x (target ≤ 0.5x).")
    else:
        verdicts.append(missing_note())
    lines = [
        f"Whole commands, {args.n} rounds, the commands alternating within each round; "
        "no container defined (the run's container is removed by --rm).",
        "",
        "| command | median | min | max |",
        "|---|---|---|---|",
        *rows,
        "",
        *verdicts,
    ]
    print("\n".join(lines))
    append_section(args.output, "CLI: pyctr as a user types it, beside podman",
                   machine_text, lines, args.note)


if __name__ == "__main__":
    main()
