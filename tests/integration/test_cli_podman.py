"""pyctr as podman 4 (issue 21): the real binary against a daemon of this module's
own (so --all touches only what these tests made): Go templates, --filter,
the --all/--latest/--ignore/--cidfile family, logs and events windows, the
command groups, podman's messages and exit codes, and a script of podman
command lines run unchanged with `alias podman=pyctr`."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BusDaemon, Daemon, _start_daemon

from integration.cli_support import PYCTR, env, ok, pyctr

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def own(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("podman-cli")
    bus = BusDaemon(base / "dbus")
    try:
        daemon = _start_daemon(base, bus.address, busybox_tar)
        try:
            yield daemon
        finally:
            daemon.shutdown()
    finally:
        bus.stop()


@pytest.fixture
def address(own: Daemon) -> Iterator[str]:
    """The module's daemon; every container is removed after each test."""
    yield own.bus_address
    ok(own.bus_address, "rm", "--all", "--force", "-t", "0")
    assert ok(own.bus_address, "ps", "-aq") == ""


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_ps_templates_filters_and_table(address: str) -> None:
    web = ok(address, "run", "-d", "--name", "web", "-l", "app=shop", "busybox",
             "sleep", "1000").strip()
    ok(address, "create", "--name", "idle", "-l", "app=admin", "busybox", "true")
    assert pyctr(address, "run", "--name", "done", "busybox", "sh", "-c", "exit 3").returncode == 3

    assert ok(address, "ps", "--format", "{{.ID}} {{.Names}}") == f"{web[:12]} web\n"
    assert ok(address, "ps", "--no-trunc", "--format", "{{.ID}}") == f"{web}\n"
    assert ok(address, "ps", "-a", "--format", "{{.Names}}") == "web\nidle\ndone\n"
    # --filter: one key's values are alternatives, keys must all match
    assert ok(address, "ps", "-a", "--filter", "status=exited", "--format",
              "{{.Names}} {{.ExitCode}}") == "done 3\n"
    assert ok(address, "ps", "-a", "-f", "status=created", "-f", "status=running",
              "--format", "{{.Names}}") == "web\nidle\n"
    assert ok(address, "ps", "--filter", "label=app=shop", "--format", "{{.Names}}") == \
        "web\n"
    assert ok(address, "ps", "-a", "--filter", "label=app", "--filter", "name=^i",
              "--format", "{{.Names}}") == "idle\n"
    assert ok(address, "ps", "-a", "--filter", "exited=3", "-q") == \
        ok(address, "ps", "-a", "--filter", "name=done", "-q")
    assert ok(address, "ps", "-a", "--filter", f"id={web[:5]}", "--format", "{{.Names}}") \
        == "web\n"
    assert ok(address, "ps", "-a", "--filter", "ancestor=busybox", "-q").count("\n") == 3
    assert ok(address, "ps", "-a", "--filter", "since=web", "--format", "{{.Names}}") == \
        "idle\ndone\n"
    assert ok(address, "ps", "-a", "--filter", "before=idle", "--format", "{{.Names}}") == \
        "web\n"
    assert ok(address, "ps", "-l", "--format", "{{.Names}}") == "done\n"
    assert ok(address, "ps", "-n", "2", "--format", "{{.Names}}") == "idle\ndone\n"
    assert ok(address, "ps", "--format", '{{.Label "app"}} {{.State}}').startswith("shop Up ")
    # json and {{json .}}: podman's JSON shape
    (entry,) = json.loads(ok(address, "ps", "--format", "json"))
    assert entry["Names"] == ["web"] and entry["Id"] == web
    assert json.loads(ok(address, "ps", "--format", "{{json .}}"))["Id"] == web
    # table: headers from the fields, columns aligned; --noheading drops the header
    table = lines(ok(address, "ps", "-a", "--format", "table {{.Names}}\t{{.Status}}"))
    assert table[0].split() == ["NAMES", "STATUS"] and len(table) == 4
    assert table[1].index("Up") == table[0].index("STATUS")
    assert lines(ok(address, "ps", "--noheading"))[0].startswith(web[:12])
    bad = pyctr(address, "ps", "--filter", "color=red")
    assert bad.returncode == 125 and bad.stderr.startswith('Error: invalid filter "color"')
    pod = pyctr(address, "ps", "--filter", "pod=x")
    assert (pod.returncode, pod.stderr) == (125, "Error: --filter pod: pyctrd has no pods\n")
    broken = pyctr(address, "ps", "--format", "{{.Nope}}")
    assert broken.returncode == 125 and "can't evaluate field Nope" in broken.stderr
    assert broken.stderr.count("\n") == 1


def test_inspect_templates_and_types(address: str, own: Daemon, tmp_path: Path) -> None:
    assert pyctr(address, "run", "--name", "seven", "-v", f"{tmp_path}:/data:ro", "busybox",
                 "sh", "-c", "exit 7").returncode == 7
    assert ok(address, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
              "seven") == "exited 7\n"
    assert ok(address, "inspect", "-f", "{{.ImageName}}", "seven") == "busybox\n"
    log_path = ok(address, "inspect", "-f", "{{.HostConfig.LogConfig.Path}}", "seven").strip()
    assert log_path.startswith("/") and log_path.endswith("log")
    assert ok(address, "inspect", "-f", "{{(index .Mounts 0).Destination}}", "seven") == \
        "/data\n"
    assert ok(address, "inspect", "-f", "{{index .Mounts 0}}", "seven").startswith("map[")
    assert json.loads(ok(address, "inspect", "-f", "{{json .State}}", "seven"))[
        "ExitCode"] == 7
    # several objects: the template once for each
    assert ok(address, "inspect", "-f", "{{.Id}}", "seven", "busybox").split()[1] == \
        own.image_id
    assert ok(address, "container", "inspect", "-f", "{{.Name}}", "seven") == "seven\n"
    assert ok(address, "image", "inspect", "-f", "{{.Id}}", "busybox") == \
        f"{own.image_id}\n"
    assert ok(address, "inspect", "--type", "image", "-f", "{{index .RepoTags 0}}",
              "busybox") == "busybox\n"
    assert ok(address, "inspect", "-l", "-f", "{{.Name}}") == "seven\n"
    wrong = pyctr(address, "inspect", "--type", "container", "busybox")
    assert wrong.returncode == 125 and wrong.stderr == \
        'Error: no container with name or ID "busybox" found: no such container\n'
    missing = pyctr(address, "image", "inspect", "nosuch")
    assert (missing.returncode, missing.stderr) == (125, "Error: nosuch: image not known\n")


def test_images_info_version_and_df(address: str, own: Daemon) -> None:
    assert ok(address, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}") == \
        f"busybox:<none> {own.image_id[:12]}\n"
    assert ok(address, "images", "--no-trunc", "-q") == f"{own.image_id}\n"
    assert ok(address, "images", "--filter", "reference=busybox", "-q") == \
        f"{own.image_id[:12]}\n"
    assert ok(address, "images", "--filter", "reference=nosuch", "-q") == ""
    assert ok(address, "images", "--filter", "dangling=true", "-q") == ""
    assert ok(address, "images", "busybox", "-q") == f"{own.image_id[:12]}\n"
    table = lines(ok(address, "images"))
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines(ok(address, "images", "-n"))[0].startswith("busybox ")
    assert ok(address, "image", "ls", "--format", "{{.ID}}") == f"{own.image_id[:12]}\n"
    (image,) = json.loads(ok(address, "images", "--format", "json"))
    assert image["Id"] == own.image_id and image["Names"] == ["busybox"]

    assert ok(address, "info", "--format", "{{.Store.ImageStore.Number}}") == "1\n"
    assert ok(address, "system", "info", "-f", "{{.Host.OCIRuntime.Name}}").strip() in \
        ("runc", "crun")
    info = json.loads(ok(address, "info", "--format", "json"))
    assert info["store"]["containerStore"]["number"] == 0 and info["host"]["arch"]
    assert "host:\n  arch: " in ok(address, "info")
    assert ok(address, "version", "--format", "{{.Client.Version}}").strip()
    assert ok(address, "version", "--format", "{{.Server.Version}}").strip()
    assert ok(address, "version").startswith("Client:")
    df = lines(ok(address, "system", "df"))
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    verbose = ok(address, "system", "df", "-v")
    assert verbose.startswith("Images space usage:\n\nREPOSITORY ") and "busybox " in verbose
    assert "\nLocal Volumes space usage:\n\nVOLUME NAME " in verbose
    assert ok(address, "image", "exists", "busybox") == ""
    assert pyctr(address, "image", "exists", "nosuch").returncode == 1


def test_all_latest_ignore_cidfile_family(address: str, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    a = ok(address, "run", "-d", "--cidfile", str(cidfile), "--name", "a", "busybox",
           "sleep", "1000").strip()
    assert cidfile.read_text() == a
    again = pyctr(address, "create", "--cidfile", str(cidfile), "busybox", "true")
    assert again.returncode == 125 and "container id file exists" in again.stderr
    b = ok(address, "run", "-d", "--name", "b", "busybox", "sleep", "1000").strip()
    # kill prints the names as given; --all prints IDs
    assert ok(address, "pause", "a") == "a\n"
    assert ok(address, "unpause", "--all") == f"{a}\n"
    assert ok(address, "kill", "-s", "KILL", "--cidfile", str(cidfile)) == f"{a}\n"
    assert ok(address, "wait", "a") == "137\n"
    assert ok(address, "stop", "--ignore", "nosuch", "-t", "0", "b") == "b\n"
    assert ok(address, "container", "exists", "a") == ""
    assert pyctr(address, "container", "exists", "nosuch").returncode == 1
    assert ok(address, "start", "--all") == f"{a}\n{b}\n"
    assert ok(address, "stop", "-t", "0", "--all") == f"{a}\n{b}\n"
    assert ok(address, "restart", "-t", "0", "--latest") == f"{b}\n"
    assert ok(address, "wait", "--condition", "running", "b") == "-1\n"
    assert ok(address, "wait", "--ignore", "nosuch") == "-1\n"
    mounted = ok(address, "mount", "a").strip()
    assert Path(mounted, "bin").is_dir()
    assert ok(address, "mount", "--format", "json") and ok(address, "unmount", "--all") == \
        f"{a}\n"
    assert ok(address, "rm", "-f", "-t", "0", "--cidfile", str(cidfile)) == f"{a}\n"
    assert ok(address, "rm", "--ignore", "nosuch") == ""
    assert ok(address, "rm", "-t", "0", "--all", "--force", "--ignore") == f"{b}\n"
    # --replace: the container of that name goes first, running or not
    first = ok(address, "run", "-d", "--name", "again", "busybox", "sleep", "1000").strip()
    second = ok(address, "run", "-d", "--replace", "--name", "again", "--mount",
                f"type=bind,source={tmp_path},target=/data,readonly", "busybox",
                "sleep", "1000").strip()
    assert second != first and ok(address, "ps", "-q", "--no-trunc") == f"{second}\n"
    assert ok(address, "inspect", "-f", "{{(index .Mounts 0).Options}}", "again") == "[ro]\n"
    assert ok(address, "rm", "-f", "-t", "0", "again") == "again\n"
    both = pyctr(address, "stop", "--all", "b")
    assert (both.returncode, both.stderr) == (
        125, "Error: --all and containers cannot be used together\n")
    none = pyctr(address, "stop")
    assert (none.returncode, none.stderr) == (
        125, "Error: you must provide at least one name or id\n")


def test_podman_messages_and_exit_codes(address: str) -> None:
    for argv in (["stop", "nosuch"], ["rm", "nosuch"], ["logs", "nosuch"],
                 ["start", "nosuch"], ["kill", "nosuch"], ["export", "nosuch"]):
        result = pyctr(address, *argv)
        assert (result.returncode, result.stderr) == (
            1 if argv[0] == "rm" else 125,  # podman rm: 1 for a missing container
            'Error: no container with name or ID "nosuch" found: no such container\n'), argv
    assert ok(address, "--noout", "ps", "-a") == ""
    cid = ok(address, "create", "--name", "taken", "busybox", "true").strip()
    clash = pyctr(address, "create", "--name", "taken", "busybox", "true")
    assert clash.returncode == 125 and clash.stderr == (
        f'Error: creating container storage: the container name "taken" is already in use '
        f"by {cid}. You have to remove that container to be able to reuse that name: that "
        "name is already in use\n")
    assert pyctr(address, "unpause", "taken").stderr == \
        'Error: "taken" is not paused, can\'t unpause: container state improper\n'
    killed = pyctr(address, "kill", "taken")
    assert killed.stderr.startswith("Error: can only kill running containers. taken is in "
                                    "state created")
    attach = pyctr(address, "attach", "taken")
    assert attach.stderr == \
        "Error: you can only attach to running containers: container state improper\n"
    for argv, message in (
            (["bogusverb"], "Error: unrecognized command `pyctr bogusverb` (see `pyctr "
             "--help`)\n"),
            (["ps", "--bogus"], "Error: unknown flag: --bogus (see `pyctr ps --help`)\n"),
            (["run", "--tz", "UTC", "busybox"], "Error: --tz: pyctrd does not set a "
             "container's time zone; mount /etc/localtime with -v\n"),
            (["run", "--network", "container:x", "busybox"], "Error: --network container:ID:"
             " pyctrd cannot share another container's network namespace\n"),
            (["stop", "-t", "soon", "x"], 'Error: invalid argument "soon" for "-t, --time" '
             "flag\n"),
            (["ps", "--size"], "Error: --size: pyctrd does not measure containers' disk "
             "use\n"),
            (["start", "--sig-proxy=false", "taken"], "Error: --sig-proxy=false: pyctr always "
             "passes signals on to the container\n")):
        result = pyctr(address, *argv)
        assert (result.returncode, result.stderr) == (125, message), argv


def test_logs_windows_names_and_tail(address: str) -> None:
    ok(address, "run", "--name", "talk", "busybox", "sh", "-c",
       "echo one; echo two; sleep 1.2; echo three")
    assert ok(address, "logs", "--tail", "1", "talk") == "three\n"
    assert ok(address, "logs", "-n", "talk") == "talk one\ntalk two\ntalk three\n"
    stamps = [line.split(" ")[0] for line in lines(ok(address, "logs", "-t", "talk"))]
    assert len(stamps) == 3
    assert ok(address, "logs", "--since", stamps[2], "talk") == "three\n"
    assert ok(address, "logs", "--until", stamps[1], "talk") == "one\ntwo\n"
    # conmon stamps one read at a time: "two" may share "one"'s nanosecond
    assert ok(address, "logs", "--since", "10m", "--until", stamps[0], "talk") == \
        ("one\ntwo\n" if stamps[1] == stamps[0] else "one\n")
    assert ok(address, "logs", "--until", "10m", "talk") == ""
    assert ok(address, "logs", "--latest") == "one\ntwo\nthree\n"
    assert ok(address, "logs", "--since", "2000-01-01T00:00:00Z", "talk").count("\n") == 3
    bad = pyctr(address, "logs", "--since", "yesterday", "talk")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: invalid time 'yesterday'")


def _has_history(address: str) -> bool:
    probe = pyctr(address, "events", "--stream=false", "--since", "1s")
    return probe.returncode == 0


def test_events_filters_templates_and_history(address: str) -> None:
    from integration.cli_support import Events
    stream = Events(address, "--filter", "event=died", "--format",
                    "{{.Type}} {{.Status}} {{.Name}} {{.ContainerExitCode}}")
    try:
        assert pyctr(address, "run", "--name", "ev", "busybox", "sh", "-c", "exit 5") \
            .returncode == 5
        assert stream.read_until(lambda line: "ev" in line)[-1] == "container died ev 5"
    finally:
        assert stream.stop() == 0
    assert all(line.startswith("container died") for line in stream.lines)

    if not _has_history(address):  # the daemon has no GetEvents: refused, naming the flag
        refused = pyctr(address, "events", "--since", "5m", "--stream=false")
        assert refused.returncode == 125 and refused.stderr.startswith(
            "Error: --since: this pyctrd keeps no event history")
        return
    past = ok(address, "events", "--stream=false", "--since", "5m", "--filter",
              "container=ev", "--format", "{{.Status}}")
    assert lines(past)[0] == "create" and "died" in lines(past)
    as_json = [json.loads(line) for line in lines(ok(
        address, "events", "--stream=false", "--since", "5m", "--filter", "type=container",
        "--filter", "event=died", "--format", "json"))]
    assert any(e["Name"] == "ev" and e["ContainerExitCode"] == 5 for e in as_json)
    assert ok(address, "events", "--stream=false", "--until", "2000-01-01T00:00:00Z") == ""
    # --since with the stream: the past, then what happens
    following = Events(address, "--since", "5m", "--filter", "container=ev", "--format",
                       "{{.Status}}")
    try:
        assert following.read_until(lambda line: line == "died")[0] == "create"
        ok(address, "rm", "ev")
        assert following.read_until(lambda line: line == "remove")[-1] == "remove"
    finally:
        assert following.stop() == 0


# A script of common podman command lines, written from podman's man pages'
# examples, run unchanged by bash with `alias podman=pyctr`.
PODMAN_SCRIPT = r"""
set -e
shopt -s expand_aliases
alias podman="$PYCTR --address $ADDRESS"
podman images
podman images --format "{{.Repository}}:{{.Tag}}"
podman images --filter reference=busybox --noheading
podman image ls -q
podman run --rm busybox echo hello
podman run -d --name web -l app=web --restart=no busybox sleep 1000 >/dev/null
podman ps
podman ps -a --format "{{.ID}} {{.Names}} {{.Status}}"
podman ps --filter name=web --format "table {{.ID}}\t{{.Names}}"
podman ps -a --filter status=running -q >/dev/null
podman container ls --all --no-trunc >/dev/null
podman inspect web --format "{{.State.Status}}"
podman inspect --format "{{json .Config.Labels}}" web
podman container inspect -f "{{.ImageName}}" web
podman logs --tail 10 web
podman pause web
podman unpause web
podman kill --signal KILL web
podman wait web
podman start web
podman stop -t 0 web
podman restart -t 0 web
podman stop --all -t 0 >/dev/null
podman rm web
podman create --name once busybox true >/dev/null
podman container start once
podman wait once
podman rm -f once
podman info --format "{{.Host.Arch}}"
podman version --format "{{.Client.Version}}" >/dev/null
podman system df
podman rm -t 0 --all --force --ignore
podman stop --ignore nosuch
"""


def test_a_podman_script_runs_unchanged(address: str) -> None:
    commands = [line for line in PODMAN_SCRIPT.splitlines() if line.startswith("podman ")]
    assert len(commands) >= 30
    start = time.monotonic()
    result = subprocess.run(["bash", "-c", PODMAN_SCRIPT], capture_output=True, text=True,
                            timeout=120, env={**env(), "PYCTR": str(PYCTR),
                                              "ADDRESS": address})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "hello\n" in out and "running\n" in out and '{"app":"web"}\n' in out
    assert time.monotonic() - start < 120
