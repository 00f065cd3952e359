"""io.pyctrd.Volume: named volumes over Varlink, the same operations and polkit
action (org.pyctrd1.container.create) as D-Bus's CreateVolume, GetVolume,
ListVolumes, RemoveVolume and Volume.Remove."""

from dataclasses import dataclass

from asyncvarlink import VarlinkInterface, varlinkmethod

from pyctrd.core.volumes import Volume
from pyctrd.ops.names import VARLINK_VOLUME
from pyctrd.ops.operations import Operations
from pyctrd.ops.properties import VOLUME_PROPERTIES
from pyctrd.varlink.errors import ErrorSet

ERRORS = ErrorSet(VARLINK_VOLUME, (
    "NoSuchVolume", "Exists", "InvalidArgument", "InUse", "RuntimeFailed",
    "AccessDenied", "InteractiveAuthorizationRequired", "LimitsExceeded", "Failed"))


@dataclass
class VolumeInfo:
    """A volume's D-Bus properties."""

    name: str
    driver: str
    mountpoint: str
    labels: dict[str, str]
    created_timestamp: int
    in_use: bool


def volume_info(volume: Volume) -> VolumeInfo:
    return VolumeInfo(**{row.field: row.get(volume) for row in VOLUME_PROPERTIES.values()})


class VolumeVarlink(VarlinkInterface, name=VARLINK_VOLUME):
    """Named volumes (podman's "local" driver): directories containers mount by name."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations) -> None:
        self._ops = operations

    @varlinkmethod(return_parameter="volume")
    async def Create(self, *, name: str = "",
                     labels: dict[str, str] | None = None) -> VolumeInfo:
        """A new, empty volume; an empty name generates one."""
        with ERRORS.translated(name=name):
            return volume_info(self._ops.create_volume(name, dict(labels or {})))

    @varlinkmethod(return_parameter="volume")
    async def Get(self, *, name: str) -> VolumeInfo:
        """One volume by name."""
        with ERRORS.translated(name=name):
            return volume_info(self._ops.get_volume(name))

    @varlinkmethod(return_parameter="volumes")
    async def List(self) -> list[VolumeInfo]:
        """Every volume, anonymous ones included."""
        return [volume_info(v) for v in self._ops.list_volumes()]

    @varlinkmethod
    async def Remove(self, *, name: str, force: bool = False) -> None:
        """Remove it and its data: InUse while a container uses it, unless force
        (which removes those containers first)."""
        with ERRORS.translated(name=name):
            await self._ops.remove_volume(self._ops.get_volume(name), force)
