"""pyctrd.oci.seccomp: containers-common's profile resolved for one container."""

import json
import time
from pathlib import Path

import pytest

from pyctrd.errors import NotSupported
from pyctrd.oci import seccomp
from pyctrd.oci.capabilities import DEFAULT_CAPS

AMD64 = ("amd64", "SCMP_ARCH_X86_64")
KERNEL = (6, 1, 0)

PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [],
         "includes": {}, "excludes": {}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
         "includes": {}, "excludes": {}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}, "excludes": {}},
        {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["arm", "arm64"]}, "excludes": {}},
        {"names": ["perf_event_open"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN"]}, "excludes": {}},
        {"names": ["perf_event_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "includes": {}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["new_call"], "action": "SCMP_ACT_ALLOW",
         "includes": {"minKernel": "6.5"}, "excludes": {}},
        {"names": ["old_call"], "action": "SCMP_ACT_ALLOW",
         "includes": {}, "excludes": {"minKernel": "5.10"}},
        {"name": "single", "action": "SCMP_ACT_ALLOW"},
    ],
}


def names(converted) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for call in converted["syscalls"]:
        for name in call["names"]:
            found.setdefault(name, []).append(call)
    return found


def test_default_action_errno_and_architectures_from_the_arch_map():
    out = seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, KERNEL)
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    assert out["defaultErrnoRet"] == 38
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    arm = seccomp.convert(PROFILE, DEFAULT_CAPS, ("arm64", "SCMP_ARCH_AARCH64"), KERNEL)
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_rules_resolved_by_architecture():
    amd = names(seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, KERNEL))
    assert "arch_prctl" in amd and "set_tls" not in amd
    arm = names(seccomp.convert(PROFILE, DEFAULT_CAPS, ("arm64", "SCMP_ARCH_AARCH64"), KERNEL))
    assert "set_tls" in arm and "arch_prctl" not in arm


def test_rules_resolved_by_capability():
    plain = names(seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, KERNEL))
    assert [c["action"] for c in plain["perf_event_open"]] == ["SCMP_ACT_ERRNO"]
    assert plain["perf_event_open"][0]["errnoRet"] == 1
    admin = names(seccomp.convert(PROFILE, [*DEFAULT_CAPS, "CAP_SYS_ADMIN"], AMD64, KERNEL))
    assert [c["action"] for c in admin["perf_event_open"]] == ["SCMP_ACT_ALLOW"]


def test_rules_resolved_by_kernel_version():
    old = names(seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, (5, 4, 0)))
    assert "old_call" in old and "new_call" not in old
    new = names(seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, (6, 18, 44)))
    assert "new_call" in new and "old_call" not in new


def test_args_and_single_names_carry_over():
    out = names(seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, KERNEL))
    assert out["personality"][0]["args"] == [
        {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]
    assert "args" not in out["read"][0]
    assert out["single"][0]["names"] == ["single"]


def test_kernel_release_parsing():
    assert seccomp._kernel_version("6.18.44-fc-v782") == (6, 18, 44)
    assert seccomp._kernel_version("5.10") == (5, 10)
    assert seccomp._kernel_version("6.1.0-13-amd64") == (6, 1, 0)


def test_a_missing_profile_is_not_supported(tmp_path):
    with pytest.raises(NotSupported, match="golang-github-containers-common"):
        seccomp.ensure_available(tmp_path / "nosuch.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(NotSupported, match="defaultAction"):
        seccomp.ensure_available(bad)


@pytest.fixture
def debian_profile() -> Path:
    if not seccomp.PROFILE_PATH.exists():
        pytest.skip(f"{seccomp.PROFILE_PATH} is not installed (golang-github-containers-common)")
    return seccomp.PROFILE_PATH


def test_debian_profile_refuses_what_podman_refuses(debian_profile):
    """The four calls of issue 13: none allowed for a default container."""
    out = seccomp.default_profile(DEFAULT_CAPS, debian_profile)
    allowed = {n for call in out["syscalls"] if call["action"] == "SCMP_ACT_ALLOW"
               and not call.get("args") for n in call["names"]}
    assert out["defaultAction"] == "SCMP_ACT_ERRNO"
    for name in ("add_key", "perf_event_open", "io_uring_setup", "request_key"):
        assert name not in allowed
    personality = [c for c in out["syscalls"] if "personality" in c["names"]]
    assert personality and all(c.get("args") for c in personality)
    assert 0x0400000 not in {a["value"] for c in personality for a in c["args"]}
    assert {"read", "write", "execve", "clone"} <= allowed


def test_debian_profile_follows_cap_add(debian_profile):
    admin = seccomp.default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN"], debian_profile)
    allowed = {n for call in admin["syscalls"] if call["action"] == "SCMP_ACT_ALLOW"
               for n in call["names"]}
    assert {"perf_event_open", "bpf", "mount"} <= allowed


def test_conversion_is_cached_per_capability_set(debian_profile):
    seccomp._default_for.cache_clear()
    start = time.perf_counter()
    first = seccomp.default_profile(DEFAULT_CAPS, debian_profile)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(100):
        again = seccomp.default_profile(list(reversed(DEFAULT_CAPS)), debian_profile)
    warm = (time.perf_counter() - start) / 100
    assert again == first
    assert seccomp._default_for.cache_info().misses == 1
    again["syscalls"].clear()  # a caller's copy is its own
    assert seccomp.default_profile(DEFAULT_CAPS, debian_profile)["syscalls"]
    assert warm < 0.002, f"a cached profile took {warm * 1e3:.2f} ms (cold {cold * 1e3:.2f})"
    json.dumps(first)  # goes into config.json as it is


def test_x32_left_out_where_the_kernel_cannot_run_it():
    out = seccomp.convert(PROFILE, DEFAULT_CAPS, AMD64, KERNEL, x32=False)
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]


def test_x32_probe_agrees_with_the_kernel_config():
    config = Path("/proc/config.gz")
    if not config.exists():
        pytest.skip("no /proc/config.gz")
    import gzip
    text = gzip.decompress(config.read_bytes()).decode()
    assert seccomp.kernel_runs_x32() == ("CONFIG_X86_X32_ABI=y" in text)
