"""`make install DESTDIR=… PREFIX=…` lays every file where the system reads it;
`make uninstall` takes them away again (an admin's edited config excepted)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PYCTRD, REPO

from pyctrd import settings
from pyctrd.ops.operations import CONTAINER_OPS, CREATE_PRIVILEGED, IMAGE_OPS, MANAGER_OPS

# shared/API.md's polkit table: action → (allow_any, allow_inactive, allow_active)
POLKIT_DEFAULTS = {
    "org.pyctrd1.container.inspect": ("auth_admin", "auth_admin", "auth_admin_keep"),
    "org.pyctrd1.container.attach": ("auth_admin", "auth_admin", "auth_admin"),
    "org.pyctrd1.container.exec": ("auth_admin", "auth_admin", "auth_admin"),
    "org.pyctrd1.container.manage": ("auth_admin", "auth_admin", "auth_admin_keep"),
    "org.pyctrd1.container.create": ("auth_admin", "auth_admin", "auth_admin_keep"),
    "org.pyctrd1.container.create-privileged": ("auth_admin", "auth_admin", "auth_admin"),
    "org.pyctrd1.container.mount": ("auth_admin", "auth_admin", "auth_admin"),
    "org.pyctrd1.image.manage": ("auth_admin", "auth_admin", "auth_admin_keep"),
    "org.pyctrd1.image.pull": ("auth_admin", "auth_admin", "auth_admin_keep"),
    "org.pyctrd1.network.manage": ("auth_admin", "auth_admin", "auth_admin_keep"),
}
INTERFACES = ["org.pyctrd1.Manager.xml", "org.pyctrd1.Container.xml", "org.pyctrd1.Image.xml",
              "org.pyctrd1.ExecSession.xml", "org.pyctrd1.Job.xml", "org.pyctrd1.Network.xml",
              "org.pyctrd1.Volume.xml"]
# Fixed by what reads them, whatever PREFIX is.
FIXED = [
    "/usr/share/dbus-1/system.d/org.pyctrd1.conf",
    "/usr/share/polkit-1/actions/org.pyctrd1.policy",
    "/etc/pyctrd/pyctrd.toml",
]


def under_prefix(prefix: str) -> list[str]:
    return [
        f"{prefix}/bin/pyctrd",
        f"{prefix}/bin/pyctr",
        f"{prefix}/share/dbus-1/system-services/org.pyctrd1.service",
        f"{prefix}/share/dbus-1/services/org.pyctrd1.service",
        *(f"{prefix}/share/dbus-1/interfaces/{name}" for name in INTERFACES),
        f"{prefix}/share/doc/pyctrd/50-pyctrd.rules.example",
        f"{prefix}/share/doc/pyctrd/README.md",
        f"{prefix}/lib/systemd/system/pyctrd.service",
        f"{prefix}/lib/systemd/user/pyctrd.service",
        f"{prefix}/lib/tmpfiles.d/pyctrd.conf",
        *(f"{prefix}/share/cockpit/pyctrd/{name}"
          for name in ("manifest.json", "index.html", "pyctrd.js", "pyctrd.css")),
    ]


SYSTEM_PYTHON = "/usr/bin/python3"  # the Makefile's INSTALL_PYTHON


def python_path() -> list[str]:
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('\\n'.join(sys.path))"],
                         capture_output=True, text=True, timeout=60, check=True, cwd="/",
                         env={"PATH": "/usr/bin:/bin"})
    return out.stdout.splitlines()


def installed_site(destdir: Path, prefix: str) -> str:
    """The directory the package went to: under ``prefix``, and one python3 searches."""
    found = [p.parent.parent for p in destdir.rglob("pyctrd/__init__.py")]
    assert len(found) == 1, found
    site = "/" + str(found[0].relative_to(destdir))
    assert site.startswith(prefix + "/lib/"), site
    assert site in python_path(), f"{SYSTEM_PYTHON} does not search {site}"
    return site


def make(target: str, destdir: Path, prefix: str) -> str:
    out = subprocess.run(["make", "-s", "-C", str(REPO), target, f"DESTDIR={destdir}",
                          f"PREFIX={prefix}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"make {target} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def usr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A DESTDIR with `make install PREFIX=/usr` done."""
    destdir = tmp_path_factory.mktemp("destdir")
    make("install", destdir, "/usr")
    yield destdir
    shutil.rmtree(destdir, ignore_errors=True)


def file_in(destdir: Path, path: str) -> Path:
    return destdir / path.lstrip("/")


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_every_file_is_in_place(usr: Path) -> None:
    installed_site(usr, "/usr")
    for path in [*FIXED, *under_prefix("/usr")]:
        installed = file_in(usr, path)
        assert installed.is_file(), f"{path} not installed"
        executable = path.endswith(("/bin/pyctrd", "/bin/pyctr"))
        assert installed.stat().st_mode & 0o777 == (0o755 if executable else 0o644), path
    for script in ("pyctrd", "pyctr"):
        first = file_in(usr, f"/usr/bin/{script}").read_text().splitlines()[0]
        assert first == f"#!{SYSTEM_PYTHON}"


def test_installed_package_runs(usr: Path) -> None:
    # The installed entry point, with this checkout's venv supplying the dependencies.
    site = file_in(usr, installed_site(usr, "/usr"))
    out = subprocess.run(
        [str(PYCTRD.with_name("python")), str(file_in(usr, "/usr/bin/pyctrd")), "--help"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert "--bus {system,session}" in out.stdout


def test_bus_policy_lets_only_root_own_the_name(usr: Path) -> None:
    root = ET.parse(file_in(usr, FIXED[0])).getroot()
    owners = {(p.get("user"), p.get("context")): [(a.tag, a.attrib) for a in p]
              for p in root.findall("policy")}
    assert owners[("root", None)] == [("allow", {"own": "org.pyctrd1"})]
    default = owners[(None, "default")]
    assert ("deny", {"own": "org.pyctrd1"}) in default
    assert ("allow", {"send_destination": "org.pyctrd1"}) in default
    assert ("allow", {"receive_sender": "org.pyctrd1"}) in default


def test_polkit_actions_match_the_api(usr: Path) -> None:
    root = ET.parse(file_in(usr, FIXED[1])).getroot()
    assert root.tag == "policyconfig" and root.findtext("vendor") == "pyctrd"
    assert not list(root.iter("annotate"))
    found = {}
    for action in root.findall("action"):
        assert action.findtext("description", "").strip()
        message = action.findtext("message", "")
        assert message.startswith("Authentication is required to"), message
        defaults = action.find("defaults")
        assert defaults is not None
        found[action.get("id")] = tuple(defaults.findtext(k) for k in (
            "allow_any", "allow_inactive", "allow_active"))
    assert found == POLKIT_DEFAULTS
    # and exactly the actions the daemon asks for
    assert {op.action for ops in (MANAGER_OPS, CONTAINER_OPS, IMAGE_OPS)
            for op in ops.values() if op.action} | {CREATE_PRIVILEGED} == set(found)


def test_interface_xml_parses(usr: Path) -> None:
    for name in INTERFACES:
        installed = file_in(usr, f"/usr/share/dbus-1/interfaces/{name}")
        assert installed.read_bytes() == (REPO / "dbus" / name).read_bytes()
        names = [i.get("name") for i in ET.parse(installed).getroot().iter("interface")]
        assert name.removesuffix(".xml") in names


def test_activation_file(usr: Path) -> None:
    service = unit(file_in(usr, "/usr/share/dbus-1/system-services/org.pyctrd1.service"))
    assert dict(service["D-BUS Service"]) == {
        "Name": "org.pyctrd1", "Exec": "/usr/bin/pyctrd --bus system", "User": "root",
        "SystemdService": "pyctrd.service"}


def test_session_activation_file_starts_the_user_unit(usr: Path) -> None:
    service = unit(file_in(usr, "/usr/share/dbus-1/services/org.pyctrd1.service"))
    assert dict(service["D-BUS Service"]) == {
        "Name": "org.pyctrd1", "Exec": "/usr/bin/pyctrd --bus session",
        "SystemdService": "pyctrd.service"}
    # SystemdService names the user unit as installed, which runs the same daemon.
    user = unit(file_in(usr, "/usr/lib/systemd/user/pyctrd.service"))["Service"]
    assert user["BusName"] == service["D-BUS Service"]["Name"]
    assert user["ExecStart"] == service["D-BUS Service"]["Exec"]


def test_systemd_units(usr: Path) -> None:
    system = unit(file_in(usr, "/usr/lib/systemd/system/pyctrd.service"))["Service"]
    assert system["Type"] == "dbus" and system["BusName"] == "org.pyctrd1"
    assert system["ExecStart"] == "/usr/bin/pyctrd --bus system"
    assert system["KillMode"] == "process"  # containers and conmon outlive a restart
    assert system["Restart"] == "on-failure"
    for namespacing in ("PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateDevices",
                        "NoNewPrivileges"):
        assert namespacing not in system, f"{namespacing} would break containers"
    user = unit(file_in(usr, "/usr/lib/systemd/user/pyctrd.service"))["Service"]
    assert user["Type"] == "dbus" and user["BusName"] == "org.pyctrd1"
    assert user["ExecStart"] == "/usr/bin/pyctrd --bus session"
    assert user["KillMode"] == "process"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_accepts_the_units(usr: Path) -> None:
    for path in ("/usr/lib/systemd/system/pyctrd.service",
                 "/usr/lib/systemd/user/pyctrd.service"):
        out = subprocess.run(["systemd-analyze", "verify", "--man=no",
                              str(file_in(usr, path))],
                             capture_output=True, text=True, timeout=60, cwd="/")
        # The binary is only in DESTDIR; anything else (unknown keys, bad
        # values) is a mistake in the unit.
        problems = [line for line in out.stderr.splitlines()
                    if "Command /usr/bin/pyctrd is not executable" not in line]
        assert not problems, f"{path}: {problems}"


def test_tmpfiles_entry(usr: Path) -> None:
    lines = [line.split() for line in
             file_in(usr, "/usr/lib/tmpfiles.d/pyctrd.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == [["d", "/run/pyctrd", "0711", "root", "root", "-"]]


def test_default_config_documents_every_key_with_its_default(usr: Path, tmp_path: Path) -> None:
    installed = file_in(usr, "/etc/pyctrd/pyctrd.toml")
    text = installed.read_text()
    assert tomllib.loads(text) == {}  # every key commented out
    uncommented = tmp_path / "pyctrd.toml"
    uncommented.write_text(re.sub(r"^#(\w+ = )", r"\1", text, flags=re.M))
    values = tomllib.loads(uncommented.read_text())
    assert set(values) == set(settings.CONFIG_KEYS)
    shown = settings.load(["--config", str(uncommented)])
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    default = settings.load(["--config", str(empty)])
    assert {k: getattr(shown, k) for k in settings.CONFIG_KEYS} == \
        {k: getattr(default, k) for k in settings.CONFIG_KEYS}


def test_install_keeps_an_edited_config_and_uninstall_removes_the_rest(
        tmp_path: Path) -> None:
    make("install", tmp_path, "/usr")
    site = installed_site(tmp_path, "/usr")
    config = file_in(tmp_path, "/etc/pyctrd/pyctrd.toml")
    config.write_text('log_level = "debug"\n')
    assert "keeping the existing" in make("install", tmp_path, "/usr")
    assert config.read_text() == 'log_level = "debug"\n'

    make("uninstall", tmp_path, "/usr")
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["etc/pyctrd/pyctrd.toml"]  # the admin's, kept

    config.write_bytes((REPO / "etc" / "pyctrd.toml").read_bytes())
    make("uninstall", tmp_path, "/usr")  # an unchanged config goes
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not file_in(tmp_path, site + "/pyctrd").exists()


def test_prefix_usr_local(tmp_path: Path) -> None:
    make("install", tmp_path, "/usr/local")
    installed_site(tmp_path, "/usr/local")
    for path in [*FIXED, *under_prefix("/usr/local")]:
        assert file_in(tmp_path, path).is_file(), f"{path} not installed"
    service = unit(file_in(tmp_path,
                           "/usr/local/share/dbus-1/system-services/org.pyctrd1.service"))
    assert service["D-BUS Service"]["Exec"] == "/usr/local/bin/pyctrd --bus system"
    session = unit(file_in(tmp_path, "/usr/local/share/dbus-1/services/org.pyctrd1.service"))
    assert session["D-BUS Service"]["Exec"] == "/usr/local/bin/pyctrd --bus session"
    make("uninstall", tmp_path, "/usr/local")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
