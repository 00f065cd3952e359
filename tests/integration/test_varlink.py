"""io.pyctrd over Varlink, with the reference package's client as the peer.

The shared daemon runs with --bus session, so its socket is
<run root>/io.pyctrd, mode 0600, and no polkit is asked (the polkit tests
are in test_varlink_polkit.py). Calls go through `python -m varlink.cli`
(an independent implementation); fd passing, which that client lacks, and a
client that stops reading use a raw socket.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import queue
import socket
import stat
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import PYCTRD, REPO, Client, Daemon, container_id

PYTHON = str(PYCTRD.with_name("python"))
CONTAINER = "io.pyctrd.Container"
IMAGE = "io.pyctrd.Image"
CLI_TIMEOUT = 60.0


def socket_of(daemon: Daemon) -> Path:
    return daemon.run_root / "io.pyctrd"


# --------------------------------------------------------------------------
# clients


@dataclass
class Result:
    replies: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def reply(self) -> dict[str, Any]:
        assert self.error is None, self.error
        (only,) = self.replies
        return only

    def ok(self) -> bool:
        """A reply without values (the client prints nothing for those)."""
        assert self.error is None, self.error
        return self.replies in ([], [{}])

    def error_name(self) -> str:
        assert self.error is not None, f"expected an error, got {self.replies}"
        return str(self.error["error"]).rsplit(".", 1)[1]


def cli_argv(sock: Path, method: str, params: dict[str, Any] | None = None,
             more: bool = False) -> list[str]:
    return [PYTHON, "-u", "-m", "varlink.cli", "call", *(["--more"] if more else []),
            f"unix:{sock}/{method}", json.dumps(params or {})]


def parse_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects the client printed one after another (indented)."""
    decoder = json.JSONDecoder()
    found, pos = [], 0
    while (pos := _skip_space(text, pos)) < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        found.append(obj)
    return found


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def result_of(stdout: str, stderr: str) -> Result:
    result = Result(parse_objects(stdout))
    for line in stderr.splitlines():
        if line.startswith("{'error'"):  # the client prints the error dict's repr
            result.error = ast.literal_eval(line)
    return result


def cli(sock: Path, method: str, params: dict[str, Any] | None = None, more: bool = False,
        prefix: tuple[str, ...] = ()) -> Result:
    out = subprocess.run([*prefix, *cli_argv(sock, method, params, more)], capture_output=True,
                         text=True, timeout=CLI_TIMEOUT, cwd="/",
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    result = result_of(out.stdout, out.stderr)
    if result.error is None and out.returncode != 0:
        raise AssertionError(f"varlink.cli failed ({out.returncode}): {out.stderr}")
    return result


class CliStream:
    """A `more` call through varlink.cli whose replies are read as they come."""

    def __init__(self, sock: Path, method: str, params: dict[str, Any] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([*prefix, *cli_argv(sock, method, params, more=True)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd="/",
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        lines: list[str] = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.rstrip("\n") == "}":  # a top-level object ends unindented
                self.replies.put(json.loads("".join(lines)))
                lines = []
        self.replies.put(None)

    def next(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout} s") from None
        if reply is None:
            raise AssertionError(f"the stream ended: {self.stderr()}")
        return reply

    def until(self, predicate: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Replies up to and including the first one ``predicate`` accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            reply = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(reply)
            if predicate(reply):
                return seen

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class RawClient:
    """Varlink by hand: NUL-terminated JSON, descriptors as SCM_RIGHTS."""

    def __init__(self, sock: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(CLI_TIMEOUT)
        self.sock.connect(str(sock))
        self._buffer = b""

    def send(self, method: str, params: dict[str, Any], fds: list[int] | None = None,
             more: bool = False) -> None:
        message = {"method": method, "parameters": params}
        if more:
            message["more"] = True
        socket.send_fds(self.sock, [json.dumps(message).encode() + b"\0"], fds or [])

    def receive(self) -> dict[str, Any] | None:
        """The next message; None at EOF."""
        while b"\0" not in self._buffer:
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self._buffer += data
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def call(self, method: str, params: dict[str, Any],
             fds: list[int] | None = None) -> dict[str, Any]:
        self.send(method, params, fds)
        reply = self.receive()
        assert reply is not None, "the daemon hung up"
        return reply

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sock(daemon: Daemon) -> Iterator[Path]:
    """The shared daemon's socket; containers named vl-* are removed afterwards."""
    path = socket_of(daemon)
    yield path
    listed = cli(path, f"{CONTAINER}.List").reply["containers"]
    for info in listed:
        if info["name"].startswith("vl-"):
            cli(path, f"{CONTAINER}.Remove", {"name": info["id"], "force": True})


def create(sock: Path, name: str, command: list[str], **options: Any) -> str:
    options.setdefault("network", "none")  # fast: no netavark unless a test asks
    reply = cli(sock, f"{CONTAINER}.Create", {
        "image": "busybox", "command": command, "options": {"name": name, **options}}).reply
    assert reply["name"] == name
    return str(reply["id"])


# --------------------------------------------------------------------------
# the interface


def test_socket_is_private_on_a_session_daemon(sock: Path) -> None:
    st = sock.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()


def test_interface_files_equal_the_live_descriptions(sock: Path) -> None:
    info = cli(sock, "org.varlink.service.GetInfo").reply
    assert {CONTAINER, IMAGE, "io.pyctrd.Events", "org.varlink.service"} <= set(
        info["interfaces"])
    assert info["vendor"] == "pyctrd" and info["version"]
    for interface in (CONTAINER, IMAGE, "io.pyctrd.Events"):
        live = cli(sock, "org.varlink.service.GetInterfaceDescription",
                   {"interface": interface}).reply["description"]
        in_repo = (REPO / "varlink" / f"{interface}.varlink").read_text()
        assert live == in_repo, f"varlink/{interface}.varlink differs from the live service"
        # installed with the package, as the same text
        packaged = REPO / "pyctrd" / "varlink" / "interfaces" / f"{interface}.varlink"
        assert packaged.read_text() == in_repo


def test_container_info_carries_every_dbus_property() -> None:
    from pyctrd.ops.properties import CONTAINER_PROPERTIES, IMAGE_PROPERTIES
    from pyctrd.varlink.types import ContainerInfo, ImageInfo

    assert list(ContainerInfo.__dataclass_fields__) == [
        p.field for p in CONTAINER_PROPERTIES.values()]
    assert list(ImageInfo.__dataclass_fields__) == [p.field for p in IMAGE_PROPERTIES.values()]


def test_create_start_stop_remove_and_list(sock: Path) -> None:
    cid = create(sock, "vl-life", ["sleep", "1000"], labels={"tier": "test"}, stop_timeout=1)
    listed = {c["id"]: c for c in cli(sock, f"{CONTAINER}.List").reply["containers"]}
    assert listed[cid]["state"] == "configured"
    assert listed[cid]["labels"]["tier"] == "test"
    assert listed[cid]["command"] == ["sleep", "1000"]

    assert cli(sock, f"{CONTAINER}.Start", {"name": "vl-life"}).ok()
    running = cli(sock, f"{CONTAINER}.Get", {"name": "vl-life"}).reply["container"]
    assert running["state"] == "running" and running["pid"] > 0
    assert running["started_timestamp"] > running["created_timestamp"] > 0

    assert cli(sock, f"{CONTAINER}.Stop", {"name": "vl-life", "timeout": 0}).ok()
    stopped = cli(sock, f"{CONTAINER}.Get", {"name": cid}).reply["container"]
    assert stopped["state"] == "exited" and stopped["pid"] == 0
    assert stopped["exit_code"] == 137  # SIGKILL at once
    assert cli(sock, f"{CONTAINER}.Wait", {"name": cid}).reply == {"exit_code": 137}

    assert cli(sock, f"{CONTAINER}.Remove", {"name": cid}).ok()
    ids = [c["id"] for c in cli(sock, f"{CONTAINER}.List").reply["containers"]]
    assert cid not in ids


def test_get_by_name_id_and_prefix_and_more_streams_all(sock: Path) -> None:
    first = create(sock, "vl-get-1", ["true"])
    second = create(sock, "vl-get-2", ["true"])
    for key in ("vl-get-1", first, first[:12]):
        assert cli(sock, f"{CONTAINER}.Get", {"name": key}).reply["container"]["id"] == first

    streamed = cli(sock, f"{CONTAINER}.Get", more=True)
    assert streamed.error is None
    ids = [r["container"]["id"] for r in streamed.replies]
    assert {first, second} <= set(ids) and len(ids) == len(set(ids))
    listed = cli(sock, f"{CONTAINER}.List").reply["containers"]
    assert sorted(ids) == sorted(c["id"] for c in listed)


def test_errors_carry_names_and_parameters(sock: Path) -> None:
    missing = cli(sock, f"{CONTAINER}.Start", {"name": "vl-nosuch"})
    assert missing.error is not None
    assert missing.error["error"] == f"{CONTAINER}.NoSuchContainer"
    assert missing.error["parameters"]["name"] == "vl-nosuch"
    assert "vl-nosuch" in missing.error["parameters"]["message"]

    create(sock, "vl-err", ["sleep", "1000"])
    paused = cli(sock, f"{CONTAINER}.Unpause", {"name": "vl-err"})
    assert paused.error_name() == "InvalidState"
    assert paused.error["parameters"]["state"] == "configured"  # type: ignore[index]
    assert "paused" in paused.error["parameters"]["message"]  # type: ignore[index]

    bad_signal = cli(sock, f"{CONTAINER}.Kill", {"name": "vl-err", "signal": "SIGNOPE"})
    assert bad_signal.error_name() == "InvalidArgument"
    taken = cli(sock, f"{CONTAINER}.Create", {"image": "busybox", "command": ["true"],
                                               "options": {"name": "vl-err"}})
    assert taken.error_name() == "Exists"
    no_image = cli(sock, f"{CONTAINER}.Create", {"image": "vl-noimage", "command": []})
    assert no_image.error_name() == "NoSuchImage"
    assert no_image.error["parameters"]["reference"] == "vl-noimage"  # type: ignore[index]
    negative = cli(sock, f"{CONTAINER}.Stop", {"name": "vl-err", "timeout": -1})
    assert negative.error_name() in ("InvalidState", "InvalidArgument")
    # Typed parameters: an unknown option or a wrong type is Varlink's own error.
    unknown = cli(sock, f"{CONTAINER}.Create", {"image": "busybox", "command": [],
                                                 "options": {"colour": "red"}})
    assert unknown.error == {"error": "org.varlink.service.InvalidParameter",
                             "parameters": {"parameter": "options"}}
    assert cli(sock, f"{CONTAINER}.Watch").error_name() == "ExpectedMore"


def test_inspect_is_typed(sock: Path) -> None:
    cid = create(sock, "vl-inspect", ["sleep", "1000"], env=["GREETING=hi"],
                 labels={"a": "b"}, memory_limit=64 << 20, cpu_quota=0.5, hostname="vlhost",
                 network="none")
    before = cli(sock, f"{CONTAINER}.Inspect", {"name": cid}).reply["info"]
    assert before["oci_spec"] is None and before["state"]["status"] == "configured"
    cli(sock, f"{CONTAINER}.Start", {"name": cid})
    info = cli(sock, f"{CONTAINER}.Inspect", {"name": "vl-inspect"}).reply["info"]
    assert info["id"] == cid and info["name"] == "vl-inspect"
    assert info["path"] == "sleep" and info["args"] == ["1000"]
    assert info["state"]["status"] == "running" and info["state"]["running"] is True
    assert info["state"]["pid"] > 0 and info["state"]["conmon_pid"] > 0
    assert "GREETING=hi" in info["config"]["env"]
    assert info["config"]["labels"]["a"] == "b" and info["config"]["hostname"] == "vlhost"
    assert info["host_config"] == {"memory": 64 << 20, "cpus": 0.5, "pids_limit": 0,
                                   "network_mode": "none", "readonly_rootfs": False}
    assert info["graph_driver"]["name"] == "overlay"
    assert info["mounted"] is True and info["mountpoint"] == info["graph_driver"]["merged_dir"]
    assert info["oci_spec"]["process"]["args"] == ["sleep", "1000"]
    cli(sock, f"{CONTAINER}.Stop", {"name": cid, "timeout": 0})


def events_of(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["event"] for r in replies]


def test_watch_streams_state_changes_with_the_exit_code(sock: Path) -> None:
    watch = CliStream(sock, f"{CONTAINER}.Watch")
    try:
        assert watch.next()["event"]["kind"] == "ready"
        cid = create(sock, "vl-watch", ["sh", "-c", "sleep 0.2; exit 7"])
        cli(sock, f"{CONTAINER}.Start", {"name": cid})
        seen = events_of(watch.until(lambda r: r["event"]["container"]["state"] == "exited"))
        mine = [e for e in seen if e["id"] == cid]
        assert mine[0]["kind"] == "added" and mine[0]["container"]["name"] == "vl-watch"
        states = [e["container"]["state"] for e in mine if "state" in e["changed"]]
        assert states == ["created", "running", "exited"]
        exited = mine[-1]
        assert exited["container"]["exit_code"] == 7
        assert {"state", "exit_code", "pid", "finished_timestamp"} <= set(exited["changed"])

        cli(sock, f"{CONTAINER}.Remove", {"name": cid})
        removed = events_of(watch.until(lambda r: r["event"]["kind"] == "removed"))[-1]
        assert removed["id"] == cid and removed["container"]["name"] == "vl-watch"
        assert watch.proc.poll() is None  # still subscribed
    finally:
        watch.close()


def test_watch_with_existing_sends_a_snapshot_first(sock: Path) -> None:
    cid = create(sock, "vl-existing", ["true"])
    watch = CliStream(sock, f"{CONTAINER}.Watch", {"existing": True})
    try:
        events = events_of(watch.until(lambda r: r["event"]["kind"] == "ready"))
        assert {e["kind"] for e in events[:-1]} == {"existing"}
        assert cid in [e["id"] for e in events]
    finally:
        watch.close()


async def test_both_front_ends_see_each_others_changes(sock: Path, bus: Client) -> None:
    recorder = await bus.recorder()
    watch = CliStream(sock, f"{CONTAINER}.Watch")
    try:
        assert watch.next()["event"]["kind"] == "ready"
        # Varlink → D-Bus
        cid = create(sock, "vl-both", ["sleep", "1000"])
        path = f"/org/pyctrd1/container/{cid}"
        bus.created.append(path)
        cli(sock, f"{CONTAINER}.Start", {"name": cid})
        await recorder.wait_property(path, "State", "running")
        # D-Bus → Varlink
        await bus.ctr(path, "Pause")
        paused = events_of(watch.until(lambda r: r["event"]["container"]["state"] == "paused"))
        assert paused[-1]["id"] == container_id(path) and paused[-1]["changed"] == ["state"]
        await bus.ctr(path, "Stop", "u", [0])
    finally:
        watch.close()


def test_export_and_import_pass_descriptors(sock: Path, daemon: Daemon, busybox_tar: Path,
                                            tmp_path: Path) -> None:
    cid = create(sock, "vl-export", ["true"])
    client = RawClient(sock)
    try:
        out = tmp_path / "rootfs.tar"
        with open(out, "wb") as f:
            assert client.call(f"{CONTAINER}.Export", {"name": cid, "fd": 0},
                               [f.fileno()]).get("error") is None
        with tarfile.open(out) as tar:
            names = set(tar.getnames())
        assert {"bin/busybox", "etc/passwd"} <= {n.removeprefix("./") for n in names}

        with open(busybox_tar, "rb") as f:
            data = f.read() + b"\0" * 1024  # same tree, another file: another import
        read_end, write_end = os.pipe()
        writer = threading.Thread(target=_write_all, args=(write_end, data))
        writer.start()
        try:
            reply = client.call(f"{IMAGE}.Import", {"archive": 0, "reference": "vl-import"},
                                [read_end])
        finally:
            os.close(read_end)
            writer.join()
        assert reply["parameters"]["reference"] == "vl-import", reply
        image_id = reply["parameters"]["id"]
        got = cli(sock, f"{IMAGE}.Get", {"reference": "vl-import"}).reply["image"]
        assert got["id"] == image_id
        assert cli(sock, f"{IMAGE}.Remove", {"reference": "vl-import"}).ok()
        if image_id != daemon.image_id:  # identical content is the same image
            assert cli(sock, f"{IMAGE}.Get", {"reference": image_id}).error_name() == \
                "NoSuchImage"
    finally:
        client.close()


def test_image_remove_is_remove_image_naming_one_reference_untags(
        sock: Path, daemon: Daemon, busybox_tar: Path) -> None:
    client = RawClient(sock)
    try:
        with open(busybox_tar, "rb") as f:
            reply = client.call(f"{IMAGE}.Import", {"archive": 0, "reference": "vl-tag"},
                                [f.fileno()])
    finally:
        client.close()
    assert reply["parameters"]["id"] == daemon.image_id, reply  # the same content
    watch = CliStream(sock, f"{IMAGE}.Watch")
    try:
        assert watch.next()["event"]["kind"] == "ready"
        assert cli(sock, f"{IMAGE}.Remove", {"reference": "vl-tag"}).ok()
        changed = watch.next()["event"]
        assert changed["kind"] == "changed" and changed["changed"] == ["reference",
                                                                        "references"]
        assert changed["image"]["reference"] == "busybox"
    finally:
        watch.close()
    assert cli(sock, f"{IMAGE}.Get", {"reference": "vl-tag"}).error_name() == "NoSuchImage"
    assert cli(sock, f"{IMAGE}.Get", {"reference": "busybox"}).reply["image"]["id"] == \
        daemon.image_id


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError), io.FileIO(fd, "wb") as f:
        f.write(data)


def test_images_list_and_get(sock: Path, daemon: Daemon) -> None:
    images = cli(sock, f"{IMAGE}.List").reply["images"]
    busybox = next(i for i in images if i["id"] == daemon.image_id)
    assert busybox["reference"] == "busybox" and busybox["size"] > 0
    assert cli(sock, f"{IMAGE}.Get", {"reference": daemon.image_id[:12]}).reply["image"] \
        == busybox
    create(sock, "vl-user", ["true"])
    in_use = cli(sock, f"{IMAGE}.Remove", {"reference": "busybox"})
    assert in_use.error_name() == "InUse"


def test_a_watch_client_that_stops_reading_is_dropped_not_waited_for(
        sock: Path, daemon: Daemon) -> None:
    stalled = RawClient(sock)
    stalled.send(f"{CONTAINER}.Watch", {}, more=True)
    assert stalled.receive()["parameters"]["event"]["kind"] == "ready"  # type: ignore[index]
    healthy = CliStream(sock, f"{CONTAINER}.Watch")
    log_start = daemon.log_path.stat().st_size
    driver = RawClient(sock)
    try:
        assert healthy.next()["event"]["kind"] == "ready"
        overflowed = False
        deadline = time.monotonic() + 40
        cycles = 0
        while not overflowed and time.monotonic() < deadline:
            for _ in range(50):  # 2 events each: added, removed
                reply = driver.call(f"{CONTAINER}.Create", {
                    "image": "busybox", "command": ["true"],
                    "options": {"name": f"vl-churn-{cycles}"}})
                driver.call(f"{CONTAINER}.Remove", {"name": reply["parameters"]["id"]})
                cycles += 1
            # the daemon answers others at once meanwhile
            started = time.monotonic()
            assert "parameters" in driver.call(f"{CONTAINER}.List", {})
            assert time.monotonic() - started < 2.0
            with open(daemon.log_path, "rb") as log:
                log.seek(log_start)
                overflowed = b"fell 1024 events behind" in log.read()
        assert overflowed, f"no overflow after {cycles} create/remove cycles"

        # The stalled one, reading now: what fit in its socket, then Overflow, then EOF.
        messages = []
        while (message := stalled.receive()) is not None:
            messages.append(message)
        assert messages and messages[-1].get("error") == f"{CONTAINER}.Overflow", messages[-1:]
        assert all(m.get("continues") for m in messages[:-1])

        # The reader kept up: every event, in order, to the last removal.
        last = f"vl-churn-{cycles - 1}"
        events = events_of(healthy.until(
            lambda r: r["event"]["kind"] == "removed" and r["event"]["container"]["name"] == last,
            timeout=30))
        names = [e["container"]["name"] for e in events if e["kind"] == "added"]
        assert names == [f"vl-churn-{i}" for i in range(cycles)]
    finally:
        for client in (stalled, driver):
            client.close()
        healthy.close()


# --------------------------------------------------------------------------
# the pieces, without a daemon


def test_every_method_is_guarded_or_open() -> None:
    from pyctrd.varlink.authz import METHODS, UnknownMethod, operation_of
    from pyctrd.varlink.container import ContainerVarlink
    from pyctrd.varlink.image import ImageVarlink

    for interface in (ContainerVarlink, ImageVarlink):
        methods = {m for m in dir(interface) if hasattr(getattr(interface, m),
                                                        "_varlink_signature")}
        assert methods == set(METHODS[interface.name]), interface.name
    assert operation_of(CONTAINER, "Start").action == "org.pyctrd1.container.manage"
    assert operation_of(CONTAINER, "Create").action == "org.pyctrd1.container.create"
    assert operation_of(CONTAINER, "Inspect").action == "org.pyctrd1.container.inspect"
    assert operation_of(IMAGE, "Import").action == "org.pyctrd1.image.manage"
    assert operation_of(IMAGE, "Remove").verb == "RemoveImage"
    assert operation_of(CONTAINER, "Wait").action is None
    assert operation_of(CONTAINER, "Watch").action is None
    with pytest.raises(UnknownMethod):
        operation_of(CONTAINER, "Frobnicate")


def test_a_watch_queue_is_bounded() -> None:
    from pyctrd.varlink.watch import WatchQueue

    dropped = []
    q: WatchQueue[int] = WatchQueue(3, lambda: dropped.append(True))
    for i in range(3):
        q.put(i)
    assert not q.overflowed
    q.put(3)
    assert q.overflowed and dropped == [True]
    q.put(4)  # after an overflow, nothing more is kept or reported
    assert dropped == [True] and len(q._items) == 0


def test_snake_case_and_the_peer_start_time() -> None:
    from pyctrd.ops.properties import snake_case
    from pyctrd.varlink.peer import process_start_time

    assert [snake_case(n) for n in ("Id", "ImageId", "PID", "OOMKilled", "LogPath")] == [
        "id", "image_id", "pid", "oom_killed", "log_path"]
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    assert process_start_time(os.getpid()) == int(fields[19]) > 0
    assert process_start_time(0) == 0
