"""Named crash points for the fault-injection tests.

Production never installs a hook, so ``checkpoint`` costs one global lookup.
The tests start the daemon through tests/support/crashing_pyctrd.py, which
installs a hook that SIGKILLs the daemon at one chosen point, and then check
that a restart leaves every container consistent.
"""

from collections.abc import Callable

# Every point the code passes; the tests crash at each in turn.
POINTS = (
    "create:saved",          # the new container is stored, the caller has no answer
    "storage:mounted",       # overlay mounted, Mounted not yet saved
    "storage:unmounted",     # overlay unmounted, Mounted not yet saved
    "init:launched",         # runc created the container under conmon, state not saved
    "start:started",         # runc start returned, State still "created"
    "stop:signalled",        # the stop signal is sent
    "kill:sent",             # the signal is sent
    "pause:paused",          # runc paused it, State still "running"
    "unpause:resumed",       # runc resumed it, State still "paused"
    "cleanup:deleted",       # after an exit: runc delete done, storage still mounted
    "remove:marked",         # removal recorded, nothing torn down yet
    "remove:runtime-deleted",  # runtime state gone, storage still there
    "remove:storage-destroyed",  # storage gone, the record still stored
    "import:layers-stored",  # an import's layers are in place, the image not yet stored
)

_hook: Callable[[str], None] | None = None


def install(hook: Callable[[str], None] | None) -> None:
    global _hook
    _hook = hook


def checkpoint(name: str) -> None:
    if _hook is not None:
        _hook(name)
