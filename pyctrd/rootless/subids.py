"""The user's subordinate id ranges, from /etc/subuid and /etc/subgid.

newuidmap/newgidmap read the same files and refuse what they do not grant; we
read them first only to say, before anything is set up, what an admin must add.
"""

from dataclasses import dataclass
from pathlib import Path

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")

# podman's default and what `useradd` allocates on Debian
WANTED_COUNT = 65536


@dataclass(frozen=True)
class IdRange:
    start: int
    count: int


class NoSubordinateIds(Exception):
    """The user has no range in /etc/subuid or /etc/subgid."""


def ranges_for(path: Path, user: str, uid: int) -> list[IdRange]:
    """The ranges the file grants to ``user`` (by name or by number)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            found.append(IdRange(start, count))
    return found


def largest(path: Path, user: str, uid: int) -> IdRange:
    ranges = ranges_for(path, user, uid)
    if not ranges:
        raise NoSubordinateIds(
            f"user {user} (uid {uid}) has no subordinate ids in {path}: as root, add "
            f"a line such as '{user}:100000:{WANTED_COUNT}' to /etc/subuid and "
            f"/etc/subgid (or run 'usermod --add-subuids 100000-{100000 + WANTED_COUNT - 1} "
            f"--add-subgids 100000-{100000 + WANTED_COUNT - 1} {user}')")
    return max(ranges, key=lambda r: r.count)
