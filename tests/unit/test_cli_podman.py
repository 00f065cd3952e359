"""pyctr's podman flags, filters, reports and messages, without a daemon: each
verb's flags parsed with podman's meaning (from podman 4's man pages), the
flags pyctr refuses, --filter, the fields templates see, and podman's words."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyctrd.cli import flags
from pyctrd.cli.errors import CliError, DaemonError, about
from pyctrd.cli.filters import (
    event_filter,
    filter_containers,
    filter_images,
    parse_duration,
    parse_time,
)
from pyctrd.cli.gotemplate import render
from pyctrd.cli.options import create_options, parse_memory, parse_publish, parse_restart
from pyctrd.cli.parser import build_parser
from pyctrd.cli.reports import (
    IMAGES_DEFAULT,
    IMAGES_HEADERS,
    PS_DEFAULT,
    PS_HEADERS,
    container_inspect,
    image_item,
    ports_text,
    ps_item,
)

REPO = Path(__file__).resolve().parent.parent.parent
NOW = 1_700_000_000.0
US = 1_000_000


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def refused(*argv: str) -> str:
    """pyctr's one line for a usage error (run in a child: argparse exits)."""
    out = subprocess.run([sys.executable, "-c", "import sys; from pyctrd.cli.main import main;"
                          " main(sys.argv[1:])", *argv], capture_output=True, text=True,
                         timeout=30, cwd=REPO)
    assert out.returncode == 125 and out.stdout == "", out
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# -- flags with podman's meaning (podman-<verb>(1) OPTIONS)


@pytest.mark.parametrize(("argv", "expected"), [
    (["ps", "-a", "-q", "--no-trunc"], {"all": True, "quiet": True, "no_trunc": True}),
    (["ps", "--format", "{{.ID}}", "-f", "status=running", "-f", "name=x"],
     {"format": "{{.ID}}", "filter": ["status=running", "name=x"]}),
    (["ps", "--noheading", "-n", "3", "-l", "--sort", "names"],
     {"noheading": True, "last": 3, "latest": True, "sort": "names"}),
    (["images", "-n", "-a", "--digests", "--filter", "dangling=true"],
     {"noheading": True, "all": True, "digests": True, "filter": ["dangling=true"]}),
    (["rm", "-t", "0", "--all", "--force", "--ignore", "-v"],
     {"time": 0, "all": True, "force": True, "ignore": True, "volumes": True}),
    (["rm", "-l", "--cidfile", "/a", "--cidfile", "/b"],
     {"latest": True, "cidfile": ["/a", "/b"]}),
    (["stop", "--all", "-i", "-t", "5"], {"all": True, "ignore": True, "time": 5}),
    (["start", "--all", "-a", "-i"], {"all": True, "attach": True, "interactive": True}),
    (["restart", "--all", "--running"], {"all": True, "running": True}),
    (["kill", "-a", "-s", "HUP"], {"all": True, "signal": "HUP"}),
    (["pause", "--all"], {"all": True}), (["unpause", "-l"], {"latest": True}),
    (["wait", "--condition", "running", "-i", "1s", "--ignore", "x"],
     {"condition": ["running"], "interval": "1s", "ignore": True, "containers": ["x"]}),
    (["logs", "-n", "--since", "10m", "--until", "1m", "--tail", "5", "-t", "-f", "x"],
     {"names": True, "since": "10m", "until": "1m", "tail": 5, "timestamps": True,
      "follow": True}),
    (["inspect", "-f", "{{.Id}}", "-t", "image", "x"],
     {"format": "{{.Id}}", "type": "image", "names": ["x"]}),
    (["events", "--stream=false", "--since", "5m", "--filter", "event=die", "--format",
      "json"], {"stream": "false", "since": "5m", "filter": ["event=die"], "format": "json"}),
    (["mount", "--all", "--notruncate", "--format", "json"],
     {"all": True, "no_trunc": True, "format": "json"}),
    (["unmount", "-a", "-f"], {"all": True, "force": True}),
    (["attach", "-l"], {"latest": True, "container": None}),
    (["rmi", "-a", "-f", "-i"], {"all": True, "force": True, "ignore": True}),
    (["run", "-d", "--rm", "--cidfile", "/c", "-p", "8080:80", "--restart", "always",
      "--dns", "1.1.1.1", "--add-host", "db:10.0.0.2", "busybox"],
     {"detach": True, "rm": True, "cidfile": "/c", "publish": ["8080:80"],
      "restart": "always", "dns": ["1.1.1.1"], "add_host": ["db:10.0.0.2"]}),
    (["--noout", "--log-level", "debug", "ps"], {"noout": True, "log_level": "debug"}),
])
def test_flags_parse_with_podman_s_meaning(argv: list[str], expected: dict[str, Any]) -> None:
    args = vars(parse(*argv))
    assert {key: args[key] for key in expected} == expected


@pytest.mark.parametrize(("argv", "handler", "extra"), [
    (["container", "ls", "-a"], "info:cmd_ps", {"all": True}),
    (["container", "list"], "info:cmd_ps", {}),
    (["container", "ps"], "info:cmd_ps", {}),
    (["container", "rm", "-f", "x"], "lifecycle:cmd_rm", {"force": True}),
    (["container", "run", "--rm", "busybox"], "run:cmd_run", {"rm": True}),
    (["container", "stop", "--all"], "lifecycle:cmd_stop", {"all": True}),
    (["container", "inspect", "x"], "info:cmd_inspect", {"type": "container"}),
    (["container", "exists", "x"], "system:cmd_container_exists", {}),
    (["image", "ls", "-q"], "images:cmd_images", {"quiet": True}),
    (["image", "rm", "x"], "images:cmd_rmi", {}),
    (["image", "inspect", "x"], "info:cmd_inspect", {"type": "image"}),
    (["image", "exists", "x"], "system:cmd_image_exists", {}),
    (["system", "info"], "system:cmd_info", {}),
    (["system", "df"], "system:cmd_df", {}),
    (["info", "-f", "json"], "system:cmd_info", {"format": "json"}),
    (["version"], "system:cmd_version", {}),
])
def test_command_groups_as_podman_s(argv: list[str], handler: str,
                                    extra: dict[str, Any]) -> None:
    args = vars(parse(*argv))
    assert args["handler"] == handler
    assert {key: args[key] for key in extra} == extra


def test_every_refused_flag_says_why_in_one_line() -> None:
    build_parser()
    assert flags.REFUSED, "pyctr refuses podman flags it cannot honour"
    run = [(names, reason) for prog, found in flags.REFUSED.items()
           if prog.endswith(" run") for names, reason in found]
    assert len(run) >= 50
    for names, reason in run:
        assert reason and "\n" not in reason, names
    # one through the real entry point
    assert refused("run", "--pod", "p", "busybox") == "Error: --pod: pyctrd has no pods\n"
    assert refused("run", "--init", "busybox").startswith("Error: --init: ")
    assert refused("ps", "--watch", "1") == \
        "Error: --watch: use `pyctr events` to follow changes\n"
    assert refused("--remote", "ps").startswith("Error: --remote: ")


@pytest.mark.parametrize(("argv", "message"), [
    (["bogusverb"], "Error: unrecognized command `pyctr bogusverb` (see `pyctr --help`)\n"),
    ([], "Error: missing command (see `pyctr --help`)\n"),
    (["ps", "--bogus"], "Error: unknown flag: --bogus (see `pyctr ps --help`)\n"),
    (["stop", "-t", "x", "a"], 'Error: invalid argument "x" for "-t, --time" flag\n'),
    (["ps", "--format"], "Error: flag needs an argument: --format\n"),
    (["inspect", "--type", "pod", "x"], None),
])
def test_usage_errors_are_one_line_and_125(argv: list[str], message: str | None) -> None:
    line = refused(*argv)
    if message is not None:
        assert line == message


def test_memory_zero_is_no_limit_as_podman_s() -> None:
    assert parse_memory("0") == 0
    options = create_options(parse("run", "--memory=0", "busybox"))
    assert options["memory_limit"].value == 0


def test_publish_and_restart_values() -> None:
    assert parse_publish("8080:80") == [("", 8080, 80, "tcp")]
    assert parse_publish("[::1]:53:53/udp") == [("::1", 53, 53, "udp")]
    assert parse_publish("9000-9001:80-81") == [("", 9000, 80, "tcp"), ("", 9001, 81, "tcp")]
    for bad in ("x:80", "80/sctp", "8080:0", "1-3:1-2"):
        with pytest.raises(CliError, match="--publish"):
            parse_publish(bad)
    assert parse_restart("on-failure:3") == ("on-failure", 3)
    assert parse_restart("always") == ("always", None)
    with pytest.raises(CliError, match="--restart"):
        parse_restart("sometimes")


def test_network_container_mode_is_refused_naming_the_flag() -> None:
    with pytest.raises(CliError, match=r"^--network container:ID: "):
        create_options(parse("run", "--network", "container:abc", "busybox"))


# -- --filter


def _c(name: str, state: str, created: int, **more: Any) -> dict[str, Any]:
    return {"Id": f"{name:0<8}".encode().hex()[:64].ljust(64, "0"), "Name": name,
            "State": state, "CreatedTimestamp": created * US, "Image": "busybox",
            "ImageId": "abc123" + "0" * 58, **more}


CONTAINERS = [
    _c("web", "running", 100, Labels={"app": "shop", "tier": "front"}),
    _c("db", "exited", 200, ExitCode=3, Labels={"app": "shop"}),
    _c("job", "created", 300, Image="docker.io/library/alpine:3"),
]


@pytest.mark.parametrize(("filters", "names"), [
    (["status=running"], ["web"]),
    (["status=running", "status=exited"], ["web", "db"]),  # one key: alternatives
    (["label=app=shop", "label=tier"], ["web"]),  # labels: all must match
    (["label!=tier"], ["db", "job"]),
    (["label=app=sh*"], ["web", "db"]),
    (["exited=3"], ["db"]),
    (["name=^w"], ["web"]),
    (["name=o"], ["job"]),
    (["ancestor=busybox"], ["web", "db"]),
    (["ancestor=alpine"], ["job"]),
    (["ancestor=alpine:3"], ["job"]),
    (["ancestor=abc123"], ["web", "db", "job"]),
    (["since=web"], ["db", "job"]),
    (["before=job", "status=exited"], ["db"]),
    (["until=250"], ["web", "db"]),
])
def test_container_filters(filters: list[str], names: list[str]) -> None:
    found = filter_containers(CONTAINERS, filters, now=NOW)
    assert [c["Name"] for c in found] == names


@pytest.mark.parametrize(("filters", "message"), [
    (["color=red"], 'invalid filter "color"'),
    (["status"], 'invalid filter "status": give --filter KEY=VALUE'),
    (["status=sleeping"], "sleeping is not a valid status"),
    (["pod=x"], "--filter pod: pyctrd has no pods"),
    (["since=nosuch"], 'no container with name or ID "nosuch" found'),
])
def test_container_filter_errors(filters: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(")):
        filter_containers(CONTAINERS, filters, now=NOW)


def test_image_filters() -> None:
    images = [{"Id": "a" * 64, "Reference": "busybox", "CreatedTimestamp": 100 * US},
              {"Id": "b" * 64, "Reference": "quay.io/x/alpine:3", "CreatedTimestamp": 200 * US},
              {"Id": "c" * 64, "Reference": "", "CreatedTimestamp": 300 * US}]
    used = {"a" * 64}

    def ids(*filters: str) -> list[str]:
        return [i["Id"][0] for i in filter_images(images, list(filters), used, now=NOW)]

    assert ids("reference=busybox") == ["a"]
    assert ids("reference=alpine") == ["b"]
    assert ids("reference=*alpine*") == ["b"]
    assert ids("dangling=true") == ["c"]
    assert ids("dangling=false") == ["a", "b"]
    assert ids("since=busybox") == ["b", "c"]
    assert ids("before=quay.io/x/alpine:3") == ["a"]
    assert ids("containers=true") == ["a"]
    assert ids("id=bbb") == ["b"]
    with pytest.raises(CliError, match="intermediate"):
        ids("intermediate=true")


def test_event_filters() -> None:
    died = {"Type": "container", "Status": "died", "ID": "f" * 64, "Name": "web",
            "Image": "busybox", "Attributes": {}}
    pulled = {"Type": "image", "Status": "pull", "ID": "e" * 64, "Name": "alpine",
              "Image": "alpine", "Attributes": {}}
    assert event_filter(["event=died"])(died) and not event_filter(["event=died"])(pulled)
    assert event_filter(["container=web"])(died)
    assert event_filter(["container=fff"])(died)
    assert event_filter(["type=image", "type=container"])(pulled)
    assert event_filter(["image=busybox"])(died) and not event_filter(["image=busybox"])(pulled)
    with pytest.raises(CliError, match="--filter pod"):
        event_filter(["pod=x"])


def test_times_and_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25
    assert parse_duration("soon") is None
    assert parse_time("10m", now=NOW) == NOW - 600
    assert parse_time("1700000000", now=NOW) == 1_700_000_000
    assert parse_time("2023-11-14T22:13:20Z", now=NOW) == 1_700_000_000
    with pytest.raises(CliError, match="invalid time"):
        parse_time("yesterday")


# -- what templates see


def test_ps_fields_and_default_table() -> None:
    c = _c("web", "running", 100, Command=["sh", "-c", "sleep 1000; echo done"],
           StartedTimestamp=int((NOW - 120) * US), PID=42,
           Ports=[("", 8080, 80, "tcp")], Labels={"app": "shop"})
    item = ps_item(c, now=NOW)
    assert item["ID"] == c["Id"][:12] and item["Names"] == "web"
    assert item["Command"] == "sh -c sleep 1000;..."  # 17 characters and "...", as podman
    assert item["Status"] == item["State"] == "Up 2 minutes"
    assert item["Ports"] == "0.0.0.0:8080->80/tcp"
    assert render('{{.Label "app"}} {{.Pid}} {{.Image}}', [item]) == "shop 42 busybox\n"
    table = render(PS_DEFAULT, [item], PS_HEADERS).splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert table[1].startswith(c["Id"][:12]) and table[1].endswith("web")
    assert ps_item(c, no_trunc=True, now=NOW)["ID"] == c["Id"]
    assert ports_text([("127.0.0.1", 53, 53, "udp")]) == "127.0.0.1:53->53/udp"


def test_image_fields_and_default_table() -> None:
    i = {"Id": "d" * 64, "Reference": "docker.io/library/busybox:1.36", "Size": 4_400_000,
         "CreatedTimestamp": int((NOW - 3 * 86400) * US), "Digest": "sha256:" + "e" * 64}
    item = image_item(i, "docker.io/library/busybox", "1.36", now=NOW)
    assert (item["Repository"], item["Tag"], item["ID"]) == (
        "docker.io/library/busybox", "1.36", "d" * 12)
    assert item["Size"] == "4.4 MB" and item["Created"] == "3 days ago"
    table = render(IMAGES_DEFAULT, [item], IMAGES_HEADERS).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]


def test_inspect_gains_podman_s_implied_fields() -> None:
    data = container_inspect({"LogPath": "/x/ctr.log", "ImageName": "busybox",
                              "HostConfig": {}, "Config": {"Labels": {"a": "b"}}})
    assert data["HostConfig"]["LogConfig"] == {"Type": "k8s-file", "Path": "/x/ctr.log"}
    assert data["Config"]["Image"] == "busybox"
    assert render("{{.Config.Labels.nosuch}}", [data]) == "<no value>\n"


# -- podman's messages


def _reply(kind: str, text: str = "") -> DaemonError:
    return DaemonError(f"org.pyctrd1.Error.{kind}", text)


def test_podman_s_words_for_common_failures() -> None:
    assert about("web", _reply("NoSuchContainer"), "stop") == \
        'no container with name or ID "web" found: no such container'
    assert about("alpine", _reply("NoSuchImage"), "rmi") == "alpine: image not known"
    state = _reply("InvalidState", "cannot pause container web: it is exited; pause needs")
    assert about("web", state, "pause") == \
        '"web" is not running, can\'t pause: container state improper'
    assert about("web", state, "kill") == \
        "can only kill running containers. web is in state exited: container state improper"
    assert about("web", _reply("InvalidState", "... it is running; ..."), "rm") == (
        "cannot remove container web as it is running - running or paused containers "
        "cannot be removed without force: container state improper")
    assert about("web", _reply("Exists", f"the name 'web' is already in use by container "
                                         f"{'a' * 64}"), "create").startswith(
        f'creating container storage: the container name "web" is already in use by '
        f"{'a' * 64}.")
    assert about("x", CliError("whole line", whole=True)) == "whole line"


def test_log_windows_keep_every_nanosecond() -> None:
    from pyctrd.cli.logstream import in_window, rfc3339_ns
    one = rfc3339_ns("2024-01-02T03:04:05.000000001Z")
    assert one == 1_704_164_645_000_000_001
    assert rfc3339_ns("2024-01-02T04:04:05.5+01:00") == 1_704_164_645_500_000_000
    assert rfc3339_ns("soon") is None
    stamp = b"2024-01-02T03:04:05.000000002Z"
    assert not in_window(stamp, None, one) and in_window(stamp, one, None)
    assert in_window(b"unreadable", one, one)  # never hide what cannot be dated


def test_targets_rules_and_removal_statuses() -> None:
    from pyctrd.cli.commands import check_targets, removal_status
    check_targets(argparse.Namespace(all=True, latest=False, cidfile=[]), [])
    check_targets(argparse.Namespace(all=False, latest=False, cidfile=["/f"]), ["x"])
    for args, names, message in (
            (argparse.Namespace(all=True, latest=False, cidfile=[]), ["x"],
             "--all and containers cannot be used together"),
            (argparse.Namespace(all=True, latest=True, cidfile=[]), [],
             "--all and --latest cannot be used together"),
            (argparse.Namespace(all=False, latest=False, cidfile=[]), [],
             "you must provide at least one name or id")):
        with pytest.raises(CliError, match=message):
            check_targets(args, names)
    assert removal_status(_reply("NoSuchContainer")) == 1
    assert removal_status(_reply("InvalidState")) == 2
    assert removal_status(_reply("InUse")) == 2
    assert removal_status(_reply("Failed")) == 125


def test_mount_log_driver_and_replace_flags() -> None:
    from pyctrd.cli.options import parse_mount
    assert parse_mount("type=bind,source=/a,target=/b,readonly") == ("/a", "/b", "ro")
    assert parse_mount("type=bind,src=/a,dst=/b,bind-propagation=rprivate") == ("/a", "/b", "")
    with pytest.raises(CliError, match="--mount type=tmpfs"):
        parse_mount("type=tmpfs,target=/t")
    with pytest.raises(CliError, match="source=HOST-PATH"):
        parse_mount("type=bind,target=/t")
    options = create_options(parse("run", "--mount", "type=bind,src=/a,dst=/b", "-v", "/c:/d",
                                   "--log-driver", "k8s-file", "busybox"))
    assert options["mounts"].value == [["/c", "/d", ""], ["/a", "/b", ""]]
    with pytest.raises(CliError, match=r"^--log-driver journald: "):
        create_options(parse("run", "--log-driver", "journald", "busybox"))
    assert parse("run", "--replace", "--name", "x", "busybox").replace is True


def test_event_fields_as_podman_s() -> None:
    from pyctrd.cli.reports import event_item
    item = event_item("container", "died", "f" * 64, "web", "busybox", {"ExitCode": 3},
                      1_700_000_000_123_450_000)
    assert render("{{.Type}} {{.Status}} {{.Name}} {{.Image}} {{.ContainerExitCode}}",
                  [item]) == "container died web busybox 3\n"
    assert item["Time"].startswith("2023-11-1") and ".12345 " in item["Time"]
    assert render("{{.Attributes.ExitCode}} {{.Attributes.nosuch}}", [item]) == \
        "3 <no value>\n"
