"""pyctr's man page (generated from the parser) and bash completion script."""

import subprocess
import sys
from pathlib import Path

from pyctrd.cli.parser import build_parser

REPO = Path(__file__).resolve().parent.parent.parent
COMPLETION = REPO / "completion" / "pyctr.bash"
VERBS = ["import", "image", "images", "rmi", "create", "run", "ps", "inspect", "logs",
         "start", "stop", "restart", "kill", "pause", "unpause", "wait", "rm", "mount",
         "unmount", "export", "attach", "events", "info", "version", "system", "container",
         "container ps", "image inspect", "system df"]


def test_manpage_documents_every_verb_and_flag(tmp_path: Path) -> None:
    out = tmp_path / "pyctr.1"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make-manpage"), str(out)],
                   check=True, timeout=30, env={"SOURCE_DATE_EPOCH": "0", "PATH": "/usr/bin"})
    page = out.read_text()
    assert page.startswith('.\\" Generated') and ".TH PYCTR 1" in page
    for verb in VERBS:
        assert f"\n.SS {verb}" in page, verb
    for flag in ("\\-\\-memory", "\\-\\-entrypoint", "\\-\\-detach\\-keys", "\\-\\-format"):
        assert flag in page
    assert "\\fB125\\fR" in page and "__complete" not in page
    rendered = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(out)], capture_output=True,
                              text=True, timeout=30)
    assert rendered.returncode == 0 and rendered.stderr == "", rendered.stderr


def test_completion_asks_the_command_being_completed_for_names(tmp_path: Path) -> None:
    """Names come from ${COMP_WORDS[0]} (here a stand-in), not from a `pyctr` on PATH."""
    fake = tmp_path / "pyctr"
    fake.write_text("#!/bin/sh\n[ \"$1 $2 $3 $4\" = '--address unix:path=/x __complete "
                    "containers' ] && echo web-one && echo web-two\n")
    fake.chmod(0o755)
    assert _complete(str(fake), "--address", "unix:path=/x", "stop", "web") == \
        ["web-one", "web-two"]


def _complete(*words: str) -> list[str]:
    script = (f"source {COMPLETION}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _pyctr; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         check=True)
    return out.stdout.split()


def test_completion_offers_verbs_and_flags() -> None:
    assert _complete("pyctr", "st") == ["start", "stop", "stats"]
    assert _complete("pyctr", "stats", "--no-s") == ["--no-stream"]
    assert _complete("pyctr", "--user", "u") == ["unpause", "unmount", "umount", "untag"]
    assert _complete("pyctr", "run", "--net") == ["--network", "--network-alias"]
    assert _complete("pyctr", "run", "--network", "") == ["bridge", "none", "host"]
    assert _complete("pyctr", "run", "--restart", "") == ["no", "on-failure", "always",
                                                         "unless-stopped"]
    assert _complete("pyctr", "run", "--rep") == ["--replace"]
    assert _complete("pyctr", "ps", "--format", "") == ["json", "table"]
    assert _complete("pyctr", "container", "l") == ["logs", "ls", "list"]
    assert _complete("pyctr", "system", "") == ["info", "df"]
    assert _complete("pyctr", "ps", "--fil") == ["--filter"]
    assert _complete("pyctr", "inspect", "--type", "") == ["container", "image", "all"]
    shown = {choice for choice in build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
             if not choice.startswith("_")}
    assert set(_complete("pyctr", "")) == shown
