"""A runtime named runc that logs each call, then is runc: which calls the daemon
still makes (named runc, its state files are read and some verbs done in-process)."""

import shutil
import stat
from pathlib import Path

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def logging_runc(directory: Path) -> tuple[Path, Path]:
    """(the wrapper, its log) in ``directory``, made here."""
    directory.mkdir(parents=True)
    log = directory / "calls.log"
    wrapper = directory / "runc"  # the name says runc: its state files are read
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {RUNC} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def verbs(log: Path) -> list[str]:
    """The verb of each logged call, in order."""
    if not log.exists():
        return []
    return [next((a for a in line.split() if not a.startswith("--")), "")
            for line in log.read_text().splitlines()]
