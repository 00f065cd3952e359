"""The polkit policy, its template and its translations are what
scripts/update-translations makes from policy/org.pyctrd1.policy.in: none was
edited by hand or left stale, and every string is translated."""

import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = ["policy/org.pyctrd1.policy", "po/pyctrd.pot",
         *(f"po/{lang}.po" for lang in (REPO / "po" / "LINGUAS").read_text().split())]

pytestmark = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs gettext")


def test_committed_files_are_what_the_script_makes(tmp_path: Path) -> None:
    for part in ("scripts/update-translations", "policy/org.pyctrd1.policy.in",
                 "po/LINGUAS", *FILES):
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / part, tmp_path / part)
    subprocess.run([str(tmp_path / "scripts" / "update-translations")], check=True,
                   timeout=60, capture_output=True)
    for part in FILES:
        assert (tmp_path / part).read_text() == (REPO / part).read_text(), (
            f"{part} is stale: run scripts/update-translations")


def test_every_action_is_translated_and_names_its_gettext_domain() -> None:
    root = ElementTree.parse(REPO / "policy" / "org.pyctrd1.policy").getroot()
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    for action in root.findall("action"):
        for tag in ("description", "message"):
            elements = action.findall(tag)
            source = [e for e in elements if lang not in e.attrib]
            assert len(source) == 1 and source[0].get("gettext-domain") == "pyctrd"
            assert {e.get(lang) for e in elements if lang in e.attrib} == {"de"}, (
                action.get("id"), tag)
    untranslated = subprocess.run(
        ["msgattrib", "--untranslated", str(REPO / "po" / "de.po")],
        capture_output=True, text=True, check=True).stdout
    assert "msgid" not in untranslated.replace('msgid ""', "", 1)
