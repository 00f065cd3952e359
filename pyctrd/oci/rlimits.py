"""Process resource limits (ulimits): names as podman takes them, the defaults
podman gives (clamped to what this daemon may grant), and the checks that keep
an accepted value from failing at Start."""

import functools
import resource
from collections.abc import Iterable
from pathlib import Path

from pyctrd.errors import InvalidArgument
from pyctrd.rootless.userns import in_user_namespace

# podman's --ulimit names → the rlimit (RLIMIT_* in the OCI spec).
NAMES = {
    "as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}
# Linux's resource numbers (Python's resource module lacks some, e.g. RLIMIT_LOCKS).
_NUMBERS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
            "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11,
            "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15}
# The least soft limit with which runc's init (a Go program, which sets the limits
# before it loads the seccomp filter and execs) still starts the container, as
# measured with runc 1.1.5: below these, Start fails (EMFILE, ENOMEM, SIGXCPU);
# "as" and "data" with a margin (1 GiB of address space failed now and then).
FLOORS = {"nofile": 64, "as": 4 << 30, "data": 1 << 30, "cpu": 1}
# podman's default for nofile and nproc when containers.conf sets none.
PODMAN_DEFAULT = 1_048_576
INFINITY = (1 << 64) - 1  # RLIM_INFINITY as the spec's uint64
CAP_SYS_RESOURCE = 24

Ulimit = tuple[str, int, int]  # (name, soft, hard)


def _resource(name: str) -> int:
    return _NUMBERS[name]


def _as_u64(value: int) -> int:
    return INFINITY if value == resource.RLIM_INFINITY else value


def current(name: str) -> tuple[int, int]:
    """The daemon's own (soft, hard) for ``name``: what a container inherits."""
    soft, hard = resource.getrlimit(_resource(name))
    return _as_u64(soft), _as_u64(hard)


@functools.cache
def can_raise(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this daemon may raise hard limits (CAP_SYS_RESOURCE effective).

    In a user namespace (a user's own daemon) the capability is that
    namespace's, and the kernel asks for the initial namespace's."""
    if in_user_namespace():
        return False
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def nr_open(path: Path = Path("/proc/sys/fs/nr_open")) -> int:
    """The kernel's ceiling on nofile, which even CAP_SYS_RESOURCE cannot pass."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return PODMAN_DEFAULT


def _ceiling(name: str) -> int:
    """The highest hard limit runc can set for ``name`` here."""
    ceiling = INFINITY if can_raise() else current(name)[1]
    return min(ceiling, nr_open()) if name == "nofile" else ceiling


def defaults() -> dict[str, tuple[int, int]]:
    """podman's defaults (nofile, nproc 1048576) clamped to what this daemon can
    set (its own hard limits unless it may raise them), so Start never fails."""
    found = {}
    for name in ("nofile", "nproc"):
        limit = min(PODMAN_DEFAULT, _ceiling(name))
        found[name] = (limit, limit)
    return found


def resolve(ulimits: Iterable[Ulimit]) -> list[Ulimit]:
    """The container's ulimits: the defaults overridden by ``ulimits``; checked so
    that runc can set each (a known name, soft ≤ hard, hard within reach)."""
    given: dict[str, tuple[int, int]] = {}
    for name, soft, hard in ulimits:
        if name not in NAMES:
            raise InvalidArgument(f"unknown ulimit {name!r}; known: {', '.join(sorted(NAMES))}")
        if name in given:
            raise InvalidArgument(f"ulimit {name!r} given twice")
        if soft > hard:
            raise InvalidArgument(f"ulimit {name}: soft limit {soft} is above the hard "
                                  f"limit {hard}")
        if soft < FLOORS.get(name, 0):
            raise InvalidArgument(f"ulimit {name}: {soft} is below {FLOORS[name]}, the least "
                                  "with which the runtime can start a container")
        ceiling = _ceiling(name)
        if hard > ceiling:
            raise InvalidArgument(
                f"ulimit {name}: hard limit {hard} is above {ceiling}, which pyctrd "
                "cannot raise on this host (its own limit, or the kernel's fs.nr_open)")
        given[name] = (soft, hard)
    merged = {**defaults(), **given}
    return [(name, soft, hard) for name, (soft, hard) in sorted(merged.items())]


def raises(ulimits: Iterable[Ulimit]) -> list[str]:
    """The names in ``ulimits`` that go above the default (podman's for nofile and
    nproc, the inherited one for others): these need create-privileged."""
    base = defaults()
    found = []
    for name, soft, hard in ulimits:
        if name not in NAMES:
            continue  # refused at create
        default_soft, default_hard = base.get(name) or current(name)
        if soft > default_soft or hard > default_hard:
            found.append(name)
    return found


def spec_rlimits(ulimits: Iterable[Ulimit]) -> list[dict[str, object]]:
    return [{"type": NAMES[name], "soft": soft, "hard": hard} for name, soft, hard in ulimits]
