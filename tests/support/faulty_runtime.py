"""An OCI runtime that is runc, except for the verbs a test tells it to break.

Tests copy this file next to a control file and pass the copy as --runtime:

    control file (JSON): {"fail": ["pause", ...], "hang": ["start", ...]}

"fail" prints a runc-style error and exits 1; "hang" sleeps until killed,
after writing its PID to ``<control stem>.<verb>.hanging`` next to the control
file, so a test knows the hang has begun (and which process to watch).
The control file is re-read on every call, so a test changes faults while
the daemon runs. Test builds only.
"""

import json
import os
import sys
import time
from pathlib import Path

CONTROL = Path(__file__).with_suffix(".json")
RUNC = "/usr/sbin/runc"
GLOBAL_FLAGS_WITH_VALUE = {"--root", "--log", "--log-format", "--criu"}


def verb(argv: list[str]) -> str:
    args = iter(argv)
    for arg in args:
        if arg.startswith("--"):
            if arg in GLOBAL_FLAGS_WITH_VALUE:
                next(args, None)
            continue
        return arg
    return ""


def main() -> None:
    argv = sys.argv[1:]
    try:
        faults = json.loads(CONTROL.read_text())
    except (OSError, ValueError):
        faults = {}
    name = verb(argv)
    if name in faults.get("hang", []):
        marker = CONTROL.with_name(f"{CONTROL.stem}.{name}.hanging")
        partial = marker.with_suffix(".tmp")
        partial.write_text(str(os.getpid()))
        os.replace(partial, marker)  # whole or absent: a test reads it at once
        while True:
            time.sleep(3600)
    if name in faults.get("fail", []):
        print(f'time="now" level=error msg="injected failure of {name}"', file=sys.stderr)
        sys.exit(1)
    os.execv(RUNC, [RUNC, *argv])


if __name__ == "__main__":
    main()
