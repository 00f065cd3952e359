"""The daemon as a program: flags, config errors, SIGTERM, restart and re-adoption."""

import os
import select
import signal
import subprocess
from pathlib import Path

PYCTRD = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyctrd")
COOPERATIVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


def process_alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def run_pyctrd(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "config").mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "LANG": "C.UTF-8",
           # a bus nobody listens on: reaching it would be a mistake
           "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    return subprocess.run([PYCTRD, *args], capture_output=True, text=True, env=env,
                          timeout=30, stdin=subprocess.DEVNULL)


def session_args(tmp_path: Path) -> list[str]:
    return ["--bus", "session", "--root", str(tmp_path / "root"),
            "--run-root", str(tmp_path / "run")]


def test_unknown_flag_exits_2(tmp_path):
    result = run_pyctrd(tmp_path, "--bogus")
    assert result.returncode == 2
    assert "--bogus" in result.stderr
    assert result.stdout == ""


def test_missing_config_exits_2_with_one_line(tmp_path):
    result = run_pyctrd(tmp_path, *session_args(tmp_path), "--config", "/nonexistent.toml")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "/nonexistent.toml" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "root").exists()


def test_config_unknown_key_exits_2(tmp_path):
    config = tmp_path / "pyctrd.toml"
    config.write_text('log_level = "info"\nbogus_key = 1\n')
    result = run_pyctrd(tmp_path, *session_args(tmp_path), "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bogus_key" in lines[0]


def test_config_wrong_type_and_bad_toml_exit_2(tmp_path):
    config = tmp_path / "pyctrd.toml"
    for text, word in (('log_size_max = "big"\n', "log_size_max"),
                       ("log_level = 3\n", "log_level"),
                       ('log_level = "loud"\n', "log_level"),
                       ("this is = not toml [\n", "TOML")):
        config.write_text(text)
        result = run_pyctrd(tmp_path, *session_args(tmp_path), "--config", str(config))
        assert result.returncode == 2, text
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert word in lines[0]


def test_session_config_file_is_read(tmp_path):
    # the session daemon's default config file: $XDG_CONFIG_HOME/pyctrd/pyctrd.toml
    (tmp_path / "config" / "pyctrd").mkdir(parents=True)
    (tmp_path / "config" / "pyctrd" / "pyctrd.toml").write_text("nonsense = true\n")
    result = run_pyctrd(tmp_path, *session_args(tmp_path))
    assert result.returncode == 2
    assert "nonsense" in result.stderr


def test_second_daemon_on_a_taken_name_exits_1(daemon, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "DBUS_SESSION_BUS_ADDRESS": daemon.bus_address}
    result = subprocess.run([PYCTRD, *session_args(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "already owned" in result.stderr
    assert daemon.running()


async def test_sigterm_leaves_containers_and_restart_adopts_them(fresh_daemon,
                                                                  client_factory):
    d = fresh_daemon()
    first = await client_factory(d.bus_address)
    path = await first.run_cooperative(name="survivor")
    pid = await first.prop(path, "PID")
    started = await first.prop(path, "StartedTimestamp")
    exiting = await first.run(["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"],
                              name="exits-while-down")
    exiting_pid = await first.prop(exiting, "PID")
    paused = await first.run_cooperative(name="paused-across")
    await first.ctr(paused, "Pause")
    paused_pid = await first.prop(paused, "PID")
    done = await first.create(["sh", "-c", "exit 5"], name="done-before")
    await first.ctr(done, "Start")
    assert (await first.ctr(done, "Wait"))[0] == 5

    assert d.sigterm() == 0
    (has_owner,) = await first.driver("NameHasOwner", "s", ["org.pyctrd1"])
    assert not has_owner
    assert process_alive(pid), "the container died with the daemon"
    assert process_alive(exiting_pid)
    # one container exits while no daemon watches
    os.kill(exiting_pid, signal.SIGTERM)
    assert wait_gone(exiting_pid, 10)

    d.start()
    second = await client_factory(d.bus_address)
    (found,) = await second.manager("GetContainer", "s", ["survivor"])
    assert found == path
    props = await second.get_all(path, "org.pyctrd1.Container")
    assert props["State"] == "running"
    assert props["PID"] == pid
    assert props["StartedTimestamp"] == started
    assert process_alive(pid)

    # the one that exited meanwhile is known as exited, with its exit code
    (code,) = await second.ctr(exiting, "Wait", timeout=10)
    assert code == 42
    assert await second.state(exiting) == "exited"
    assert await second.prop(exiting, "ExitCode") == 42
    assert await second.prop(exiting, "PID") == 0
    # the paused one is still paused, and can be thawed and stopped
    assert await second.state(paused) == "paused"
    assert await second.prop(paused, "PID") == paused_pid
    await second.ctr(paused, "Unpause")
    assert await second.state(paused) == "running"
    await second.ctr(paused, "Stop", "u", [5])
    assert await second.prop(paused, "ExitCode") == 0
    assert not process_alive(paused_pid)
    # and the one that was done before keeps its record
    assert await second.state(done) == "exited"
    assert await second.prop(done, "ExitCode") == 5

    await second.ctr(path, "Stop", "u", [5])
    props = await second.get_all(path, "org.pyctrd1.Container")
    assert props["State"] == "exited"
    assert props["ExitCode"] == 0
    assert props["PID"] == 0
    assert props["FinishedTimestamp"] > started
    assert not process_alive(pid)

    # it can run again under the new daemon
    await second.ctr(path, "Start")
    assert await second.state(path) == "running"
    await second.ctr(path, "Stop", "u", [5])
    assert await second.prop(path, "ExitCode") == 0
