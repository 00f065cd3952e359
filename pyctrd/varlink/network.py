"""io.pyctrd.Network: networks over Varlink, the same operations and polkit
action (org.pyctrd1.network.manage) as D-Bus's CreateNetwork, GetNetwork,
ListNetworks, RemoveNetwork and Network.Remove."""

from dataclasses import dataclass

from asyncvarlink import VarlinkInterface, varlinkmethod

from pyctrd.core.networks import Network
from pyctrd.ops.names import VARLINK_NETWORK
from pyctrd.ops.networkoptions import NetworkOptions, decode_varlink
from pyctrd.ops.operations import Operations
from pyctrd.ops.properties import NETWORK_PROPERTIES
from pyctrd.varlink.errors import ErrorSet

ERRORS = ErrorSet(VARLINK_NETWORK, (
    "NoSuchNetwork", "Exists", "InvalidArgument", "InUse", "RuntimeFailed", "NotSupported",
    "AccessDenied", "InteractiveAuthorizationRequired", "LimitsExceeded", "Failed"))


@dataclass
class NetworkInfo:
    """A network's D-Bus properties."""

    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    internal: bool
    dns_enabled: bool
    containers: list[str]
    labels: dict[str, str]


def network_info(network: Network) -> NetworkInfo:
    return NetworkInfo(**{row.field: row.get(network) for row in NETWORK_PROPERTIES.values()})


class NetworkVarlink(VarlinkInterface, name=VARLINK_NETWORK):
    """Bridge networks (netavark): the default "pyctrd" and those created here."""

    error_set = ERRORS
    errors = tuple(ERRORS.classes.values())

    def __init__(self, operations: Operations) -> None:
        self._ops = operations

    @varlinkmethod(return_parameter="network")
    async def Create(self, *, name: str, options: NetworkOptions | None = None) -> NetworkInfo:
        """A new bridge network (options as D-Bus CreateNetwork's)."""
        with ERRORS.translated(name=name):
            return network_info(self._ops.create_network(name, decode_varlink(options)))

    @varlinkmethod(return_parameter="network")
    async def Get(self, *, name: str) -> NetworkInfo:
        """One network by name, ID or unique ID prefix."""
        with ERRORS.translated(name=name):
            return network_info(self._ops.get_network(name))

    @varlinkmethod(return_parameter="networks")
    async def List(self) -> list[NetworkInfo]:
        """Every network, the default one included."""
        return [network_info(n) for n in self._ops.list_networks()]

    @varlinkmethod
    async def Remove(self, *, name: str, force: bool = False) -> None:
        """InUse while containers are on it, unless force (which stops them and takes
        them off it); the default network cannot be removed."""
        with ERRORS.translated(name=name):
            await self._ops.remove_network(self._ops.get_network(name), force)
