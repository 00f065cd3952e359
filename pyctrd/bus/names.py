"""Bus names, object paths and interface names of shared/API.md."""

BUS_NAME = "org.pyctrd1"
MANAGER_PATH = "/org/pyctrd1"
MANAGER_IFACE = "org.pyctrd1.Manager"
CONTAINER_IFACE = "org.pyctrd1.Container"
IMAGE_IFACE = "org.pyctrd1.Image"
ERROR_PREFIX = "org.pyctrd1.Error."
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER_IFACE = "org.freedesktop.DBus.ObjectManager"


def container_path(cid: str) -> str:
    return f"{MANAGER_PATH}/container/{cid}"


def image_path(iid: str) -> str:
    return f"{MANAGER_PATH}/image/{iid}"
