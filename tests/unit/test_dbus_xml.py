"""dbus/*.xml against the code: the option schema, the property tables, docs.

The live service is compared with these files by
tests/integration/test_api_contract.py; here the interface classes are
introspected in-process, so a mismatch shows without a daemon.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyctrd.bus.container import ContainerObject
from pyctrd.bus.exec import ExecSessionObject
from pyctrd.bus.image import ImageObject
from pyctrd.bus.manager import ManagerObject
from pyctrd.bus.props import EMITS_CHANGED, UNIX_FD
from pyctrd.ops.exec import EXEC_SESSION_PROPERTIES
from pyctrd.ops.options import OPTIONS, documentation
from pyctrd.ops.properties import CONTAINER_PROPERTIES, IMAGE_PROPERTIES, MANAGER_PROPERTIES

XML_DIR = Path(__file__).resolve().parents[2] / "dbus"
OBJECTS = {
    "org.pyctrd1.Manager": (lambda: ManagerObject(None), MANAGER_PROPERTIES),  # type: ignore[arg-type]
    "org.pyctrd1.Container": (lambda: ContainerObject(None, None),  # type: ignore[arg-type]
                              CONTAINER_PROPERTIES),
    "org.pyctrd1.Image": (lambda: ImageObject(None, None), IMAGE_PROPERTIES),  # type: ignore[arg-type]
    "org.pyctrd1.ExecSession": (lambda: ExecSessionObject(None, None),  # type: ignore[arg-type]
                                EXEC_SESSION_PROPERTIES),
}
MEMBERS = ("method", "signal", "property")


def parse(iface: str) -> ET.Element:
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring((XML_DIR / f"{iface}.xml").read_text(), parser=parser)
    (el,) = [e for e in root.iter("interface") if e.get("name") == iface]
    return el


def docs(el: ET.Element) -> dict[tuple[str, str], str]:
    """(kind, name) → the comment directly before each member."""
    found: dict[tuple[str, str], str] = {}
    previous = None
    for child in el:
        if child.tag in MEMBERS:
            assert previous is not None and previous.tag is ET.Comment, \
                f"{child.tag} {child.get('name')} has no <!-- doc --> before it"
            found[(child.tag, child.get("name", ""))] = previous.text or ""
        previous = child
    return found


def describe(el: ET.Element) -> dict:
    def annotations(member: ET.Element) -> dict[str, str]:
        return {a.get("name"): a.get("value") for a in member.findall("annotation")}

    def args(member: ET.Element) -> tuple:
        return tuple((a.get("name"), a.get("type"), a.get("direction") or "in")
                     for a in member.findall("arg"))

    return {(m.tag, m.get("name")): (args(m), m.get("type"), m.get("access"),
                                     annotations(m))
            for m in el if m.tag in MEMBERS}


@pytest.mark.parametrize("iface", sorted(OBJECTS))
def test_every_member_is_documented_in_gdbus_codegen_style(iface):
    el = parse(iface)
    found = docs(el)
    assert set(found) == {(m.tag, m.get("name")) for m in el if m.tag in MEMBERS}
    for (kind, name), text in found.items():
        first = text.strip().splitlines()[0]
        assert first.startswith(f"{name}:"), f"{kind} {name}: doc starts {first!r}"
        assert len(text.strip()) > len(name) + 5, f"{kind} {name}: no description"
        if kind != "property":
            member = next(m for m in el if m.tag == kind and m.get("name") == name)
            for arg in member.findall("arg"):
                assert f"@{arg.get('name')}:" in text, f"{name}: @{arg.get('name')} undocumented"


@pytest.mark.parametrize("iface", sorted(OBJECTS))
def test_xml_equals_the_interface_class(iface):
    make, _table = OBJECTS[iface]
    live = ET.fromstring(ET.tostring(make().introspect().to_xml()))
    assert describe(parse(iface)) == describe(live)


@pytest.mark.parametrize("iface", sorted(OBJECTS))
def test_annotations_follow_the_tables(iface):
    _make, table = OBJECTS[iface]
    el = parse(iface)
    for prop in el.findall("property"):
        row = table[prop.get("name")]
        annotations = {a.get("name"): a.get("value") for a in prop.findall("annotation")}
        assert annotations == ({EMITS_CHANGED: "const"} if row.const else {}), row.name
    assert {p.get("name") for p in el.findall("property")} == set(table)
    for method in el.findall("method"):
        carries_fd = any(a.get("type") == "h" for a in method.findall("arg"))
        annotations = {a.get("name"): a.get("value") for a in method.findall("annotation")}
        assert annotations == ({UNIX_FD: "true"} if carries_fd else {}), method.get("name")


def test_create_container_documents_every_option():
    text = docs(parse("org.pyctrd1.Manager"))[("method", "CreateContainer")]
    flat = " ".join(text.split())
    for line in documentation():
        assert " ".join(line.split()) in flat, line
    for name, option in OPTIONS.items():
        assert re.search(rf"`{name}` {re.escape(' or '.join(option.signatures))}:", flat), name
