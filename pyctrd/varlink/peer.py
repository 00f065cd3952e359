"""Who is on the other end of a Varlink connection: SO_PEERCRED plus a start time.

The kernel records pid, uid and gid at connect(); the pid's start time (field
22 of /proc/<pid>/stat, in clock ticks since boot) is read right away, so a
polkit unix-process subject names that process and not a later one that
reuses its pid (polkit compares the start time too).
"""

import contextlib
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    start_time: int  # 0: unknown (the process is gone already)


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid, process_start_time(pid))


def process_start_time(pid: int) -> int:
    if pid <= 0:
        return 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        # comm (field 2) may hold spaces and parentheses: fields 3.. follow the last ")"
        rest = stat[stat.rindex(")") + 2:].split()
        return int(rest[22 - 3])
    return 0
