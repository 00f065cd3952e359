"""pyctrd.oci.spec.build_spec: the OCI config.json."""

from pathlib import Path

from pyctrd.oci.spec import CPU_PERIOD, DEFAULT_PATH, SpecInput, build_spec

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
