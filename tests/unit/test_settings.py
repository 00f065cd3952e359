"""pyctrd.settings.load: flags over the TOML config over defaults."""

from pathlib import Path

import pytest

from pyctrd import settings
from pyctrd.settings import SettingsError, load


@pytest.fixture(autouse=True)
def no_system_config(tmp_path, monkeypatch):
    # never read the host's /etc/pyctrd/pyctrd.toml
    monkeypatch.setattr(settings, "SYSTEM_CONFIG", tmp_path / "absent" / "pyctrd.toml")


@pytest.fixture
def bins(tmp_path):
    made = {}
    for name in ("fake-runc", "fake-conmon", "other-runc"):
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
        made[name] = str(path)
    return made


@pytest.fixture
def binflags(bins):
    return ["--runtime", bins["fake-runc"], "--conmon", bins["fake-conmon"]]


def write_config(tmp_path, text: str) -> Path:
    path = tmp_path / "pyctrd.toml"
    path.write_text(text)
    return path


def test_system_defaults(binflags, bins):
    s = load(["--bus", "system", *binflags])
    assert s.bus == "system"
    assert s.root == Path("/var/lib/pyctrd")
    assert s.run_root == Path("/run/pyctrd")
    assert s.runtime == bins["fake-runc"]
    assert s.conmon == bins["fake-conmon"]
    assert s.log_level == "info"
    assert s.log_size_max == -1
    assert s.config_file is None


def test_bus_defaults_to_system(binflags):
    assert load(binflags).bus == "system"


def test_session_defaults(binflags, tmp_path, monkeypatch):
    from xdg import BaseDirectory
    monkeypatch.setattr(BaseDirectory, "xdg_data_home", str(tmp_path / "data"))
    monkeypatch.setattr(BaseDirectory, "xdg_config_home", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    s = load(["--bus", "session", *binflags])
    assert s.root == tmp_path / "data" / "pyctrd"
    assert s.run_root == tmp_path / "run" / "pyctrd"


def test_session_reads_xdg_config(binflags, tmp_path, monkeypatch):
    from xdg import BaseDirectory
    monkeypatch.setattr(BaseDirectory, "xdg_config_home", str(tmp_path / "config"))
    conf = tmp_path / "config" / "pyctrd" / "pyctrd.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('root = "/srv/mine"\n')
    s = load(["--bus", "session", *binflags])
    assert s.root == Path("/srv/mine")
    assert s.config_file == conf


def test_system_config_file_is_read(binflags, tmp_path, monkeypatch):
    conf = write_config(tmp_path, 'run_root = "/run/elsewhere"\n')
    monkeypatch.setattr(settings, "SYSTEM_CONFIG", conf)
    s = load(binflags)
    assert s.run_root == Path("/run/elsewhere")
    assert s.config_file == conf


def test_config_sets_everything(tmp_path, bins):
    conf = write_config(tmp_path, f"""
root = "/srv/pyctrd"
run_root = "/run/p2"
runtime = "{bins['fake-runc']}"
conmon = "{bins['fake-conmon']}"
log_level = "debug"
log_size_max = 1048576
import_max_bytes = 67108864
""")
    s = load(["--config", str(conf)])
    assert s.root == Path("/srv/pyctrd")
    assert s.run_root == Path("/run/p2")
    assert s.runtime == bins["fake-runc"]
    assert s.conmon == bins["fake-conmon"]
    assert s.log_level == "debug"
    assert s.log_size_max == 1048576
    assert s.import_max_bytes == 64 << 20
    assert s.config_file == conf


def test_flags_override_config(tmp_path, bins, binflags):
    conf = write_config(tmp_path, f"""
root = "/srv/pyctrd"
run_root = "/run/p2"
runtime = "{bins['other-runc']}"
log_level = "debug"
""")
    s = load(["--config", str(conf), "--root", "/flag/root", "--run-root", "/flag/run",
              "--log-level", "error", *binflags])
    assert s.root == Path("/flag/root")
    assert s.run_root == Path("/flag/run")
    assert s.runtime == bins["fake-runc"]
    assert s.log_level == "error"


def test_relative_paths_become_absolute(binflags, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load(["--root", "state", "--run-root", "run", *binflags])
    assert s.root == tmp_path / "state"
    assert s.run_root == tmp_path / "run"
    assert s.root.is_absolute()


def test_runtime_found_on_path(tmp_path, bins, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(bins["fake-runc"]).parent))
    s = load(["--runtime", "fake-runc", "--conmon", "fake-conmon"])
    assert s.runtime == bins["fake-runc"]
    assert s.conmon == bins["fake-conmon"]


@pytest.mark.parametrize("text", [
    'colour = "blue"\n',
    "[section]\nroot = \"/x\"\n",
])
def test_unknown_key(tmp_path, binflags, text):
    conf = write_config(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load(["--config", str(conf), *binflags])
    assert str(conf) in str(info.value)


@pytest.mark.parametrize(("text", "key"), [
    ("root = 5\n", "root"),
    ("run_root = [\"/a\"]\n", "run_root"),
    ("log_size_max = \"big\"\n", "log_size_max"),
    ("log_size_max = true\n", "log_size_max"),
    ("log_size_max = 1.5\n", "log_size_max"),
    ("log_level = 3\n", "log_level"),
    ("import_max_bytes = \"1G\"\n", "import_max_bytes"),
    ("import_max_bytes = -1\n", "import_max_bytes"),
])
def test_wrong_type(tmp_path, binflags, text, key):
    conf = write_config(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load(["--config", str(conf), *binflags])
    assert key in str(info.value)


def test_bad_log_level_in_config(tmp_path, binflags):
    conf = write_config(tmp_path, 'log_level = "loud"\n')
    with pytest.raises(SettingsError) as info:
        load(["--config", str(conf), *binflags])
    assert "log_level" in str(info.value)


def test_invalid_toml(tmp_path, binflags):
    conf = write_config(tmp_path, "root = \n[[[\n")
    with pytest.raises(SettingsError) as info:
        load(["--config", str(conf), *binflags])
    assert "TOML" in str(info.value)
    assert str(conf) in str(info.value)


def test_missing_explicit_config(tmp_path, binflags):
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError) as info:
        load(["--config", str(missing), *binflags])
    assert str(missing) in str(info.value)


def test_config_that_is_a_directory(tmp_path, binflags):
    with pytest.raises(SettingsError):
        load(["--config", str(tmp_path), *binflags])


def test_runtime_path_missing(tmp_path, bins):
    with pytest.raises(SettingsError) as info:
        load(["--runtime", str(tmp_path / "no-runc"), "--conmon", bins["fake-conmon"]])
    assert "no-runc" in str(info.value)


def test_conmon_not_on_path(bins, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SettingsError) as info:
        load(["--runtime", bins["fake-runc"], "--conmon", "conmon-that-is-not-there"])
    assert "conmon" in str(info.value)


def test_runtime_not_executable(tmp_path, bins):
    path = tmp_path / "plain"
    path.write_text("")
    path.chmod(0o644)
    with pytest.raises(SettingsError):
        load(["--runtime", str(path), "--conmon", bins["fake-conmon"]])


def test_runtime_from_config_missing(tmp_path, bins):
    conf = write_config(tmp_path, f'runtime = "{tmp_path}/absent-runc"\n')
    with pytest.raises(SettingsError):
        load(["--config", str(conf), "--conmon", bins["fake-conmon"]])


@pytest.mark.parametrize("argv", [
    ["--log-level", "loud"],
    ["--bus", "user"],
    ["--no-such-flag"],
])
def test_bad_flags_exit_2(binflags, argv, capsys):
    with pytest.raises(SystemExit) as info:
        load([*argv, *binflags])
    assert info.value.code == 2
    assert capsys.readouterr().err


def test_import_max_bytes_defaults_to_automatic(binflags):
    assert load(binflags).import_max_bytes == 0


def test_shipped_config_lists_every_key():
    shipped = (Path(__file__).parents[2] / "etc" / "pyctrd.toml").read_text()
    for key in settings.CONFIG_KEYS:
        assert f"#{key} = " in shipped, key
