"""Run pyctrd, SIGKILLing itself the first time it passes one crash point.

    python crashing_pyctrd.py POINT [pyctrd arguments...]

Test builds only: the hook lives here, production code just passes
pyctrd.core.faults.checkpoint() calls, which do nothing without it.
"""

import os
import signal
import sys

from pyctrd import daemon
from pyctrd.core import faults


def main() -> None:
    point, argv = sys.argv[1], sys.argv[2:]
    if point not in faults.POINTS:
        sys.exit(f"crashing_pyctrd: unknown crash point {point!r}")

    def crash(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    faults.install(crash)
    daemon.main(argv)


if __name__ == "__main__":
    main()
