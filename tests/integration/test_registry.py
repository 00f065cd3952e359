"""Pull from a real registry (Debian's docker-registry on 127.0.0.1) through skopeo:
by tag and digest, layer reuse, progress, cancel, errors, credentials."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Variant
from support.registry import Registry, build_layered

from .cli_support import ok, pyctr
from .test_api_contract import XML_DIR, describe

pytestmark = pytest.mark.skipif(
    not (shutil.which("docker-registry") and shutil.which("skopeo") and shutil.which("umoci")
         and shutil.which("htpasswd")),
    reason="needs docker-registry, skopeo, umoci, htpasswd (make deps installs them)")

JOB = "org.pyctrd1.Job"
IMAGE = "org.pyctrd1.Image"
ERROR = "org.pyctrd1.Error."
USER, PASSWORD = "tester", "s3cret-Pa55word-xyzzy"


@pytest.fixture(scope="module")
def layout(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_layered(busybox_tar, tmp_path_factory.mktemp("layered"), [
        {"etc/second": b"second layer\n"},
        {"etc/third": os.urandom(1 << 20)},  # incompressible: progress has bytes to see
    ])


@pytest.fixture(scope="module")
def registry(layout: Path, tmp_path_factory: pytest.TempPathFactory):
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    try:
        reg.push(f"oci:{layout}:base", "test/base:v1")
        reg.push(f"oci:{layout}:top", "test/three:v1")
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def secure(layout: Path, tmp_path_factory: pytest.TempPathFactory):
    reg = Registry(tmp_path_factory.mktemp("secure"), tls=True, user=USER,
                   password=PASSWORD).start()
    try:
        reg.push(f"oci:{layout}:base", "test/base:v1", f"{USER}:{PASSWORD}")
        yield reg
    finally:
        reg.stop()


def opts(**values: Any) -> dict[str, Variant]:
    sig = {"tls_verify": "b", "credentials": "s", "platform": "s"}
    return {k: Variant(sig[k], v) for k, v in values.items()}


async def pull(bus, reference: str, **options: Any) -> str:
    (job,) = await bus.manager("PullImage", "sa{sv}", [reference, opts(**options)])
    return str(job)


async def wait_job(bus, job: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        props = await bus.get_all(job, JOB)
        if props["State"] != "running":
            return props
        assert time.monotonic() < deadline, f"job {job} still running: {props}"
        await asyncio.sleep(0.05)


async def pulled(bus, reference: str, **options: Any) -> dict[str, Any]:
    props = await wait_job(bus, await pull(bus, reference, **options))
    assert props["State"] == "completed", props
    image_id = props["Image"].rsplit("/", 1)[-1]
    bus.imported.append(image_id)
    return props


async def test_pull_by_tag_then_by_digest(bus, registry):
    ref = f"{registry.host}/test/base:v1"
    recorder = await bus.recorder()
    props = await pulled(bus, ref, tls_verify=False)
    assert props["Progress"] == 1.0 and props["Kind"] == "pull" and props["Error"] == ""
    assert props["FinishedTimestamp"] >= props["CreatedTimestamp"] > 0
    job = await recorder.wait_for(lambda m: m.member == "InterfacesAdded"
                                  and m.body[1].get(JOB) is not None)
    assert job.body[0].startswith("/org/pyctrd1/job/")
    await recorder.wait_property(job.body[0], "State", "completed", iface=JOB)
    image = props["Image"]
    assert await bus.get_property(image, IMAGE, "Reference") == ref
    assert ref in await bus.get_property(image, IMAGE, "References")
    (jobs,) = await bus.manager("ListJobs")
    assert job.body[0] in jobs
    (live,) = await bus.call(job.body[0], "org.freedesktop.DBus.Introspectable", "Introspect")
    assert describe(live, JOB) == describe((XML_DIR / f"{JOB}.xml").read_text(), JOB)

    digest = registry.manifest_digest("test/base:v1")
    assert await bus.get_property(image, IMAGE, "Digest") == digest
    before = registry.blob_gets()
    again = await pulled(bus, f"{registry.host}/test/base@{digest}", tls_verify=False)
    assert again["Image"] == image  # the same image, named by its digest too
    assert registry.blob_gets() == before  # nothing fetched again


async def test_three_layers_fetch_only_what_is_missing(bus, registry, daemon):
    await pulled(bus, f"{registry.host}/test/base:v1", tls_verify=False)
    base_blob = (await bus.get_all((await bus.manager(
        "GetImage", "s", [f"{registry.host}/test/base:v1"]))[0], IMAGE))["Digest"]
    assert base_blob
    before = registry.blob_gets()
    recorder = await bus.recorder()
    job = await pull(bus, f"{registry.host}/test/three:v1", tls_verify=False)
    props = await wait_job(bus, job)
    assert props["State"] == "completed", props
    bus.imported.append(props["Image"].rsplit("/", 1)[-1])
    # two new layers and the config: the base layer came from the store
    assert registry.blob_gets() - before == 3
    layers = await bus.get_property(props["Image"], IMAGE, "Layers")
    assert len(layers) == 3
    assert props["Progress"] == 1.0 and props["BytesDone"] == props["BytesTotal"] > 1 << 20
    progress = [c["Progress"] for c in recorder.changes(job, JOB) if "Progress" in c]
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    path = await bus.run(["cat", "/etc/second"], image=f"{registry.host}/test/three:v1")
    assert await bus.ctr(path, "Wait") == [0]


@pytest.fixture(scope="module")
def big_image(busybox_tar: Path, registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image with a 48 MB incompressible layer: a pull long enough to cancel."""
    layout = build_layered(busybox_tar, tmp_path_factory.mktemp("big"),
                           [{"big": os.urandom(48 << 20)}])
    return registry.push(f"oci:{layout}:top", "test/big:v1")


async def test_cancel_leaves_nothing(bus, registry, daemon, big_image):
    images_before = set(os.listdir(daemon.root / "layers"))
    (count,) = [await bus.manager_prop("ImageCount")]
    job = await pull(bus, big_image, tls_verify=False)
    deadline = time.monotonic() + 30
    while not await bus.get_property(job, JOB, "BytesTotal"):  # the transfer has begun
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    await bus.call(job, JOB, "Cancel")
    props = await wait_job(bus, job)
    assert props["State"] == "cancelled", props
    assert props["Error"].startswith(ERROR + "Cancelled:")
    assert await bus.manager_prop("ImageCount") == count
    assert set(os.listdir(daemon.root / "layers")) == images_before
    deadline = time.monotonic() + 10
    while [p for p in os.listdir(daemon.root / "tmp") if p.startswith("pull-")]:
        assert time.monotonic() < deadline, os.listdir(daemon.root / "tmp")
        await asyncio.sleep(0.05)
    assert not [c for c in _cmdlines() if "skopeo" in c and "test/big" in c]
    # and the next pull of it works
    props = await pulled(bus, big_image, tls_verify=False)
    assert props["BytesDone"] >= 48 << 20


def _cmdlines() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                    errors="replace"))
    return found


@pytest.mark.parametrize("what", ["missing tag", "registry down", "bad reference"])
async def test_errors(bus, registry, what):
    if what == "bad reference":
        err = await bus.fails(pull(bus, "UPPER/case::x"))
        assert err.type == ERROR + "InvalidArgument"
        return
    ref = {"missing tag": f"{registry.host}/test/base:nope",
           "registry down": "127.0.0.1:1/test/base:v1"}[what]
    props = await wait_job(bus, await pull(bus, ref, tls_verify=False))
    assert props["State"] == "failed"
    name, _, message = props["Error"].partition(": ")
    assert name == ERROR + "RegistryFailed"
    expected = {"missing tag": "has no image", "registry down": "could not be reached"}
    assert expected[what] in message, message


async def test_credentials_and_tls(bus, secure, daemon):
    ref = f"{secure.host}/test/base:v1"
    props = await wait_job(bus, await pull(bus, ref))  # the test CA is unknown
    assert "TLS verification" in props["Error"], props["Error"]
    props = await wait_job(bus, await pull(bus, ref, tls_verify=False,
                                           credentials=f"{USER}:wrong"))
    assert "refused the credentials" in props["Error"], props["Error"]

    seen: list[str] = []
    stop = asyncio.Event()

    async def watch_cmdlines() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    with contextlib.suppress(OSError):
                        seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                            errors="replace"))
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch_cmdlines())
    try:
        props = await pulled(bus, ref, tls_verify=False, credentials=f"{USER}:{PASSWORD}")
    finally:
        stop.set()
        await watcher
    assert any("skopeo" in c for c in seen)
    assert not [c for c in seen if PASSWORD in c]
    assert PASSWORD not in daemon.log_path.read_text(errors="replace")
    assert not [p for p in os.listdir(daemon.root / "tmp") if p.startswith("auth-")]


async def test_push_then_pull_back(bus, registry, daemon):
    props = await pulled(bus, f"{registry.host}/test/three:v1", tls_verify=False)
    image = props["Image"]
    image_id = image.rsplit("/", 1)[-1]
    (job,) = await bus.call(image, IMAGE, "Push", "sa{sv}",
                            [f"{registry.host}/test/pushed:v2", opts(tls_verify=False)])
    pushed = await wait_job(bus, job)
    assert pushed["State"] == "completed" and pushed["Kind"] == "push", pushed
    assert pushed["Image"] == image and pushed["Progress"] == 1.0
    await bus.manager("RemoveImage", "sb", [image_id, True])
    back = await pulled(bus, f"{registry.host}/test/pushed:v2", tls_verify=False)
    assert back["Image"] == image  # the same config, so the same ID


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
async def test_save_then_import_gives_the_same_id(bus, registry, tmp_path, fmt):
    props = await pulled(bus, f"{registry.host}/test/three:v1", tls_verify=False)
    image = props["Image"]
    image_id = image.rsplit("/", 1)[-1]
    archive = tmp_path / "saved.tar"
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        await bus.call(image, IMAGE, "Save", "hs", [0, fmt], [fd])
    finally:
        os.close(fd)
    await bus.manager("RemoveImage", "sb", [image_id, True])
    again_id, again_path = await bus.import_image(archive, "")
    assert (again_id, again_path) == (image_id, image)
    path = await bus.run(["cat", "/etc/second"], image=image_id)
    assert await bus.ctr(path, "Wait") == [0]
    null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    try:
        err = await bus.fails(bus.call(image, IMAGE, "Save", "hs", [0, "tarball"], [null]))
    finally:
        os.close(null)
    assert err.type == ERROR + "InvalidArgument"


async def test_tag_and_untag(bus, registry):
    props = await pulled(bus, f"{registry.host}/test/base:v1", tls_verify=False)
    image = props["Image"]
    await bus.call(image, IMAGE, "Tag", "s", ["localhost/extra:one"])
    refs = await bus.get_property(image, IMAGE, "References")
    assert "localhost/extra:one" in refs
    (found,) = await bus.manager("GetImage", "s", ["localhost/extra:one"])
    assert found == image
    await bus.call(image, IMAGE, "Untag", "s", ["localhost/extra:one"])
    assert "localhost/extra:one" not in await bus.get_property(image, IMAGE, "References")
    err = await bus.fails(bus.call(image, IMAGE, "Untag", "s", ["localhost/never:was"]))
    assert err.type == ERROR + "InvalidArgument"


def test_pyctr_pull_save_tag_untag_and_run_pulls(daemon, registry, tmp_path):
    address = daemon.bus_address
    ref = f"{registry.host}/test/three:v1"
    image_id = ok(address, "pull", "--tls-verify=false", "-q", ref).strip()
    assert len(image_id) == 64
    try:
        ok(address, "tag", ref, "localhost/cli:tagged")
        assert image_id in ok(address, "images", "-q", "--no-trunc", "localhost/cli:tagged")
        ok(address, "untag", image_id, "localhost/cli:tagged")
        assert image_id not in ok(address, "images", "-q", "--no-trunc", "localhost/cli:tagged")
        archive = tmp_path / "cli.tar"
        ok(address, "save", "--format", "docker-archive", "-o", str(archive), ref)
        assert archive.stat().st_size > 1 << 20
        ok(address, "rmi", "-f", image_id)
        # run: the image is not there, so it is pulled first (podman's --pull=missing)
        out = ok(address, "run", "--rm", "--tls-verify=false", ref, "cat", "/etc/second")
        assert out == "second layer\n"
        assert image_id in ok(address, "images", "-q", "--no-trunc")
        never = pyctr(address, "run", "--rm", "--pull=never", f"{registry.host}/test/base:nope",
                      "true")
        assert never.returncode == 125 and "pulling" not in never.stderr, never.stderr
    finally:
        pyctr(address, "rmi", "-f", image_id)


async def test_commit_sees_created_and_deleted_files(bus, registry):
    props = await pulled(bus, f"{registry.host}/test/three:v1", tls_verify=False)
    base = props["Image"].rsplit("/", 1)[-1]
    script = ("mkdir -p /data && echo made > /data/new && rm /etc/second && "
              "touch /ready && sleep 30")
    path = await bus.run(["sh", "-c", script], image=base)
    ready = Path(await bus.prop(path, "Mountpoint")) / "ready"
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    err = await bus.fails(bus.ctr(path, "Commit", "sa{sv}", ["localhost/committed:1",
                                  {"changes": Variant("as", ["BOGUS x"])}]))
    assert err.type == ERROR + "InvalidArgument"
    recorder = await bus.recorder()
    (job,) = await bus.ctr(path, "Commit", "sa{sv}", ["localhost/committed:1", {
        "changes": Variant("as", ["ENV COMMITTED=yes", "WORKDIR /data",
                                  'CMD ["cat", "new"]']),
        "message": Variant("s", "a test commit")}])
    props = await wait_job(bus, job)
    assert props["State"] == "completed" and props["Kind"] == "commit", props
    # paused while its changes were read, then running again
    await recorder.wait_property(path, "State", "paused")
    assert await bus.state(path) == "running"
    image = props["Image"]
    bus.imported.append(image.rsplit("/", 1)[-1])
    assert await bus.get_property(image, IMAGE, "Reference") == "localhost/committed:1"
    assert len(await bus.get_property(image, IMAGE, "Layers")) == 4
    assert "COMMITTED=yes" in await bus.get_property(image, IMAGE, "Env")
    await bus.ctr(path, "Kill", "s", ["KILL"])
    child = await bus.run([], image="localhost/committed:1")
    assert await bus.ctr(child, "Wait") == [0]
    check = await bus.run(["sh", "-c", "test ! -e /etc/second && test -e /etc/third && "
                           "test \"$(cat /data/new)\" = made && test $COMMITTED = yes"],
                          image="localhost/committed:1")
    assert await bus.ctr(check, "Wait") == [0]


def test_varlink_pull_watch_tag_and_errors(daemon, registry, bus):
    from .test_varlink import cli, socket_of

    sock = socket_of(daemon)
    ref = f"{registry.host}/test/base:v1"
    started = cli(sock, "io.pyctrd.Job.Pull", {"reference": ref, "tls_verify": False}).reply
    job = started["job"]
    assert job["kind"] == "pull" and job["state"] in ("running", "completed")
    watched = cli(sock, "io.pyctrd.Job.Watch", {"id": job["id"]}, more=True)
    assert watched.error is None, watched.error
    last = watched.replies[-1]["job"]
    assert last["state"] == "completed" and last["progress"] == 1.0, watched.replies
    image_id = last["image_id"]
    assert len(image_id) == 64
    listed = cli(sock, "io.pyctrd.Job.List").reply["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    assert cli(sock, "io.pyctrd.Image.Tag",
               {"reference": image_id, "new_reference": "localhost/vl:1"}).ok()
    info = cli(sock, "io.pyctrd.Image.Get", {"reference": "localhost/vl:1"}).reply["image"]
    assert "localhost/vl:1" in info["references"]
    assert cli(sock, "io.pyctrd.Image.Untag",
               {"reference": image_id, "name": "localhost/vl:1"}).ok()
    bad = cli(sock, "io.pyctrd.Job.Pull", {"reference": "Bad Ref"})
    assert bad.error_name() == "InvalidArgument"
    missing = cli(sock, "io.pyctrd.Job.Get", {"id": "999999"})
    assert missing.error_name() == "NoSuchJob"
    failed = cli(sock, "io.pyctrd.Job.Pull", {"reference": f"{registry.host}/test/no:such",
                                              "tls_verify": False}).reply["job"]
    end = cli(sock, "io.pyctrd.Job.Watch", {"id": failed["id"]}, more=True).replies[-1]["job"]
    assert end["state"] == "failed" and "RegistryFailed" in end["error"]
    bus.imported.append(image_id)
