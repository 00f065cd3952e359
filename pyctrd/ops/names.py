"""Bus names, object paths, interface names: the addresses of shared/API.md.

The daemon and pyctr both import these, as firewalld's server and client
share config/dbus.py.
"""

BUS_NAME = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER_IFACE = "org.pyctrd1.Manager"
CONTAINER_IFACE = "org.pyctrd1.Container"
IMAGE_IFACE = "org.pyctrd1.Image"
ERROR_PREFIX = "org.pyctrd1.Error."
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER_IFACE = "org.freedesktop.DBus.ObjectManager"

CONTAINER_PREFIX = MANAGER_PATH + "/container/"
IMAGE_PREFIX = MANAGER_PATH + "/image/"

VARLINK_CONTAINER = "io.pyctrd.Container"
VARLINK_IMAGE = "io.pyctrd.Image"
VARLINK_SERVICE = "org.varlink.service"
VARLINK_SOCKET_NAME = "io.pyctrd"


def container_path(cid: str) -> str:
    return CONTAINER_PREFIX + cid


def image_path(iid: str) -> str:
    return IMAGE_PREFIX + iid
