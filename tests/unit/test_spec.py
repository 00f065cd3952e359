"""pyctrd.oci.spec.build_spec: the OCI config.json."""

from pathlib import Path

from pyctrd.oci.spec import (
    CPU_PERIOD,
    DEFAULT_CAPS,
    DEFAULT_PATH,
    SpecInput,
    build_spec,
    host_devices,
)

CID = "c" * 64


def spec_input(**overrides) -> SpecInput:
    fields = {
        "cid": CID, "rootfs": Path("/run/pyctrd/x/merged"), "args": ["/bin/sh", "-c", "true"],
        "env": ["PATH=/bin", "A=1"], "cwd": "/srv", "uid": 1000, "gid": 1001,
        "hostname": "box", "shm_dir": Path("/run/pyctrd/x/shm"),
    }
    fields.update(overrides)
    return SpecInput(**fields)


def namespaces(spec) -> list[str]:
    return [ns["type"] for ns in spec["linux"]["namespaces"]]


def mount_at(spec, destination):
    found = [m for m in spec["mounts"] if m["destination"] == destination]
    assert len(found) == 1, found
    return found[0]


def test_basics():
    spec = build_spec(spec_input())
    assert spec["ociVersion"].startswith("1.")
    proc = spec["process"]
    assert proc["args"] == ["/bin/sh", "-c", "true"]
    assert proc["env"] == ["PATH=/bin", "A=1"]
    assert proc["cwd"] == "/srv"
    assert proc["user"] == {"uid": 1000, "gid": 1001}
    assert proc["terminal"] is False
    assert spec["root"] == {"path": "/run/pyctrd/x/merged", "readonly": False}
    assert spec["hostname"] == "box"
    assert spec["linux"]["cgroupsPath"].endswith(CID)
    assert mount_at(spec, "/dev/shm")["source"] == "/run/pyctrd/x/shm"
    assert {"/proc", "/dev", "/dev/pts", "/sys"} <= {m["destination"] for m in spec["mounts"]}


def test_no_resources_by_default():
    res = build_spec(spec_input())["linux"]["resources"]
    assert "memory" not in res and "cpu" not in res and "pids" not in res
    assert res["devices"] == [{"allow": False, "access": "rwm"}]


def test_resources():
    spec = build_spec(spec_input(memory_limit=256 << 20, cpu_quota=0.5, pids_limit=100))
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 256 << 20}
    assert res["cpu"] == {"quota": 50000, "period": 100000}
    assert CPU_PERIOD == 100000
    assert res["pids"] == {"limit": 100}


def test_cpu_quota_two_and_a_half():
    res = build_spec(spec_input(cpu_quota=2.5))["linux"]["resources"]
    assert res["cpu"] == {"quota": 250000, "period": 100000}
    assert type(res["cpu"]["quota"]) is int


def test_network_namespace():
    assert "network" in namespaces(build_spec(spec_input()))
    host = namespaces(build_spec(spec_input(network_host=True)))
    assert "network" not in host
    assert {"pid", "ipc", "uts", "mount"} <= set(host)


def test_no_new_privileges():
    assert build_spec(spec_input())["process"]["noNewPrivileges"] is False
    assert build_spec(spec_input(no_new_privileges=True))["process"]["noNewPrivileges"] is True


def test_read_only_root():
    assert build_spec(spec_input(read_only=True))["root"]["readonly"] is True


def test_user_bind_mount_gets_rbind():
    spec = build_spec(spec_input(mounts=[("/host/data", "/data", "ro"),
                                         ("/host/other", "/other", ""),
                                         ("/host/b", "/b", "bind,rw")]))
    data = mount_at(spec, "/data")
    assert data["type"] == "bind"
    assert data["source"] == "/host/data"
    assert data["options"] == ["ro", "rbind"]
    assert mount_at(spec, "/other")["options"] == ["rbind"]
    assert mount_at(spec, "/b")["options"] == ["bind", "rw"]
    # user mounts come after the defaults, so they may cover them
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests.index("/data") > dests.index("/sys")


def test_terminal_adds_term():
    spec = build_spec(spec_input(terminal=True))
    assert spec["process"]["terminal"] is True
    assert "TERM=xterm" in spec["process"]["env"]


def test_terminal_keeps_callers_term():
    env = build_spec(spec_input(terminal=True, env=["TERM=vt100"]))["process"]["env"]
    assert [e for e in env if e.startswith("TERM=")] == ["TERM=vt100"]


def test_no_term_without_terminal():
    env = build_spec(spec_input())["process"]["env"]
    assert not any(e.startswith("TERM=") for e in env)


def test_path_added_when_missing():
    env = build_spec(spec_input(env=["A=1"]))["process"]["env"]
    assert env == [f"PATH={DEFAULT_PATH}", "A=1"]


def test_input_env_not_mutated():
    inp = spec_input(env=["A=1"], terminal=True)
    build_spec(inp)
    assert inp.env == ["A=1"]


def test_empty_cwd_is_root():
    assert build_spec(spec_input(cwd=""))["process"]["cwd"] == "/"


def test_annotations():
    spec = build_spec(spec_input(annotations={"org.example": "1"}))
    assert spec["annotations"] == {"org.example": "1"}


# confinement (issue 13)


def test_default_container_is_filtered_masked_and_limited():
    spec = build_spec(spec_input())
    linux = spec["linux"]
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert linux["seccomp"]["syscalls"]
    assert linux["maskedPaths"] and linux["readonlyPaths"]
    assert "devices" not in linux
    assert linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "ro" in mount_at(spec, "/sys")["options"]
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == DEFAULT_CAPS
    limits = {r["type"]: (r["soft"], r["hard"]) for r in spec["process"]["rlimits"]}
    assert set(limits) == {"RLIMIT_NOFILE", "RLIMIT_NPROC"}


def test_unconfined_has_no_seccomp():
    assert "seccomp" not in build_spec(spec_input(seccomp="unconfined"))["linux"]


def test_profile_follows_the_capabilities():
    def allowed(spec):
        return {n for c in spec["linux"]["seccomp"]["syscalls"]
                if c["action"] == "SCMP_ACT_ALLOW" for n in c["names"]}
    plain = build_spec(spec_input())
    admin = build_spec(spec_input(capabilities=[*DEFAULT_CAPS, "CAP_SYS_ADMIN"]))
    assert "perf_event_open" not in allowed(plain)
    assert "perf_event_open" in allowed(admin)
    assert admin["process"]["capabilities"]["effective"][-1] == "CAP_SYS_ADMIN"


def test_privileged_gets_host_devices_and_nothing_masked(tmp_path):
    spec = build_spec(spec_input(privileged=True, seccomp="unconfined",
                                 capabilities=["CAP_SYS_ADMIN"]))
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    null = [d for d in linux["devices"] if d["path"] == "/dev/null"]
    assert null == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                     "fileMode": null[0]["fileMode"], "uid": 0, "gid": 0}]
    assert not any(d["path"].startswith(("/dev/pts/", "/dev/shm/")) for d in linux["devices"])
    assert "rw" in mount_at(spec, "/sys")["options"]


def test_host_devices_walk_is_bounded_and_skips_what_runc_makes(tmp_path):
    (tmp_path / "pts").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "plain").write_text("")
    (tmp_path / "link").symlink_to("/dev/null")
    assert host_devices(tmp_path) == []
    assert len(host_devices(Path("/dev"), max_entries=3)) <= 3


def test_ulimits_given_are_the_spec_rlimits():
    spec = build_spec(spec_input(ulimits=[("core", 0, 0), ("nofile", 64, 128)]))
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128}]
