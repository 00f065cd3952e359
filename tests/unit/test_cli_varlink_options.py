"""run's flags as Varlink Create's CreateOptions: the daemon decodes them to the
very values the D-Bus a{sv} of the same flags decodes to (one encoding in
pyctrd.cli.options, two wire forms)."""

from __future__ import annotations

from typing import Any

from asyncvarlink.conversion import VarlinkType

from pyctrd.cli.options import create_options, varlink_create_options
from pyctrd.ops.options import OPTIONS, decode_dbus
from pyctrd.ops.optionstructs import CreateOptions, decode_varlink
from unit.test_cli_options import LATER_OPTIONS, _args

VARLINK_OPTIONS = VarlinkType.from_type_annotation(CreateOptions | None)
EVERY_FLAG = ["--name", "web", "-e", "A=1", "-e", "HOME", "-w", "/srv", "-u", "1000:1000",
              "--hostname", "box", "-l", "a=b", "-v", "/src:/dst:ro", "--memory", "512m",
              "--cpus", "0.5", "--pids-limit", "64", "--network", "host", "--read-only",
              "--stop-signal", "SIGINT", "--stop-timeout", "5", "-t", "-i",
              "--security-opt", "no-new-privileges", "--privileged", "--cap-add",
              "net_admin,SYS_TIME", "--cap-drop", "ALL", "--security-opt",
              "seccomp=unconfined", "--ulimit", "nofile=1024:2048", "--ulimit", "core=-1"]


def decoded_both_ways(*argv: str) -> tuple[dict[str, Any], dict[str, Any]]:
    args = _args(*argv, "busybox")
    environ = {"HOME": "/root"}
    over_dbus = decode_dbus({k: (v.signature, v.value)
                             for k, v in create_options(args, environ).items()})
    struct = varlink_create_options(args, environ)
    assert struct is not None
    return over_dbus, decode_varlink(VARLINK_OPTIONS.fromjson(struct))


def test_every_flag_decodes_alike_from_either_wire() -> None:
    later = [arg for key, (argv, _) in LATER_OPTIONS.items() if key in OPTIONS
             for arg in argv]
    over_dbus, over_varlink = decoded_both_ways(*EVERY_FLAG, *later)
    assert over_varlink == over_dbus
    assert len(over_dbus) >= 20  # the flags above did set options


def test_a_signal_number_travels_as_text() -> None:
    over_dbus, over_varlink = decoded_both_ways("--stop-signal", "9")
    assert over_dbus == {"stop_signal": 9} and over_varlink == {"stop_signal": "9"}


def test_no_flags_no_options() -> None:
    assert varlink_create_options(_args("busybox")) == {}
