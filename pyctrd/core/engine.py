"""The Engine: every container and image, their lookup, creation and removal.

Front ends (the operations layer, tests) drive it with plain Python calls and
hear of changes through an EngineListener. It holds the adapters the core
runs on (core/ports.py): the real ones by default, fakes in unit tests.
"""

import asyncio
import gc
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyctrd import __version__
from pyctrd.core.cgroupoptions import refuse_without_cgroup
from pyctrd.core.config import build_config
from pyctrd.core.container import Container, ContainerEnv, ContainerStatus
from pyctrd.core.events import EventLog, EventRecorder
from pyctrd.core.exec import ExecSessions, StopsSessions
from pyctrd.core.faults import checkpoint
from pyctrd.core.guarded import GuardedMonitor, GuardedRuntime, GuardedStorage, failing_as
from pyctrd.core.health import HealthChecks
from pyctrd.core.image import Image
from pyctrd.core.images import ImageCatalogue, unique_prefix
from pyctrd.core.jobs import Jobs
from pyctrd.core.listening import EngineListener
from pyctrd.core.networks import (
    MODE_BRIDGE,
    MODE_HOST,
    MODE_NONE,
    MODE_PASTA,
    Network,
    Networks,
)
from pyctrd.core.pastanet import (
    NO_USER_NETWORKS,
    PastaNetworks,
    refuse_pasta_as_root,
    rootless_options,
)
from pyctrd.core.ports import MonitorPort, NetworkPort, OCIRuntimePort, PastaPort, RootfsPort
from pyctrd.core.records import RecordDecoder
from pyctrd.core.recovering import RecoveryGate
from pyctrd.core.recovery import Recovery
from pyctrd.core.restart import RestartSupervisor
from pyctrd.core.stagingsweep import StagingSweeper
from pyctrd.core.state import ACTIVE
from pyctrd.core.transfers import Transfers
from pyctrd.core.volumes import Volume, Volumes, anonymous_mounts, chown_new, delete_tree
from pyctrd.database import Database
from pyctrd.errors import (
    Exists,
    InUse,
    InvalidArgument,
    NoSuchContainer,
    NotSupported,
    StorageFailed,
)
from pyctrd.layout import Layout
from pyctrd.network.netavark import Netavark
from pyctrd.network.pasta import Pasta
from pyctrd.oci.conmon import Conmon
from pyctrd.oci.execmon import ConmonExec
from pyctrd.oci.exitwatch import ExitWatch
from pyctrd.oci.runtime import OCIRuntime
from pyctrd.registry.skopeo import Skopeo
from pyctrd.storage.layers import LayerStore
from pyctrd.storage.rootfs import RootfsStorage

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


class Listeners:
    """Fans each event out to every front end (D-Bus, Varlink), in the order added.

    A failing listener is logged and must not keep the others from hearing.
    """

    def __init__(self) -> None:
        self._listeners: list[EngineListener] = []

    def add(self, listener: EngineListener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: EngineListener) -> None:
        self._listeners.remove(listener)

    def _each(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, event)(*args)
            except Exception:
                log.exception("a listener failed on %s", event)

    def container_added(self, container: Container) -> None:
        self._each("container_added", container)

    def container_removed(self, container: Container) -> None:
        self._each("container_removed", container)

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        self._each("container_changed", container, changes)

    def image_added(self, image: Image) -> None:
        self._each("image_added", image)

    def image_removed(self, image: Image) -> None:
        self._each("image_removed", image)

    def image_changed(self, image: Image, fields: list[str]) -> None:
        self._each("image_changed", image, fields)


class Engine:
    def __init__(self, layout: Layout, oci: OCIRuntimePort | None = None,
                 conmon: MonitorPort | None = None, *, log_size_max: int = -1,
                 storage: RootfsPort | None = None, import_max_bytes: int = 0,
                 network: NetworkPort | None = None, rootless: bool = False,
                 pasta: PastaPort | None = None) -> None:
        """``oci``, ``conmon``, ``storage`` and ``network`` default to runc (from PATH),
        conmon, overlay mounts and netavark; a test passes fakes (core/ports.py). With a
        fake runtime and no ``network``, bridge networks are unavailable."""
        layout.create_dirs()
        if oci is None:
            oci = OCIRuntime(shutil.which("runc") or "/usr/sbin/runc", layout.runtime_root)
        if conmon is None:
            if not isinstance(oci, OCIRuntime):
                raise TypeError("conmon runs a real OCI runtime: pass a monitor with a "
                                "fake runtime")
            conmon = Conmon(oci)
        storage = storage or RootfsStorage()
        # What containers and recovery use: failures come out as catalogued errors.
        guarded_oci = GuardedRuntime(oci)
        guarded_monitor = GuardedMonitor(conmon)
        guarded_storage = GuardedStorage(storage)
        self.layout = layout
        self.oci = oci
        self.rootless = rootless
        self.store = Database(layout.database)
        self.volumes = Volumes(layout.root / "volumes", self.store)  # core/volumes.py
        self.listener = Listeners()
        # The event history (GetEvents); others record through self.events.record.
        self.events = EventLog(self.store)
        self._event_recorder = EventRecorder(self.events)
        self.listener.add(self._event_recorder)
        self.containers: dict[str, Container] = {}
        self.catalogue = ImageCatalogue(layout, self.store, self.listener,
                                        import_max_bytes=import_max_bytes)
        self.images: dict[str, Image] = self.catalogue.images  # the same dict, read-only use
        self._names: dict[str, str] = {}
        self._new_boot = False
        self._boot_id = ""
        self._recovery = Recovery(layout, guarded_oci, guarded_monitor, guarded_storage)
        self._staging = StagingSweeper(layout.tmp)
        self.jobs = Jobs()
        self.transfers = Transfers(self, Skopeo(shutil.which("skopeo") or "skopeo",
                                                private_dir=layout.tmp))
        if network is None and isinstance(oci, OCIRuntime) and os.geteuid() == 0 \
                and not rootless:
            # netavark needs root; a user's own daemon has pasta instead (core/pastanet.py).
            network = Netavark(layout.run_root / "networks")
        self.pasta = PastaNetworks(layout.run_root / "netns", layout.run_root / "pasta",
                                   pasta or Pasta()) \
            if rootless and (pasta or isinstance(oci, OCIRuntime)) else None
        self.networks = Networks(layout.root / "networks", layout.run_root / "netns",
                                 network) if network is not None else None
        self._env = ContainerEnv(layout=layout, store=self.store, oci=guarded_oci,
                                 monitor=guarded_monitor, storage=guarded_storage,
                                 layer_paths=self.layer_paths, listener=self,
                                 log_size_max=log_size_max, networks=self.networks,
                                 rootless=rootless, pasta=self.pasta)
        # Exec sessions (core/exec.py) end with their container: it listens for that.
        self.execs = ExecSessions(ConmonExec(oci, getattr(conmon, "path", None))
                                  if isinstance(oci, OCIRuntime) else None,
                                  layout.sockets, ExitWatch)
        self.listener.add(StopsSessions(self.execs))
        # Restart policies and auto-remove (core/restart.py): listens once recovered.
        self.restarts = RestartSupervisor(self)
        self.health = HealthChecks(self)  # core/health.py: checks through self.execs
        # Recovery runs while the daemon serves: who waits for it (core/recovering.py).
        self.recovering = RecoveryGate()
        self._recovery_task: asyncio.Task[None] | None = None

    @property
    def version(self) -> str:
        return __version__

    @property
    def oci_runtime_path(self) -> str:
        """The OCI runtime's executable (the Manager's Runtime property)."""
        return self.oci.path

    @property
    def staging_sweeper(self) -> StagingSweeper:
        """Work with staging dirs in tmp/ (imports, pulls) runs inside its importing()."""
        return self._staging

    @property
    def layer_store(self) -> LayerStore:
        return self.catalogue.layer_store

    # loading and re-adoption

    def load(self) -> None:
        """Read the store: images, then containers (recover() reconciles them)."""
        self.catalogue.load()
        self.volumes.load()
        if self.networks is not None:
            self.networks.load()
        new_boot = self._note_boot_id()
        collecting = gc.isenabled()
        # Hundreds of thousands of objects, none garbage: no collection meanwhile
        # (a third of the time at 100,000 containers).
        gc.disable()
        try:
            stored = self._load_containers()
        finally:
            if collecting:
                gc.enable()
        # Anonymous volumes whose container no record names (a crash between the two).
        self.volumes.sweep_anonymous(stored)
        self._event_recorder.seed(self.containers.values(), self.images.values())
        self._new_boot = new_boot

    def _load_containers(self) -> set[str]:
        """Every stored container; returns the IDs stored, readable or not."""
        stored: set[str] = set()
        records = RecordDecoder()  # alike records decoded once (100,000 in a second)
        for cid, name, config_text, state_text in self.store.container_texts():
            stored.add(cid)
            try:
                container = Container(records.config(cid, name, config_text),
                                      records.status(state_text), self._env)
            except Exception:
                # One unreadable record must not keep the daemon from serving the rest.
                # It stays stored (its name stays taken there) for an admin to look at.
                log.exception("container record %s cannot be read; skipped", cid)
                continue
            self.containers[container.id] = container
            self._names[container.name] = container.id
            if container.config.mounts:
                self.volumes.joined(container.id, container.config.mounts)
        return stored

    def _note_boot_id(self) -> bool:
        self._boot_id = BOOT_ID_PATH.read_text().strip()
        previous = self.store.get_meta("boot_id")
        return previous is not None and previous != self._boot_id

    def begin_recovery(self) -> "asyncio.Task[None]":
        """Reconcile every stored container with the runtime, conmon and the mount
        table, in the background: call before serving. Containers that need it are
        held until reconciled (core/recovering.py): calls on them wait meanwhile."""
        pending = self._recovery.prepare(self.containers.values(), self._new_boot)
        self.recovering.begin()
        for container in pending:
            self.recovering.hold(container)
        if self.networks is not None:
            # The leases that stand (a new boot's are void by now): recovery releases
            # those of containers that turn out stopped, as an exit does.
            self.networks.adopt(self.containers.values())
        if self.pasta is not None:
            self.pasta.adopt(self.containers.values())
        self._recovery_task = asyncio.ensure_future(self._recover(pending))
        if (pasta := self.pasta) is not None:  # a live container's pasta killed meanwhile
            self.after_recovery(lambda: pasta.revive(list(self.containers.values())))
        return self._recovery_task

    async def recover(self) -> None:
        """begin_recovery, and wait for all of it."""
        await self.begin_recovery()

    def after_recovery(self, then: Callable[[], None]) -> None:
        """Call ``then`` once recovery is over (at once if it is); not if the daemon
        stops first."""
        task = self._recovery_task
        if task is None or (task.done() and not task.cancelled()):
            then()
        elif not task.done():
            task.add_done_callback(lambda done: None if done.cancelled() else then())

    async def _recover(self, pending: list[Container]) -> None:
        try:
            await self._recovery.recover_each(pending, self._new_boot, self._recovered_one)
            self.restarts.attach(self._new_boot)  # notes the boot's starts before the boot id
            # Only now: a crash during recovery must find the new boot again.
            self.store.set_meta("boot_id", self._boot_id)
            self.execs.recover(self._with_bundles(pending))  # stopped ones: their leftovers
            self.health.attach()
        finally:
            self.recovering.finish()
        for container in [c for c in pending if c.removed]:
            for volume in self.volumes.left(container.id):  # its anonymous volumes
                await asyncio.to_thread(delete_tree, self.volumes.remove(volume))

    def _recovered_one(self, container: Container) -> None:
        if container.removed:
            # A Remove cut short by a crash, now finished.
            self.containers.pop(container.id, None)
            self._names.pop(container.name, None)
            self.listener.container_removed(container)
        else:
            self.execs.recover([container])  # its exec sessions, before any call comes
        self.recovering.release(container)

    def _with_bundles(self, recovered: list[Container]) -> list[Container]:
        """Containers not recovered that have a bundle dir (exec sessions, maybe): one
        listing of the run root, not a stat per container."""
        try:
            ids = set(os.listdir(self.layout.run_root / "containers"))
        except FileNotFoundError:
            return []
        done = {c.id for c in recovered}
        return [self.containers[cid] for cid in ids - done if cid in self.containers]

    # listener plumbing (containers report to the engine, which fans out)

    def container_changed(self, container: Container, changes: dict[str, Any]) -> None:
        self.listener.container_changed(container, changes)

    # lookup

    def lookup_container(self, name_or_id: str) -> Container:
        cid = self._names.get(name_or_id)
        if cid is None and name_or_id in self.containers:
            cid = name_or_id
        if cid is None:
            cid = unique_prefix(name_or_id, self.containers, "container")
        if cid is None:
            raise NoSuchContainer(
                f"no container has the name or ID {name_or_id!r}; "
                "list the containers to see which exist"
            )
        return self.containers[cid]

    def lookup_image(self, reference_or_id: str) -> Image:
        return self.catalogue.lookup(reference_or_id)

    def layer_paths(self, image_id: str) -> list[Path]:
        """The image's lowerdirs, top first."""
        return self.catalogue.layer_paths(image_id)

    # containers

    def create_container(self, image_ref: str, command: list[str],
                         options: dict[str, Any]) -> Container:
        if self.rootless:
            refuse_without_cgroup(options)
            options = rootless_options(options)  # pasta networks (core/pastanet.py)
        image = self.lookup_image(image_ref)
        name = options.get("name")
        if name and name in self._names:
            raise Exists(f"the name {name!r} is already in use by container "
                         f"{self._names[name][:12]}; choose another name or remove it")
        network_names = self._network_names(options.get("network", "bridge"))
        made: list[Volume] = []  # the volumes this call creates, undone if it fails
        try:
            if options.get("mounts"):  # volume names become their _data paths
                options = {**options,
                           "mounts": self.volumes.resolve_mounts(options["mounts"], made)}
            config = build_config(image, self.layer_paths(image.id), command, options,
                                  self._names.keys())
            status = ContainerStatus(networks=network_names)
            config.mounts.extend(anonymous_mounts(self.volumes, config.id, image.volumes,
                                                  config.mounts, made))
            chown_new(made, config.uid, config.gid)
            self.store.add_container(config.id, config.name, config.to_record(),
                                     status.to_record())
        except BaseException:
            for volume in made:  # new and empty: quick to delete
                delete_tree(self.volumes.remove(volume))
            raise
        self.volumes.joined(config.id, config.mounts)
        container = Container(config, status, self._env)
        self.containers[config.id] = container
        self._names[config.name] = config.id
        checkpoint("create:saved")
        self.listener.container_added(container)
        if self.networks is not None:
            self.networks.joined(container.id, network_names)
        return container

    def _network_names(self, network: str) -> list[str]:
        """The networks a new container joins: its ``network`` option resolved."""
        if network in (MODE_NONE, MODE_HOST):
            return []
        if network == MODE_PASTA:
            if not self.rootless:
                refuse_pasta_as_root(network)
            return [MODE_PASTA]
        if self.networks is None:
            if network == MODE_BRIDGE:
                # A user's own daemon, or an engine on fakes: an empty namespace.
                return []
            raise NotSupported(f"network {network!r}: this daemon has no bridge networks "
                               "(a user's own daemon, or no netavark); use network "
                               "\"none\" or \"host\"")
        return self.networks.resolve_mode(network)[1]

    async def remove_container(self, container: Container, force: bool) -> None:
        await container.remove(force)
        self.containers.pop(container.id, None)
        self._names.pop(container.name, None)
        self.listener.container_removed(container)
        if self.networks is not None:
            self.networks.left(container.id, container.status.networks)
        for volume in self.volumes.left(container.id):  # its anonymous volumes go with it
            await asyncio.to_thread(delete_tree, self.volumes.remove(volume))

    # volumes (core/volumes.py)

    async def remove_volume(self, volume: Volume, force: bool) -> None:
        """InUse while containers use it, unless ``force``: then they go first."""
        if force:
            for cid in sorted(volume.users):
                container = self.containers.get(cid)
                if container is not None:
                    await self.remove_container(container, True)
        await asyncio.to_thread(delete_tree, self.volumes.remove(volume))

    # networks

    def _require_networks(self) -> Networks:
        if self.networks is None:
            raise NotSupported(f"user networks: {NO_USER_NETWORKS}" if self.rootless else
                               "this daemon has no bridge networks (netavark is not set up)")
        return self.networks

    def lookup_network(self, name_or_id: str) -> Network:
        return self._require_networks().lookup(name_or_id)

    def create_network(self, name: str, options: dict[str, Any]) -> Network:
        network = self._require_networks().create(name, options)
        self.events.record("network", "create", network.id, {"name": network.name})
        return network

    async def remove_network(self, network: Network, force: bool) -> None:
        """podman network rm: InUse while containers are on it, unless ``force``, which
        stops them and takes them off it (they keep running nowhere: no network)."""
        networks = self._require_networks()
        if network.is_default:
            raise InvalidArgument(f"the default network {network.name!r} cannot be removed")
        users = [self.containers[c] for c in networks.users(network) if c in self.containers]
        if users and not force:
            names = ", ".join(c.name for c in users[:5])
            raise InUse(f"network {network.name} is used by containers {names}; remove "
                        "them first or pass force")
        for container in users:
            if container.state in ACTIVE:
                await container.stop(0)
            async with container.lock:
                await container.detach_network()
                remaining = [n for n in container.status.networks if n != network.name]
                container.update_status(networks=remaining)
            networks.left(container.id, [network.name])
        networks.delete(network)
        self.events.record("network", "remove", network.id, {"name": network.name})

    # images

    async def import_image(self, fd: int, reference: str) -> Image:
        # What it cannot delete is deleted later; an unexpected failure (EMFILE reading
        # the archive, say) is the store's.
        with self._staging.importing(), failing_as(StorageFailed, "importing the image"):
            image = await self.catalogue.import_image(fd, reference)
        self.events.record("image", "import", image.id, {"name": image.reference})
        return image

    async def remove_image_named(self, reference_or_id: str, force: bool) -> None:
        """podman rmi: naming one reference of several only untags the image."""
        image = self.catalogue.untag_or_find(reference_or_id)
        if image is not None:
            await self.remove_image(image, force)

    async def remove_image(self, image: Image, force: bool) -> None:
        users = [c for c in self.containers.values() if c.config.image_id == image.id]
        if users and not force:
            names = ", ".join(c.name for c in users[:5])
            raise InUse(f"image {image.reference or image.id[:12]} is used by containers "
                        f"{names}; remove them first or pass force")
        for container in users:
            await self.remove_container(container, force=True)
        await self.catalogue.delete(image)

    def close(self) -> None:
        if self._recovery_task is not None:
            self._recovery_task.cancel()  # the daemon stops: the next start recovers again
        self.restarts.close()
        self.health.close()
        self.store.close()
