"""Bus names, object paths, interface names: the addresses of shared/API.md.

The daemon and pyctr both import these, as firewalld's server and client
share config/dbus.py.
"""

BUS_NAME = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER_IFACE = "org.pyctrd1.Manager"
CONTAINER_IFACE = "org.pyctrd1.Container"
IMAGE_IFACE = "org.pyctrd1.Image"
EXEC_SESSION_IFACE = "org.pyctrd1.ExecSession"
JOB_IFACE = "org.pyctrd1.Job"
NETWORK_IFACE = "org.pyctrd1.Network"
VOLUME_IFACE = "org.pyctrd1.Volume"
ERROR_PREFIX = "org.pyctrd1.Error."
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER_IFACE = "org.freedesktop.DBus.ObjectManager"

CONTAINER_PREFIX = MANAGER_PATH + "/container/"
IMAGE_PREFIX = MANAGER_PATH + "/image/"
JOB_PREFIX = MANAGER_PATH + "/job/"
NETWORK_PREFIX = MANAGER_PATH + "/network/"
VOLUME_PREFIX = MANAGER_PATH + "/volume/"

VARLINK_CONTAINER = "io.pyctrd.Container"
VARLINK_IMAGE = "io.pyctrd.Image"
VARLINK_EVENTS = "io.pyctrd.Events"
VARLINK_NETWORK = "io.pyctrd.Network"
VARLINK_VOLUME = "io.pyctrd.Volume"
VARLINK_JOB = "io.pyctrd.Job"
VARLINK_SERVICE = "org.varlink.service"
VARLINK_SOCKET_NAME = "io.pyctrd"


def container_path(cid: str) -> str:
    return CONTAINER_PREFIX + cid


def image_path(iid: str) -> str:
    return IMAGE_PREFIX + iid


def job_path(job_id: str) -> str:
    return JOB_PREFIX + job_id


def exec_session_path(cid: str, number: int) -> str:
    return f"{CONTAINER_PREFIX}{cid}/exec/{number}"


def network_path(network_id: str) -> str:
    return NETWORK_PREFIX + network_id


def volume_path(name: str) -> str:
    """A volume's object path: its name bus-escaped as systemd's (every byte but
    [A-Za-z0-9] as _xx; a leading digit too), since names may hold "." and "-"."""
    escaped = "".join(
        c if c.isascii() and c.isalnum() and not (i == 0 and c.isdigit())
        else "".join(f"_{b:02x}" for b in c.encode()) for i, c in enumerate(name))
    return VOLUME_PREFIX + (escaped or "_")
