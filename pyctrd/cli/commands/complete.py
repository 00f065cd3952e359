"""__complete: names for the shell completion script (completion/pyctr.bash)."""

from __future__ import annotations

import argparse

from pyctrd.cli.bus import Daemon


async def cmd_complete(daemon: Daemon, args: argparse.Namespace) -> int:
    if args.kind == "containers":
        names = [c.get("Name", "") for c in await daemon.containers()]
    else:
        names = [i.get("Reference", "") for i in await daemon.images()]
    print("\n".join(n for n in names if n))
    return 0
