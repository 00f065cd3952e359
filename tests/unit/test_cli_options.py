"""pyctr's flag parsing and formatting: create/run flags → CreateContainer options."""

import argparse

import pytest
from dbus_fast import Message, MessageType, Variant

from pyctrd.cli import detachkeys
from pyctrd.cli.commands.events import EventTranslator
from pyctrd.cli.errors import CliError, DaemonError, run_exit_status
from pyctrd.cli.format import container_status, human_duration, human_size, split_reference
from pyctrd.cli.logstream import overlap, parse_record
from pyctrd.cli.options import (
    FLAG_OPTIONS,
    UNLIMITED,
    container_command,
    create_options,
    parse_cpus,
    parse_entrypoint,
    parse_env,
    parse_labels,
    parse_memory,
    parse_ulimit,
    parse_volume,
)
from pyctrd.cli.parser import build_parser
from pyctrd.errors import AccessDenied, InvalidArgument, NoSuchImage, RuntimeFailed
from pyctrd.ops.options import OPTIONS, decode_dbus

MiB = 1 << 20
GiB = 1 << 30


@pytest.mark.parametrize(("text", "size"), [
    ("512m", 512 * MiB), ("512M", 512 * MiB), ("1g", GiB), ("1G", GiB), ("1gb", GiB),
    ("1GiB", GiB), ("1.5g", int(1.5 * GiB)), ("7340032", 7340032), ("8192k", 8 * MiB),
    ("100 m", 100 * MiB), ("1t", 1 << 40),
])
def test_memory_units_are_binary_as_podman_s(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "m", "-1m", "12x", "1mb2", "one", "1.2.3g"])
def test_memory_that_is_no_size_is_refused(text: str) -> None:
    with pytest.raises(CliError, match="invalid memory limit"):
        parse_memory(text)


def test_memory_below_podman_s_minimum_is_refused() -> None:
    with pytest.raises(CliError, match="minimum"):
        parse_memory("4m")


@pytest.mark.parametrize(("text", "cpus"), [("0.5", 0.5), ("2", 2.0), ("1.25", 1.25),
                                            ("0", 0.0)])
def test_cpus(text: str, cpus: float) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["-1", "half", "nan", "inf", ""])
def test_bad_cpus(text: str) -> None:
    with pytest.raises(CliError, match="--cpus"):
        parse_cpus(text)


def test_volume_forms() -> None:
    assert parse_volume("/src:/dst") == ("/src", "/dst", "")
    assert parse_volume("/src:/dst:ro") == ("/src", "/dst", "ro")
    assert parse_volume("/src:/dst:ro,nosuid") == ("/src", "/dst", "ro,nosuid")
    assert parse_volume("./data:/data", cwd="/home/me") == ("/home/me/data", "/data", "")
    assert parse_volume("../x:/x", cwd="/home/me") == ("/home/x", "/x", "")
    # a name (no "/" or "." first) is a named volume, made on first use
    assert parse_volume("named:/data:ro") == ("named", "/data", "ro")


@pytest.mark.parametrize(("spec", "why"), [
    ("/src", "HOST-PATH:CONTAINER-PATH"), ("-named:/data", "volume name"),
    ("/src:dst", "must be absolute"), ("/a:/b:ro:x", "HOST-PATH"), (":/b", "HOST-PATH"),
    ("/a:/b:ro,rw", "both ro and rw"),
])
def test_bad_volumes(spec: str, why: str) -> None:
    with pytest.raises(CliError, match=why):
        parse_volume(spec)


def test_env_copies_unset_values_from_ours() -> None:
    environ = {"HOME": "/root", "EMPTY": ""}
    assert parse_env(["A=1", "B=", "C=x=y", "HOME", "EMPTY", "UNSET"], environ) == \
        ["A=1", "B=", "C=x=y", "HOME=/root", "EMPTY="]
    with pytest.raises(CliError):
        parse_env(["=1"], environ)


def test_labels() -> None:
    assert parse_labels(["a=b", "c", "d=e=f"]) == {"a": "b", "c": "", "d": "e=f"}


def test_entrypoint_string_or_json() -> None:
    assert parse_entrypoint("/bin/sh") == ["/bin/sh"]
    assert parse_entrypoint('["/bin/sh", "-c"]') == ["/bin/sh", "-c"]
    assert parse_entrypoint("") == []
    with pytest.raises(CliError):
        parse_entrypoint('["/bin/sh", 1]')


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_command_follows_the_image_entrypoint_unless_replaced() -> None:
    assert container_command(_args("img"), ["/init"]) == []
    assert container_command(_args("img", "echo", "hi"), ["/init"]) == ["/init", "echo", "hi"]
    assert container_command(_args("--entrypoint", "/bin/sh", "img", "-c", "x"), ["/init"]) \
        == ["/bin/sh", "-c", "x"]
    assert container_command(_args("--entrypoint", "/bin/true", "img"), []) == ["/bin/true"]
    with pytest.raises(CliError):
        container_command(_args("--entrypoint", "", "img"), [])


def test_arguments_after_the_image_belong_to_the_command() -> None:
    args = _args("--name", "web", "busybox", "sh", "-c", "echo hi", "--name", "x")
    assert args.image == "busybox"
    assert args.command == ["sh", "-c", "echo hi", "--name", "x"]
    assert args.name == "web"


# flags for options other sessions add to the schema; each is sent when the schema has
# its option (and refused naming the flag until then): flag argv → expected option values
LATER_OPTIONS: dict[str, tuple[list[str], dict[str, object]]] = {
    "ports": (["-p", "127.0.0.1:8080:80/udp"], {"ports": [("127.0.0.1", 8080, 80, "udp")]}),
    "dns": (["--dns", "10.0.0.1"], {"dns": ["10.0.0.1"]}),
    "dns_search": (["--dns-search", "example.org"], {"dns_search": ["example.org"]}),
    "add_hosts": (["--add-host", "db:10.0.0.2"], {"add_hosts": [("db", "10.0.0.2")]}),
    "network_aliases": (["--network-alias", "web2"], {"network_aliases": ["web2"]}),
    "restart_policy": (["--restart", "on-failure:3"], {"restart_policy": "on-failure"}),
    "restart_retries": ([], {"restart_retries": 3}),
    "auto_remove": (["--rm", "-d"], {"auto_remove": True}),
    "health_cmd": (["--health-cmd", "true"], {"health_cmd": ["/bin/sh", "-c", "true"]}),
    "health_interval": (["--health-interval", "1m"], {"health_interval": 60}),
    "health_timeout": (["--health-timeout", "5s"], {"health_timeout": 5}),
    "health_retries": (["--health-retries", "2"], {"health_retries": 2}),
    "health_start_period": (["--health-start-period", "10"], {"health_start_period": 10}),
}


def test_every_flag_maps_to_an_option_the_daemon_accepts() -> None:
    later = [key for key in LATER_OPTIONS if key in OPTIONS]
    extra = [arg for key in later for arg in LATER_OPTIONS[key][0]]
    args = _args("--name", "web", "-e", "A=1", "-e", "HOME", "-w", "/srv", "-u", "1000:1000",
                 "--hostname", "box", "-l", "a=b", "-v", "/src:/dst:ro", "--memory", "512m",
                 "--cpus", "0.5", "--pids-limit", "64", "--network", "host", "--read-only",
                 "--stop-signal", "SIGINT", "--stop-timeout", "5", "-t", "-i",
                 "--security-opt", "no-new-privileges", "--privileged", "--cap-add",
                 "net_admin,SYS_TIME", "--cap-add", "CAP_MKNOD", "--cap-drop", "ALL",
                 "--security-opt", "seccomp=unconfined", "--ulimit", "nofile=1024:2048",
                 "--ulimit", "core=-1", *extra, "busybox")
    options = create_options(args, environ={"HOME": "/root"})
    expected: dict[str, object] = {
        "name": "web", "env": ["A=1", "HOME=/root"], "workdir": "/srv", "user": "1000:1000",
        "hostname": "box", "labels": {"a": "b"}, "mounts": [("/src", "/dst", "ro")],
        "memory_limit": 512 * MiB, "cpu_quota": 0.5, "pids_limit": 64, "network": "host",
        "read_only": True, "stop_signal": "SIGINT", "stop_timeout": 5, "terminal": True,
        "stdin": True, "no_new_privileges": True, "privileged": True,
        "cap_add": ["net_admin", "SYS_TIME", "CAP_MKNOD"], "cap_drop": ["ALL"],
        "seccomp": "unconfined", "ulimits": [("nofile", 1024, 2048), ("core", UNLIMITED,
                                                                      UNLIMITED)],
    }
    for key in later:
        expected.update(LATER_OPTIONS[key][1])
    assert decode_dbus({k: (v.signature, v.value) for k, v in options.items()}) == expected
    # every option but these has a flag; a new option gets one or joins the list
    assert set(options) == set(OPTIONS) - {"annotations"}
    assert set(options) == set(FLAG_OPTIONS.values()) & set(OPTIONS)


def test_flags_for_options_the_schema_lacks_are_refused_naming_the_flag() -> None:
    for key, (argv, _) in LATER_OPTIONS.items():
        if key in OPTIONS or not argv:
            continue
        with pytest.raises(CliError, match=f"^{argv[0]}|^--"):
            create_options(_args(*argv, "busybox"))


def test_flags_map_only_to_options_the_schema_declares() -> None:
    unknown = {dest: key for dest, key in FLAG_OPTIONS.items()
               if key not in OPTIONS and key not in LATER_OPTIONS}
    assert not unknown, f"flags mapped to options pyctrd.ops.options does not declare: {unknown}"
    given = vars(_args("busybox"))
    # "security-opt <name>" keys come from the one --security-opt flag
    flags = {key.split(" ")[0].replace("-", "_") for key in FLAG_OPTIONS}
    assert flags <= set(given), "FLAG_OPTIONS names a flag `run` does not have"


@pytest.mark.parametrize("given,expected", [
    (["no-new-privileges"], True), (["no-new-privileges=true"], True),
    (["no-new-privileges=false"], False)])
def test_security_opt_no_new_privileges(given: list[str], expected: bool) -> None:
    args = _args(*[a for g in given for a in ("--security-opt", g)], "busybox")
    assert create_options(args)["no_new_privileges"].value is expected


@pytest.mark.parametrize("given,expected", [(["seccomp=unconfined"], "unconfined"),
                                            (["seccomp=default"], "default")])
def test_security_opt_seccomp(given: list[str], expected: str) -> None:
    args = _args(*[a for g in given for a in ("--security-opt", g)], "busybox")
    assert create_options(args)["seccomp"].value == expected


@pytest.mark.parametrize("given,expected", [
    ("nofile=1024:2048", ("nofile", 1024, 2048)), ("nofile=10", ("nofile", 10, 10)),
    ("core=unlimited", ("core", UNLIMITED, UNLIMITED)), ("nproc=5:-1", ("nproc", 5, UNLIMITED))])
def test_ulimit(given: str, expected: tuple[str, int, int]) -> None:
    assert parse_ulimit(given) == expected


@pytest.mark.parametrize("bad", ["nofile", "nofile=", "=1", "nofile=a:b", "nofile=1:x"])
def test_ulimit_refuses_malformed(bad: str) -> None:
    with pytest.raises(CliError, match="ulimit"):
        parse_ulimit(bad)


def test_ulimit_soft_above_hard_is_refused_before_sending() -> None:
    with pytest.raises(CliError, match="soft limit 2048 is above the hard limit 1024"):
        create_options(_args("--ulimit", "nofile=2048:1024", "busybox"))


@pytest.mark.parametrize("bad", ["seccomp=nosuch", "seccomp=/etc/profile.json",
                                 "no-new-privileges=yes", "label=x"])
def test_security_opt_refuses_what_it_does_not_know(bad: str) -> None:
    with pytest.raises(CliError, match="security-opt"):
        create_options(_args("--security-opt", bad, "busybox"))


def test_a_flag_for_an_undeclared_option_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FLAG_OPTIONS, "name", "no_such_option")
    with pytest.raises(InvalidArgument, match="unknown option 'no_such_option'"):
        create_options(_args("--name", "web", "busybox"))


def test_values_are_checked_by_the_schema_before_sending() -> None:
    with pytest.raises(CliError, match="stop_timeout"):
        create_options(_args("--stop-timeout", str(1 << 32), "busybox"))


def test_defaults_send_no_options() -> None:
    assert create_options(_args("busybox")) == {}


def test_numeric_stop_signal_and_unlimited_pids() -> None:
    options = create_options(_args("--stop-signal", "15", "--pids-limit", "-1", "busybox"))
    assert options["stop_signal"] == Variant("u", 15)
    assert options["pids_limit"] == Variant("t", 0)


def test_human_words() -> None:
    assert human_duration(0.3) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(59) == "59 seconds"
    assert human_duration(90) == "About a minute"
    assert human_duration(600) == "10 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(5 * 86400) == "5 days"
    assert human_size(999) == "999 B"
    assert human_size(1982481) == "1.98 MB"
    assert human_size(2_500_000_000) == "2.5 GB"
    assert split_reference("busybox:1.36") == ("busybox", "1.36")
    assert split_reference("localhost:5000/app") == ("localhost:5000/app", "")
    assert split_reference("busybox") == ("busybox", "")


def test_status_column() -> None:
    now = 1000.0
    assert container_status({"State": "running", "StartedTimestamp": 990_000_000}, now) == \
        "Up 10 seconds"
    assert container_status({"State": "running", "StartedTimestamp": 990_000_000,
                             "Health": "healthy"}, now) == "Up 10 seconds (healthy)"
    assert container_status({"State": "exited", "ExitCode": 3,
                             "FinishedTimestamp": 940_000_000}, now) == \
        "Exited (3) About a minute ago"
    assert container_status({"State": "created"}, now) == "Created"


def test_detach_keys() -> None:
    assert detachkeys.parse("") == b"\x10\x11"
    assert detachkeys.parse("ctrl-a,x,ctrl-@") == b"\x01x\x00"
    with pytest.raises(CliError):
        detachkeys.parse("ctrl-1")
    sent = detachkeys.SentTail(b"\x10\x11")
    sent.add(b"ls\r\x10")
    assert not sent.detached
    sent.add(b"\x11")
    assert sent.detached


def test_log_records_and_replay_overlap() -> None:
    assert parse_record(b"2024-01-01T00:00:00Z stderr a b c\n") == \
        (b"2024-01-01T00:00:00Z", "stderr", b"a b c")
    assert parse_record(b"2024-01-01T00:00:00Z stdout \n")[2] == b""
    assert overlap(b"hello\r\n/ # ", b"/ # ls") == 4
    assert overlap(b"abc", b"xyz") == 0


def test_runtime_failures_map_to_podman_s_statuses() -> None:
    failed = "org.pyctrd1.Error.RuntimeFailed"
    assert run_exit_status(DaemonError(failed, 'exec: "x": executable file not found')) == 127
    assert run_exit_status(DaemonError(failed, 'exec: "/etc": permission denied')) == 126
    assert run_exit_status(DaemonError(failed, "conmon died")) == 125
    assert run_exit_status(DaemonError("org.pyctrd1.Error.NoSuchImage", "")) == 125


def test_error_replies_map_back_to_the_catalogue() -> None:
    missing = DaemonError("org.pyctrd1.Error.NoSuchImage", "no image busybox")
    assert missing.is_a(NoSuchImage) and not missing.is_a(RuntimeFailed)
    assert missing.short_name == "NoSuchImage" and "pyctr images" in missing.message
    denied = DaemonError("org.freedesktop.DBus.Error.AccessDenied", "polkit said no")
    assert denied.is_a(AccessDenied) and denied.short_name == "AccessDenied"
    assert denied.message == "polkit said no"
    # a name outside the catalogue is the bus's own, whatever its last part says
    foreign = DaemonError("org.example.Error.NoSuchImage", "x")
    assert foreign.kind is None and not foreign.is_a(NoSuchImage)
    assert foreign.short_name == "org.example.Error.NoSuchImage"
    gone = DaemonError("org.freedesktop.DBus.Error.ServiceUnknown", "")
    assert gone.kind is None and "not running" in gone.message


def _signal(interface: str, member: str, signature: str, body: list,
            path: str = "/org/pyctrd1") -> Message:
    return Message(message_type=MessageType.SIGNAL, path=path, interface=interface,
                   member=member, signature=signature, body=body)


def test_events_name_each_change_once() -> None:
    path = "/org/pyctrd1/container/" + "a" * 64
    props = {"Name": Variant("s", "web"), "Image": Variant("s", "busybox"),
             "State": Variant("s", "configured")}
    t = EventTranslator()
    om, mgr, pr = ("org.freedesktop.DBus.ObjectManager", "org.pyctrd1.Manager",
                   "org.freedesktop.DBus.Properties")
    added = t.translate(_signal(om, "InterfacesAdded", "oa{sa{sv}}",
                                [path, {"org.pyctrd1.Container": props}]))
    assert added is not None and (added.status, added.name) == ("create", "web")
    assert t.translate(_signal(mgr, "ContainerAdded", "so", ["a" * 64, path])) is None

    def change(**values: Variant):  # type: ignore[no-untyped-def]
        return t.translate(_signal(pr, "PropertiesChanged", "sa{sv}as",
                                   ["org.pyctrd1.Container", values, []], path))

    assert change(State=Variant("s", "running"), PID=Variant("i", 7)).status == "start"
    assert change(PID=Variant("i", 8)) is None
    assert change(State=Variant("s", "paused")).status == "pause"
    assert change(State=Variant("s", "running")).status == "unpause"
    died = change(State=Variant("s", "exited"), ExitCode=Variant("i", 3))
    assert died.status == "died" and '"ContainerExitCode": 3' in died.json()
    assert change(Mounted=Variant("b", False)).status == "unmount"
    removed = t.translate(_signal(mgr, "ContainerRemoved", "so", ["a" * 64, path]))
    assert removed is not None and removed.status == "remove" and "name=web" in removed.text()
    assert t.translate(_signal(om, "InterfacesRemoved", "oas",
                               [path, ["org.pyctrd1.Container"]])) is None
