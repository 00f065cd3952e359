"""The live service's introspection against dbus/*.xml and against shared/API.md.

CONTRACT is API.md's interface, transcribed: member names, argument names and
types. Each object kind is introspected on the running daemon.
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from integration.test_exec import exec_in

XML_DIR = Path(__file__).resolve().parents[2] / "dbus"

Args = tuple[tuple[str, str], ...]


def m(ins: str = "", outs: str = "") -> tuple[Args, Args]:
    """'s name, b force' → ((name, s), (force, b))."""
    def parse(text: str) -> Args:
        return tuple((name, sig) for sig, name in
                     (item.split() for item in text.split(", ") if item))
    return parse(ins), parse(outs)


CONTRACT = {
    "org.pyctrd1.Manager": {
        "methods": {
            "CreateContainer": m("s image, as command, a{sv} options", "o container"),
            "GetContainer": m("s name_or_id", "o container"),
            "ListContainers": m("", "a(sssso) containers"),
            "ListContainersPaged": m("a{sv} options", "a{oa{sa{sv}}} objects, s next"),
            "RemoveContainer": m("s name_or_id, b force"),
            "ImportImage": m("h archive, s reference", "s image_id, o image"),
            "GetImage": m("s reference_or_id", "o image"),
            "ListImages": m("", "a(ssto) images"),
            "RemoveImage": m("s reference_or_id, b force"),
            "PullImage": m("s reference, a{sv} options", "o job"),
            "ListJobs": m("", "ao jobs"),
            "CreateNetwork": m("s name, a{sv} options", "o network"),
            "GetNetwork": m("s name_or_id", "o network"),
            "ListNetworks": m("", "a(ssso) networks"),
            "RemoveNetwork": m("s name_or_id, b force"),
            "CreateVolume": m("s name, a{sv} options", "o volume"),
            "GetVolume": m("s name", "o volume"),
            "ListVolumes": m("", "a(sso) volumes"),
            "RemoveVolume": m("s name, b force"),
        },
        "properties": {"Version": "s", "Runtime": "s", "ContainerCount": "u",
                       "ImageCount": "u"},
        "signals": {
            "ContainerAdded": m("s id, o path")[0],
            "ContainerRemoved": m("s id, o path")[0],
            "ImageAdded": m("s id, o path")[0],
            "ImageRemoved": m("s id, o path")[0],
        },
    },
    "org.pyctrd1.Container": {
        "methods": {
            "Init": m(),
            "Start": m(),
            "Stop": m("u timeout"),
            "Kill": m("s signal"),
            "Pause": m(),
            "Unpause": m(),
            "Mount": m("s mount_label", "s mountpoint"),
            "Unmount": m(),
            "Export": m("h fd"),
            "Wait": m("", "i exit_code"),
            "Remove": m("b force"),
            "Inspect": m("", "s json"),
            "OpenLog": m("b follow", "h fd"),
            "Attach": m("s detach_keys", "h fd"),
            "Exec": m("as command, a{sv} options", "o session, h stdio"),
            "Commit": m("s reference, a{sv} options", "o job"),
            "RunHealthCheck": m("", "s status"),
        },
        "properties": {
            "Id": "s", "Name": "s", "Image": "s", "ImageId": "s", "Command": "as",
            "State": "s", "PID": "i", "ExitCode": "i", "OOMKilled": "b", "Mounted": "b",
            "Mountpoint": "s", "CreatedTimestamp": "t", "StartedTimestamp": "t",
            "FinishedTimestamp": "t", "Labels": "a{ss}", "LogPath": "s", "StopSignal": "u",
            "StopTimeout": "u", "Terminal": "b",
            "RestartPolicy": "s", "RestartCount": "u", "Health": "s", "AutoRemove": "b",
            "Networks": "as", "IPAddress": "s", "Ports": "a(sqqs)",
        },
        "signals": {},
    },
    "org.pyctrd1.Network": {
        "methods": {"Remove": m("b force")},
        "properties": {"Id": "s", "Name": "s", "Driver": "s", "Subnet": "s", "Gateway": "s",
                       "Internal": "b", "DNSEnabled": "b", "Containers": "as",
                       "Labels": "a{ss}"},
        "signals": {},
    },
    "org.pyctrd1.Volume": {
        "methods": {"Remove": m("b force")},
        "properties": {"Name": "s", "Driver": "s", "Mountpoint": "s", "Labels": "a{ss}",
                       "CreatedTimestamp": "t", "InUse": "b"},
        "signals": {},
    },
    "org.pyctrd1.ExecSession": {
        "methods": {"Wait": m("", "i exit_code"), "Kill": m("s signal"),
                    "ResizeTerminal": m("q rows, q cols"), "Remove": m()},
        "properties": {"Command": "as", "State": "s", "PID": "i", "ExitCode": "i",
                       "Terminal": "b", "CreatedTimestamp": "t", "FinishedTimestamp": "t",
                       "Id": "s"},
        "signals": {},
    },
    "org.pyctrd1.Image": {
        "methods": {"Remove": m("b force"), "Tag": m("s reference"),
                    "Untag": m("s reference"), "Save": m("h fd, s format"),
                    "Push": m("s destination, a{sv} options", "o job")},
        "properties": {
            "Id": "s", "Reference": "s", "Digest": "s", "Size": "t", "CreatedTimestamp": "t",
            "Layers": "as", "Entrypoint": "as", "Cmd": "as", "Env": "as", "WorkingDir": "s",
            "User": "s", "References": "as",
        },
        "signals": {},
    },
}


def describe(xml_text: str, iface: str) -> dict:
    """Methods, properties and signals of ``iface`` in an introspection document."""
    root = ET.fromstring(xml_text)
    found = [e for e in root.iter("interface") if e.get("name") == iface]
    assert len(found) == 1, f"{iface} appears {len(found)} times"
    el = found[0]

    def args(member, direction=None):
        return tuple((a.get("name"), a.get("type")) for a in member.findall("arg")
                     if direction is None or (a.get("direction") or "in") == direction)

    return {
        "methods": {e.get("name"): (args(e, "in"), args(e, "out"))
                    for e in el.findall("method")},
        "properties": {e.get("name"): (e.get("type"), e.get("access"))
                       for e in el.findall("property")},
        "signals": {e.get("name"): args(e) for e in el.findall("signal")},
        "annotations": {(e.tag, e.get("name")): annotations(e) for e in el
                        if e.tag in ("method", "property", "signal") and annotations(e)},
    }


def annotations(member: ET.Element) -> dict[str, str]:
    return {a.get("name"): a.get("value") for a in member.findall("annotation")}


@pytest.fixture
async def live(bus, daemon):
    """iface → its live introspection document."""
    path = await bus.run(["sleep", "1000"])
    session, stdio = await exec_in(bus, path, ["sleep", "1000"])
    stdio.close()
    (volume,) = await bus.manager("CreateVolume", "sa{sv}", ["", {}])
    docs = {}
    for iface, obj in (("org.pyctrd1.Manager", "/org/pyctrd1"),
                       ("org.pyctrd1.Container", path),
                       ("org.pyctrd1.ExecSession", session),
                       ("org.pyctrd1.Image", daemon.image_path),
                       ("org.pyctrd1.Network",
                        (await bus.manager("GetNetwork", "s", ["pyctrd"]))[0]),
                       ("org.pyctrd1.Volume", volume)):
        (docs[iface],) = await bus.call(obj, "org.freedesktop.DBus.Introspectable",
                                        "Introspect")
    yield docs
    await bus.call(volume, "org.pyctrd1.Volume", "Remove", "b", [True])


@pytest.mark.parametrize("iface", sorted(CONTRACT))
async def test_live_introspection_equals_xml_file(live, iface):
    # members, argument names and types, and annotations (const, UnixFD)
    expected = describe((XML_DIR / f"{iface}.xml").read_text(), iface)
    assert describe(live[iface], iface) == expected


# API.md, Additions: immutable properties are const; methods passing fds say so.
CONST = {
    "org.pyctrd1.Container": {"Id", "Name", "Image", "ImageId", "Command",
                              "CreatedTimestamp", "LogPath", "StopSignal", "StopTimeout",
                              "Terminal"},
    "org.pyctrd1.Image": {"Id", "Digest", "Size", "CreatedTimestamp", "Layers",
                          "Entrypoint", "Cmd", "Env", "WorkingDir", "User"},
    "org.pyctrd1.Manager": {"Version", "Runtime"},
    "org.pyctrd1.ExecSession": {"Id", "Command", "Terminal", "CreatedTimestamp"},
    "org.pyctrd1.Network": {"Id", "Name", "Driver", "Subnet", "Gateway", "Internal",
                            "DNSEnabled", "Labels"},
    # A volume's Mountpoint is its fixed data directory (a container's changes).
    "org.pyctrd1.Volume": {"Name", "Driver", "Mountpoint", "Labels", "CreatedTimestamp"},
}
FD_METHODS = {
    "org.pyctrd1.Container": {"Export", "OpenLog", "Attach", "Exec"},
    "org.pyctrd1.ExecSession": set(),
    "org.pyctrd1.Image": {"Save"},
    "org.pyctrd1.Manager": {"ImportImage"},
    "org.pyctrd1.Network": set(),
    "org.pyctrd1.Volume": set(),
}


@pytest.mark.parametrize("iface", sorted(CONTRACT))
async def test_live_annotations(live, iface):
    found = describe(live[iface], iface)["annotations"]
    const = {name for (kind, name), a in found.items() if kind == "property"
             and a.get("org.freedesktop.DBus.Property.EmitsChangedSignal") == "const"}
    assert CONST[iface] <= const
    assert not const & ({"State", "PID", "ExitCode", "Mounted", "Mountpoint",
                         "ContainerCount", "ImageCount", "Reference"} - CONST[iface])
    fd = {name for (kind, name), a in found.items() if kind == "method"
          and a.get("org.gtk.GDBus.C.UnixFD") == "true"}
    assert fd == FD_METHODS[iface]


# Members beyond API.md may exist (Container.ResizeTerminal, from issue 3); every
# member API.md names must be there exactly as it says.
@pytest.mark.parametrize("iface", sorted(CONTRACT))
async def test_live_introspection_has_the_api(live, iface):
    actual = describe(live[iface], iface)
    contract = CONTRACT[iface]
    missing = sorted(set(contract["methods"]) - set(actual["methods"]))
    assert not missing, f"{iface} lacks the methods {missing} of API.md"
    for name, (ins, outs) in contract["methods"].items():
        assert actual["methods"][name] == (ins, outs), name
    assert actual["properties"] == {n: (t, "read") for n, t in contract["properties"].items()}
    assert actual["signals"] == contract["signals"]


async def test_object_manager_on_the_root(bus):
    (xml,) = await bus.call("/org/pyctrd1", "org.freedesktop.DBus.Introspectable",
                            "Introspect")
    om = describe(xml, "org.freedesktop.DBus.ObjectManager")
    assert om["methods"]["GetManagedObjects"][1][0][1] == "a{oa{sa{sv}}}"
    assert set(om["signals"]) == {"InterfacesAdded", "InterfacesRemoved"}
