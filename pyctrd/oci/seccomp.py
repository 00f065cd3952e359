"""The default seccomp profile: containers-common's, converted to the OCI spec's form.

Debian's golang-github-containers-common ships the profile podman uses as
/usr/share/containers/seccomp.json. It is data: rules with includes/excludes
on capabilities, architectures and kernel versions, and an archMap. This
module resolves it for one container, as containers-common's setupSeccomp
does: a rule applies when none of its excludes hold and all its includes do,
capabilities judged against the container's bounding set, architectures
against the host's. The file is read and parsed once, and each resolved
profile is kept per capability set, so a container's Init pays a dict lookup
(runc compiles and loads the filter).
"""

import ctypes
import errno
import functools
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyctrd.errors import NotSupported

PROFILE_PATH = Path("/usr/share/containers/seccomp.json")

# uname's machine → (the profile's own arch names as Go spells them, the
# libseccomp name of the native architecture): podman's nativeToSeccomp.
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}


def host_arch() -> tuple[str, str]:
    """(Go arch name, SCMP_ARCH name) of this machine."""
    machine = platform.machine()
    if machine not in _ARCHES:
        raise NotSupported(f"no seccomp architecture known for machine {machine!r}")
    return _ARCHES[machine]


X32_SYSCALL_BIT = 0x40000000
_NR_GETPID_X86_64 = 39


@functools.cache
def kernel_runs_x32() -> bool:
    """Whether this kernel has the x32 ABI (CONFIG_X86_X32_ABI): an x32 getpid
    answers, or fails with ENOSYS."""
    if platform.machine() != "x86_64":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(ctypes.c_long(X32_SYSCALL_BIT | _NR_GETPID_X86_64))
    return not (result == -1 and ctypes.get_errno() == errno.ENOSYS)


def _kernel_version(release: str) -> tuple[int, ...]:
    """"6.18.44-fc-v782" → (6, 18, 44)."""
    parts = []
    for part in release.split("-", 1)[0].split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    try:
        profile = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotSupported(
            f"the default seccomp profile {path} is missing: install "
            "golang-github-containers-common (or create with seccomp 'unconfined')"
        ) from None
    except (OSError, ValueError) as err:
        raise NotSupported(f"cannot read the seccomp profile {path}: {err}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise NotSupported(f"{path} is not a seccomp profile (no defaultAction)")
    if profile.get("architectures") and profile.get("archMap"):
        raise NotSupported(f"{path} gives both architectures and archMap")
    return profile


def ensure_available(path: Path = PROFILE_PATH) -> None:
    """Raise NotSupported now (at create) if the profile cannot be used."""
    _load(path)


def _applies(rule: dict[str, Any], caps: frozenset[str], arch: str,
             kernel: tuple[int, ...]) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(c in caps for c in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and kernel >= _kernel_version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(c in caps for c in includes.get("caps") or ()):
        return False
    return not (includes.get("minKernel")
                and kernel < _kernel_version(includes["minKernel"]))


def _syscall(names: list[str], rule: dict[str, Any]) -> dict[str, Any]:
    call: dict[str, Any] = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        call["errnoRet"] = rule["errnoRet"]
    args = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
            for a in rule.get("args") or ()]
    if args:
        call["args"] = args
    return call


def convert(profile: dict[str, Any], caps: Iterable[str], arch: tuple[str, str],
            kernel: tuple[int, ...], x32: bool = True) -> dict[str, Any]:
    """``profile`` resolved for a container with bounding set ``caps`` on ``arch``:
    the OCI spec's linux.seccomp. ``x32``: whether the kernel runs x32 programs;
    without it SCMP_ARCH_X32 is left out, which changes nothing for any program
    that can run here (an x32 binary cannot) and spares runc a third of the
    filter it compiles at every Start (bench/RESULTS.md, "Seccomp")."""
    capset = frozenset(caps)
    go_arch, scmp_arch = arch
    seccomp: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(profile.get("architectures") or ())
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == scmp_arch:
            architectures = [scmp_arch, *(entry.get("subArchitectures") or ())]
            break
    if not x32:
        architectures = [a for a in architectures if a != "SCMP_ARCH_X32"]
    if architectures:
        seccomp["architectures"] = architectures
    if profile.get("flags"):
        seccomp["flags"] = list(profile["flags"])
    syscalls = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, capset, go_arch, kernel):
            continue
        names = list(rule.get("names") or ()) or ([rule["name"]] if rule.get("name") else [])
        if names:
            syscalls.append(_syscall(names, rule))
    seccomp["syscalls"] = syscalls
    return seccomp


@functools.lru_cache(maxsize=64)
def _default_for(caps: frozenset[str], path: Path) -> str:
    # Kept as JSON text: each caller gets its own copy to put in a spec.
    resolved = convert(_load(path), caps, host_arch(), _kernel_version(os.uname().release),
                       kernel_runs_x32())
    return json.dumps(resolved)


def default_profile(caps: Iterable[str], path: Path = PROFILE_PATH) -> dict[str, Any]:
    """The default profile's linux.seccomp for a container with bounding set ``caps``."""
    result: dict[str, Any] = json.loads(_default_for(frozenset(caps), path))
    return result
