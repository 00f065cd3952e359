"""Which xattr namespace overlayfs reads here: trusted.overlay.* or user.overlay.*.

trusted.* xattrs need CAP_SYS_ADMIN in the initial user namespace. A user's
own daemon (in a user namespace) therefore mounts with ``userxattr`` and
writes its opaque markers as user.overlay.opaque; the store of a root daemon
keeps trusted.overlay.*. A store belongs to one kind of daemon.
"""

import functools

from pyctrd.rootless.userns import in_user_namespace

TRUSTED_PREFIX = "trusted.overlay."
USER_PREFIX = "user.overlay."
# Both: an archive must forge neither, and a reader of either store knows both.
ALL_PREFIXES = (TRUSTED_PREFIX, USER_PREFIX)


@functools.cache
def prefix() -> str:
    return USER_PREFIX if in_user_namespace() else TRUSTED_PREFIX


def opaque() -> str:
    return prefix() + "opaque"


def mount_options() -> str:
    """Extra overlay mount options ("" or ",userxattr")."""
    return ",userxattr" if prefix() == USER_PREFIX else ""
