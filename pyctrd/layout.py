"""Where pyctrd keeps things: persistent state under root, per-boot under run_root."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path
    run_root: Path

    @property
    def database(self) -> Path:
        return self.root / "pyctrd.db"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def runtime_root(self) -> Path:
        return self.run_root / "runtime"

    @property
    def exits(self) -> Path:
        return self.run_root / "exits"

    @property
    def sockets(self) -> Path:
        return self.run_root / "sockets"

    def layer(self, layer_id: str) -> Path:
        return self.layers / layer_id

    def container_dir(self, cid: str) -> Path:
        """Persistent: the overlay upper/work dirs, the mountpoint and the log."""
        return self.root / "containers" / cid

    def bundle(self, cid: str) -> Path:
        """Per boot: the OCI bundle, conmon's pid files, FIFOs and attach socket."""
        return self.run_root / "containers" / cid

    def rootfs_mountpoint(self, cid: str) -> Path:
        """Where the container's overlay is mounted (storage.rootfs's ``merged``)."""
        return self.container_dir(cid) / "merged"

    def shm_dir(self, cid: str) -> Path:
        """The container's /dev/shm tmpfs: per boot, as a tmpfs is."""
        return self.bundle(cid) / "shm"

    def exit_file(self, cid: str) -> Path:
        return self.exits / cid

    def log_file(self, cid: str) -> Path:
        return self.container_dir(cid) / "ctr.log"

    def create_dirs(self) -> None:
        for d in (self.root, self.layers, self.tmp, self.root / "containers"):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.run_root, self.runtime_root, self.exits, self.sockets,
                  self.run_root / "containers"):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
