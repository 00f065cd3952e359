"""dbus/*.xml's doc comments as gdbus-codegen reads them: its docbook output
(`gdbus-codegen --generate-docbook`, package libglib2.0-dev-bin) shows every
method's, signal's and property's text and every argument's.

gdbus-codegen's comment parser takes an `@arg: text` as one line: a wrapped
continuation ends the argument list (the rest becomes the body and the later
arguments go undocumented), so this runs the real tool rather than trusting
tests/unit/test_dbus_xml.py's reading of the comments.
"""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

XML_DIR = Path(__file__).resolve().parents[2] / "dbus"
FILES = sorted(XML_DIR.glob("*.xml"))
MEMBERS = ("method", "signal", "property")


def normalized(text: str) -> str:
    """Words only: gtk-doc's sigils (@arg, %CONST, #Type) become markup in docbook."""
    return " ".join(re.sub(r"[@%#](?=\w)", "", text).split())


def parse_comment(text: str) -> tuple[str, dict[str, str], str]:
    """(symbol, @arg docs, body) of a gtk-doc comment, one line per @arg as
    gdbus-codegen reads it; a wrapped @arg line is reported, not joined."""
    lines = text.strip("\n").splitlines()
    first = lines[0].strip()
    symbol, _sep, rest = first.partition(":")
    args: dict[str, str] = {}
    body = [rest.strip()]
    params = True
    for line in lines[1:]:
        stripped = line.strip()
        if params and stripped.startswith("@") and ": " in stripped:
            name, _sep, doc = stripped[1:].partition(": ")
            args[name] = doc
            continue
        if params and stripped and args:
            raise AssertionError(f"{symbol}: @{list(args)[-1]}'s doc goes on after its "
                                 f"line ({stripped!r}); gdbus-codegen reads one line")
        params = params and not stripped and not args
        body.append(stripped)
    return symbol, args, " ".join(body)


def members(path: Path) -> list[tuple[str, str, ET.Element, str]]:
    """(interface, kind, element, comment) for every member of every interface."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring(path.read_text(), parser=parser)
    found = []
    for iface in root.iter("interface"):
        previous = None
        for child in iface:
            if child.tag in MEMBERS:
                assert previous is not None and previous.tag is ET.Comment, \
                    f"{child.tag} {child.get('name')} has no doc comment"
                found.append((iface.get("name", ""), child.tag, child, previous.text or ""))
            previous = child
    return found


def docbook(path: Path, out: Path) -> dict[str, ET.Element]:
    """gdbus-codegen's docbook for one XML file: each refsect2 by its id."""
    codegen = shutil.which("gdbus-codegen")
    assert codegen, "gdbus-codegen missing: install libglib2.0-dev-bin (make deps)"
    subprocess.run([codegen, "--generate-docbook", "doc", "--output-directory", str(out),
                    str(path)], check=True, capture_output=True, timeout=60)
    sections: dict[str, ET.Element] = {}
    for generated in out.glob("doc-*.xml"):
        # the DOCTYPE names an external DTD that ElementTree would not read anyway
        text = re.sub(r"<!DOCTYPE.*?\]>", "", generated.read_text(), flags=re.S)
        for section in ET.fromstring(text).iter("refsect2"):
            sections[section.get("id", "")] = section
    return sections


def text_of(el: ET.Element) -> str:
    return normalized("".join(el.itertext()))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_docbook_shows_every_member_and_argument_doc(path: Path, tmp_path: Path) -> None:
    sections = docbook(path, tmp_path)
    checked = 0
    for iface, kind, el, comment in members(path):
        name = el.get("name", "")
        symbol, arg_docs, body = parse_comment(comment)
        assert symbol == name, f"{iface}.{name}: its comment is for {symbol!r}"
        section_id = f"gdbus-{kind}-{iface.replace('.', '-')}.{name}"
        assert section_id in sections, f"{iface}.{name}: not in the docbook"
        section = sections[section_id]
        assert normalized(body), f"{iface}.{name}: no text"
        assert normalized(body) in text_of(section), f"{iface}.{name}: text not shown"
        entries = {}
        for entry in section.iter("varlistentry"):
            term = entry.find("term")
            parameter = term.find(".//parameter") if term is not None else None
            item = entry.find("listitem")
            if parameter is not None and item is not None:
                entries[parameter.text] = text_of(item)
        for arg in el.findall("arg"):
            arg_name = arg.get("name", "")
            assert arg_docs.get(arg_name), f"{iface}.{name}: @{arg_name} undocumented"
            assert entries.get(arg_name) == normalized(arg_docs[arg_name]), \
                f"{iface}.{name}: @{arg_name}'s doc not shown: {entries.get(arg_name)!r}"
            checked += 1
        checked += 1
    assert checked > 0
