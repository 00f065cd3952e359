"""The log record format OpenLog's stream carries, one record per line:
"<RFC 3339 time> <stdout|stderr> <text>". No asyncio and no bus: both the
D-Bus (logstream) and Varlink (commands/runvarlink) paths read it.
"""

from __future__ import annotations

import sys
from typing import BinaryIO


def parse_record(line: bytes) -> tuple[bytes, str, bytes]:
    """(time, stream, text without its newline)."""
    stamp, stream, text = [*line.rstrip(b"\n").split(b" ", 2), b"", b""][:3]
    return stamp, stream.decode(errors="replace"), text


def output_for(stream: str) -> BinaryIO:
    return sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
