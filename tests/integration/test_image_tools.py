"""Images made by real tools: umoci builds two layers, skopeo saves OCI and docker archives."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_images import IMAGE, IMAGE_CONFIG, check_layered_image

pytestmark = pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("skopeo")),
                                reason="needs umoci and skopeo (make deps installs them)")


def run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, timeout=120, capture_output=True)


@pytest.fixture(scope="module")
def tool_archives(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, Path]:
    """(oci-archive, docker-archive) of: busybox, then a layer deleting /etc/hostname."""
    work = tmp_path_factory.mktemp("umoci")
    image = f"{work / 'layout'}:test"
    run("umoci", "init", "--layout", work / "layout")
    run("umoci", "new", "--image", image)
    run("umoci", "unpack", "--image", image, work / "b1")
    run("tar", "-xf", busybox_tar, "-C", work / "b1/rootfs")
    run("umoci", "repack", "--image", image, work / "b1")
    run("umoci", "unpack", "--image", image, work / "b2")
    os.unlink(work / "b2/rootfs/etc/hostname")
    (work / "b2/rootfs/etc/layer2").write_text("second layer\n")
    run("umoci", "repack", "--image", image, work / "b2")
    config = ["--config.workingdir", IMAGE_CONFIG["WorkingDir"]]
    for key, flag in (("Entrypoint", "--config.entrypoint"), ("Cmd", "--config.cmd"),
                      ("Env", "--config.env")):
        for value in IMAGE_CONFIG[key]:
            config += [flag, value]
    run("umoci", "config", "--image", image, *config)
    oci, docker = work / "oci.tar", work / "docker.tar"
    run("skopeo", "copy", f"oci:{image}", f"oci-archive:{oci}")
    run("skopeo", "copy", f"oci:{image}", f"docker-archive:{docker}:localhost/tools:test")
    return oci, docker


async def test_umoci_image_as_oci_and_docker_archive(bus, daemon, tool_archives):
    oci, docker = tool_archives
    layers_before = set(os.listdir(daemon.root / "layers"))
    oci_id, oci_path = await bus.import_image(oci, "tools-oci")
    await check_layered_image(bus, oci_id, oci_path, "tools-oci")
    layers = await bus.get_property(oci_path, IMAGE, "Layers")
    after_oci = set(os.listdir(daemon.root / "layers"))
    assert after_oci - layers_before == set(layers)
    inode = os.lstat(daemon.root / "layers" / layers[1] / "diff/etc/layer2").st_ino

    docker_id, docker_path = await bus.import_image(docker, "tools-docker")
    # the same config, so the same image; only a new reference
    assert (docker_id, docker_path) == (oci_id, oci_path)
    await check_layered_image(bus, docker_id, docker_path, "tools-docker")
    (found,) = await bus.manager("GetImage", "s", ["tools-oci"])
    assert found == oci_path
    assert set(os.listdir(daemon.root / "layers")) == after_oci
    assert os.lstat(daemon.root / "layers" / layers[1] / "diff/etc/layer2").st_ino == inode

    await bus.manager("RemoveImage", "sb", [oci_id, True])  # and its containers
    assert set(os.listdir(daemon.root / "layers")) == layers_before
