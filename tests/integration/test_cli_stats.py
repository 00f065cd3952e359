"""`pyctr stats` through the real binary, against a real daemon, runc and conmon."""

import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from integration.cli_support import env, ok, ps_all, pyctr, pyctr_argv

SPIN = ["sh", "-c", "while :; do :; done"]


@pytest.fixture
def address(daemon) -> Iterator[str]:
    before = {c["Id"] for c in ps_all(daemon.bus_address)}
    yield daemon.bus_address
    left = [c["Id"] for c in ps_all(daemon.bus_address) if c["Id"] not in before]
    if left:
        ok(daemon.bus_address, "rm", "-f", *left)


def percent(text: str) -> float:
    return 0.0 if text == "--" else float(text.rstrip("%"))


def test_stats_no_stream_table_json_and_template(address):
    spin = ok(address, "run", "-d", "--name", "stats-spin", "--memory", "64m", "busybox",
              *SPIN).strip()
    ok(address, "run", "-d", "--name", "stats-idle", "busybox", "sleep", "1000")
    ok(address, "create", "--name", "stats-created", "busybox", "true")
    time.sleep(1.0)  # let the spinner use about a second of CPU

    table = ok(address, "stats", "--no-stream").splitlines()
    assert table[0].split() == ["ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT",
                                "MEM", "%", "NET", "IO", "BLOCK", "IO", "PIDS", "CPU",
                                "TIME", "AVG", "CPU", "%"]
    names = {line.split()[1] for line in table[1:]}
    assert {"stats-spin", "stats-idle"} <= names and "stats-created" not in names
    row = next(line for line in table[1:] if "stats-spin" in line)
    assert row.startswith(spin[:12]) and " / 67.11MB " in row

    (item,) = json.loads(ok(address, "stats", "--no-stream", "--format", "json",
                            "stats-spin"))
    assert set(item) >= {"id", "name", "cpu_time", "cpu_percent", "avg_cpu", "mem_usage",
                         "mem_percent", "net_io", "block_io", "pids"}
    assert item["id"] == spin[:12] and item["name"] == "stats-spin"
    # a spinning shell on a 2-core host: about one core since it started
    assert 50 <= percent(item["cpu_percent"]) <= 110, item
    assert item["mem_usage"].endswith(" / 67.11MB") and item["pids"] == "1"

    out = ok(address, "stats", "--no-stream", "--no-trunc", "--format",
             "{{.ID}} {{.Name}} {{.PIDS}}", "stats-idle", "stats-spin")
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].endswith(" stats-idle 1")
    assert len(lines[1].split()[0]) == 64

    stopped = pyctr(address, "stats", "--no-stream", "stats-created")
    assert stopped.returncode == 125 and "not running" in stopped.stderr
    missing = pyctr(address, "stats", "--no-stream", "no-such-container")
    assert missing.returncode == 125 and "no-such-container" in missing.stderr
    bad = pyctr(address, "stats", "--no-stream", "--format", "{{.Nope", "stats-idle")
    assert bad.returncode == 125


def test_stats_stream_reads_between_readings_until_interrupted(address):
    ok(address, "run", "-d", "--name", "stats-stream", "busybox", *SPIN)
    ok(address, "run", "-d", "--name", "stats-quiet", "busybox", "sleep", "1000")
    proc = subprocess.Popen(
        pyctr_argv(address, "stats", "--interval", "1", "--format",
                   "{{.Name}} {{.CPUPerc}}", "stats-stream", "stats-quiet"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
        stdin=subprocess.DEVNULL)
    try:
        rows: list[str] = []
        deadline = time.monotonic() + 15
        while len(rows) < 6 and time.monotonic() < deadline:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            rows.append(line.strip())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # later readings are between readings: the spinner near one core, the sleeper idle
    later = dict(row.split() for row in rows[2:])
    assert 50 <= percent(later["stats-stream"]) <= 110, rows
    assert percent(later["stats-quiet"]) < 5, rows
