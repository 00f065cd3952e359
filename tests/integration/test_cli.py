"""pyctr, the real binary, against the real daemon: issue 6's "done means" and
every verb. Each test removes the containers and images it makes."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Daemon

from integration.cli_support import Events, Terminal, ok, ps_all, pyctr, pyctr_argv

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def address(daemon: Daemon) -> Iterator[str]:
    """The shared daemon's bus; containers made during the test are removed after it."""
    before = {c["Id"] for c in ps_all(daemon.bus_address)}
    yield daemon.bus_address
    left = [c["Id"] for c in ps_all(daemon.bus_address) if c["Id"] not in before]
    if left:
        ok(daemon.bus_address, "rm", "-f", *left)


def names(address: str) -> list[str]:
    return [c["Names"][0] for c in ps_all(address)]


# -- issue 6: done means


def test_run_rm_prints_output_and_exits_with_the_container_s_code(address: str) -> None:
    before = ps_all(address)
    result = pyctr(address, "run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "hi\n", "")
    assert ps_all(address) == before


def test_run_keeps_stdout_and_stderr_apart(address: str) -> None:
    result = pyctr(address, "run", "--rm", "busybox", "sh", "-c",
                   "echo out; echo err >&2; echo out2; exit 0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\nout2\n", "err\n")


def test_web_detached_listed_logged_stopped_removed_and_seen_by_events(address: str) -> None:
    events = Events(address, "--format", "json")
    text_events = Events(address)
    try:
        cid = ok(address, "run", "-d", "--name", "web", "busybox", "sh", "-c",
                 "echo serving; exec sleep 1000").strip()
        assert HEX64.match(cid), cid

        (web,) = [c for c in ps_all(address) if c["Names"] == ["web"]]
        assert (web["Id"], web["State"], web["Image"]) == (cid, "running", "busybox")
        assert web["Command"] == ["sh", "-c", "echo serving; exec sleep 1000"]
        assert web["Pid"] > 0 and web["Status"].startswith("Up ")
        table = ok(address, "ps").splitlines()
        assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED",
                                    "STATUS", "PORTS", "NAMES"]
        assert any(line.startswith(cid[:12]) and line.endswith("web") for line in table)
        assert ok(address, "ps", "-q") .split().count(cid[:12]) == 1

        # the echo may be a moment behind the start: follow the log until it is there
        events.read_until(lambda line: json.loads(line)["Status"] == "start")
        logs = subprocess.Popen(pyctr_argv(address, "logs", "-f", "web"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert logs.stdout is not None
        assert logs.stdout.readline() == b"serving\n"

        assert ok(address, "stop", "-t", "0", "web") == "web\n"
        assert logs.wait(30) == 0  # the followed log ends when the container exits
        logs.stdout.close()
        logs.stderr.close()  # type: ignore[union-attr]
        assert ok(address, "logs", "web") == "serving\n"
        (web,) = [c for c in ps_all(address) if c["Names"] == ["web"]]
        assert web["State"] == "exited" and web["ExitCode"] == 137
        assert "web" not in ok(address, "ps")  # without -a: running ones only

        assert ok(address, "rm", "web") == "web\n"
        assert "web" not in names(address)

        seen = events.read_until(lambda line: json.loads(line)["Status"] == "remove")
        records = [json.loads(line) for line in seen]
        assert all(r["ID"] == cid and r["Name"] == "web" and r["Type"] == "container"
                   for r in records)
        statuses = [r["Status"] for r in records]
        for status in ("create", "start", "died", "remove"):
            assert status in statuses, statuses
        assert statuses.index("create") < statuses.index("start") \
            < statuses.index("died") < statuses.index("remove")
        died = next(r for r in records if r["Status"] == "died")
        assert died["ContainerExitCode"] == 137

        lines = text_events.read_until(lambda line: " container remove " in line)
        assert all(f" {cid} (" in line and "name=web" in line for line in lines)
    finally:
        assert events.stop() == 0
        assert text_events.stop() == 0


def test_start_nosuch_is_one_clear_line_and_125(address: str) -> None:
    result = pyctr(address, "start", "nosuch")
    assert result.returncode == 125
    assert result.stdout == ""
    assert result.stderr.startswith(
        'Error: no container with name or ID "nosuch" found: no such container')
    assert result.stderr.count("\n") == 1


# -- run and create


def test_run_statuses_for_commands_that_cannot_run(address: str) -> None:
    before = ps_all(address)
    missing = pyctr(address, "run", "--rm", "busybox", "nosuchcommand")
    assert missing.returncode == 127
    assert missing.stderr.startswith("Error: ") and "not found" in missing.stderr
    assert missing.stderr.count("\n") == 1
    assert pyctr(address, "run", "--rm", "busybox", "/etc").returncode == 126
    no_image = pyctr(address, "run", "--rm", "nosuchimage", "true")
    assert no_image.returncode == 125
    assert no_image.stderr.startswith("Error: nosuchimage: no such image")
    assert ps_all(address) == before


def test_create_flags_reach_the_container(address: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # the container's user 1000 reads it
    (tmp_path / "shared").write_text("from the host\n")
    cid = ok(address, "create", "--name", "flags", "-e", "FOO=bar", "-e", "LANG",
             "-w", "/tmp", "-u", "1000:1000", "--hostname", "box", "-l", "tier=web",
             "-v", f"{tmp_path}:/data:ro", "--memory", "64m", "--cpus", "0.5",
             "--pids-limit", "32", "--network", "none", "--read-only",
             "--stop-signal", "SIGINT", "--stop-timeout", "3",
             "--entrypoint", '["/bin/sh", "-c"]', "busybox",
             "echo $FOO $LANG; pwd; id -u; hostname; cat /data/shared; "
             "touch /data/x 2>/dev/null || echo data-ro; touch /x 2>/dev/null || echo root-ro; "
             "exit 2").strip()
    assert HEX64.match(cid)
    result = pyctr(address, "start", "-a", "flags")
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == ["bar C.UTF-8", "/tmp", "1000", "box",
                                          "from the host", "data-ro", "root-ro"]
    (info,) = json.loads(ok(address, "inspect", "flags"))
    assert info["Id"] == cid and info["Name"] == "flags"
    assert info["Config"]["Labels"] == {"tier": "web"}
    assert info["Config"]["StopTimeout"] == 3 and info["Config"]["StopSignal"] == 2
    assert info["HostConfig"].items() >= {"Memory": 64 << 20, "Cpus": 0.5, "PidsLimit": 32,
                                          "NetworkMode": "none", "ReadonlyRootfs": True}.items()
    assert info["Mounts"] == [{"Source": str(tmp_path), "Destination": "/data",
                               "Options": ["ro"]}]
    assert info["Path"] == "/bin/sh"
    # a second start -a shows only the new run's output
    again = pyctr(address, "start", "-a", "flags")
    assert again.returncode == 2 and again.stdout.count("from the host") == 1
    assert ok(address, "rm", cid[:12]) == f"{cid[:12]}\n"  # an ID prefix works too


def test_bad_flags_fail_before_anything_is_created(address: str) -> None:
    before = ps_all(address)
    for args in (["--memory", "lots"], ["--cpus", "-2"], ["-v", "rel/ative:/x"],
                 ["-e", "=x"], ["--network", "container:x"], ["--tz", "UTC"]):
        result = pyctr(address, "run", *args, "busybox", "true")
        assert result.returncode == 125, args
        assert result.stderr.count("\n") >= 1 and "Traceback" not in result.stderr
    assert ps_all(address) == before


def test_interactive_stdin_reaches_the_command(address: str) -> None:
    result = pyctr(address, "run", "--rm", "-i", "busybox", "sh", "-c",
                   "head -n 2 | tr a-z A-Z; echo done >&2; exit 4", input="hello\nworld\n")
    assert (result.returncode, result.stdout, result.stderr) == (4, "HELLO\nWORLD\n",
                                                                   "done\n")


def test_the_end_of_our_stdin_reaches_the_command(address: str) -> None:
    result = pyctr(address, "run", "--rm", "-i", "busybox", "cat", input="x\n", timeout=3)
    assert (result.returncode, result.stdout) == (0, "x\n")


def test_run_it_is_an_interactive_terminal(address: str) -> None:
    before = ps_all(address)
    term = Terminal(address, "run", "--rm", "-it", "busybox", "sh", rows=30, cols=100)
    term.expect(b"/ # ")  # the prompt it printed before we attached is replayed
    term.type(b"stty size; echo hel''lo\r")
    term.expect(b"30 100\r\nhello\r\n")
    term.resize(40, 120)
    term.type(b"stty size\r")
    term.expect(b"40 120\r\n")
    term.type(b"exit 5\r")
    assert term.wait() == 5
    assert ps_all(address) == before


def test_detach_keys_leave_it_running_and_attach_rejoins(address: str) -> None:
    term = Terminal(address, "run", "-it", "--name", "tty", "busybox", "sh")
    term.expect(b"/ # ")
    term.type(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.wait() == 0
    (tty,) = [c for c in ps_all(address) if c["Names"] == ["tty"]]
    assert tty["State"] == "running"

    term = Terminal(address, "attach", "tty")
    term.wait_raw()
    term.type(b"echo ag''ain\r")
    term.expect(b"again\r\n")
    term.type(b"exit 7\r")
    assert term.wait() == 7
    ok(address, "rm", "tty")


# -- life cycle verbs


def test_pause_unpause_kill_wait_restart(address: str) -> None:
    ok(address, "run", "-d", "--name", "life", "busybox", "sh", "-c",
       "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    assert ok(address, "pause", "life") == "life\n"
    (c,) = [c for c in ps_all(address) if c["Names"] == ["life"]]
    assert c["State"] == "paused" and c["Status"].endswith("(paused)")
    assert ok(address, "unpause", "life") == "life\n"
    assert ok(address, "kill", "-s", "USR1", "life") == "life\n"
    assert ok(address, "wait", "life") == "42\n"
    assert ok(address, "restart", "-t", "0", "life") == "life\n"
    (c,) = [c for c in ps_all(address) if c["Names"] == ["life"]]
    assert c["State"] == "running"
    assert ok(address, "stop", "-t", "0", "life") == "life\n"
    assert ok(address, "stop", "life") == "life\n"  # stopping a stopped one succeeds
    bad = pyctr(address, "pause", "life")
    assert bad.returncode == 125
    assert bad.stderr == 'Error: "life" is not running, can\'t pause: container state improper\n'
    assert ok(address, "rm", "life") == "life\n"


def test_several_containers_and_a_missing_one(address: str) -> None:
    ok(address, "create", "--name", "one", "busybox", "true")
    ok(address, "create", "--name", "two", "busybox", "true")
    result = pyctr(address, "rm", "one", "nosuch", "two")
    assert result.returncode == 1  # podman rm: 1 when one did not exist (and nothing worse)
    assert result.stdout == "one\ntwo\n"
    assert result.stderr.startswith(
        'Error: no container with name or ID "nosuch" found: no such container')
    assert {"one", "two"}.isdisjoint(names(address))


def test_rm_of_a_running_container_needs_force(address: str) -> None:
    ok(address, "run", "-d", "--name", "busy", "busybox", "sleep", "1000")
    refused = pyctr(address, "rm", "busy")
    assert refused.returncode == 2 and refused.stderr.startswith(
        "Error: cannot remove container busy as it is running")
    assert ok(address, "rm", "-f", "busy") == "busy\n"


def test_mount_unmount_and_export(address: str, tmp_path: Path) -> None:
    ok(address, "create", "--name", "store", "busybox", "true")
    mountpoint = ok(address, "mount", "store").strip()
    assert os.path.isfile(os.path.join(mountpoint, "bin", "busybox"))
    assert mountpoint in ok(address, "mount")
    assert ok(address, "unmount", "store") == "store\n"
    assert ok(address, "umount", "store") == "store\n"

    out = tmp_path / "store.tar"
    assert ok(address, "export", "-o", str(out), "store") == ""
    with tarfile.open(out) as tar:
        assert any(n.lstrip("./") == "bin/busybox" for n in tar.getnames())

    # to stdout, but never to a terminal
    with open(tmp_path / "piped.tar", "wb") as f:
        subprocess.run(pyctr_argv(address, "export", "store"), stdout=f, check=True,
                       timeout=30)
    assert (tmp_path / "piped.tar").stat().st_size == out.stat().st_size
    primary, secondary = pty.openpty()
    try:
        refused = subprocess.run(pyctr_argv(address, "export", "store"), stdout=secondary,
                                 stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(primary)
        os.close(secondary)
    assert refused.returncode == 125 and b"terminal" in refused.stderr
    ok(address, "rm", "store")


def test_inspect_containers_and_images(address: str, daemon: Daemon) -> None:
    ok(address, "create", "--name", "insp", "-e", "SECRET=1", "busybox", "true")
    found = json.loads(ok(address, "inspect", "insp", "busybox"))
    assert [found[0]["Name"], found[1]["Id"]] == ["insp", daemon.image_id]
    assert "SECRET=1" in found[0]["Config"]["Env"]
    assert found[1]["RepoTags"] == ["busybox"]
    missing = pyctr(address, "inspect", "insp", "nosuch")
    assert missing.returncode == 125 and len(json.loads(missing.stdout)) == 1
    assert missing.stderr.startswith('Error: no such object: "nosuch"')
    ok(address, "rm", "insp")


def test_logs_tail_timestamps_and_streams(address: str) -> None:
    ok(address, "run", "--name", "talk", "busybox", "sh", "-c",
       "for i in 1 2 3 4; do echo line$i; done; echo oops >&2")
    result = pyctr(address, "logs", "talk")
    assert (result.stdout, result.stderr) == ("line1\nline2\nline3\nline4\n", "oops\n")
    assert pyctr(address, "logs", "--tail", "2", "talk").stdout == "line4\n"
    stamped = ok(address, "logs", "-t", "talk").splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\S+ line1$", stamped[0])
    ok(address, "rm", "talk")


# -- images


def test_import_images_rmi(address: str, make_variant_tar: Callable[[str], Path]) -> None:
    archive = make_variant_tar("cli")
    image_id = ok(address, "import", str(archive), "cli-img").strip()
    assert HEX64.match(image_id)
    table = ok(address, "images")
    assert table.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED",
                                             "SIZE"]
    assert any(line.startswith("cli-img ") and image_id[:12] in line
               for line in table.splitlines())
    listed = json.loads(ok(address, "images", "--format", "json"))
    assert {"Id": image_id, "Names": ["cli-img"]}.items() <= \
        next(i for i in listed if i["Id"] == image_id).items()
    assert image_id[:12] in ok(address, "images", "-q").split()
    assert ok(address, "rmi", "cli-img") == f"Untagged: cli-img\nDeleted: {image_id}\n"

    # from stdin, through the `image` group
    with open(archive, "rb") as f:
        again = ok(address, "image", "import", "-", "cli-img2", input=f.read()).strip()
    assert again == image_id
    refused = pyctr(address, "rmi", "nosuchimage")
    assert (refused.returncode, refused.stderr) == (1, "Error: nosuchimage: image not known\n")
    assert ok(address, "image", "rm", image_id[:16]) == \
        f"Untagged: cli-img2\nDeleted: {image_id}\n"


def test_import_draws_progress_on_a_terminal(address: str,
                                             make_variant_tar: Callable[[str], Path]) -> None:
    archive = make_variant_tar("progress")
    assert archive.stat().st_size >= 1 << 20
    term = Terminal(address, "import", str(archive), "cli-progress")
    assert term.wait() == 0
    shown = term.output.decode()
    assert f"\r{archive.name} [" in shown and "] 100%" in shown
    image_id = shown.strip().splitlines()[-1].strip()
    assert HEX64.match(image_id), shown
    ok(address, "rmi", image_id)


# -- the bus, errors, completion


def test_no_daemon_and_bad_usage_say_one_line(tmp_path: Path) -> None:
    nobody = f"unix:path={tmp_path}/nobus"
    result = pyctr(nobody, "ps")
    assert result.returncode == 125
    assert result.stderr.startswith("Error: cannot connect to ") and \
        result.stderr.count("\n") == 1
    usage = pyctr(nobody, "frobnicate")
    assert usage.returncode == 125 and usage.stderr == \
        "Error: unrecognized command `pyctr frobnicate` (see `pyctr --help`)\n"


def test_completion_names_from_the_daemon(address: str) -> None:
    ok(address, "create", "--name", "completeme", "busybox", "true")
    assert "completeme" in ok(address, "__complete", "containers").split()
    assert "busybox" in ok(address, "__complete", "images").split()
    ok(address, "rm", "completeme")
