"""CreateContainer's restart, auto-remove and health-check options, resolved and
checked at create (the schema in pyctrd.ops.options has checked their types).

podman's rules: `--rm` does not go with a restart policy, restart retries only
with on-failure, a health check needs a timeout and retries of at least 1.
"""

from typing import Any

from pyctrd.errors import InvalidArgument

NO, ON_FAILURE, ALWAYS, UNLESS_STOPPED = "no", "on-failure", "always", "unless-stopped"
RESTART_POLICIES = (NO, ON_FAILURE, ALWAYS, UNLESS_STOPPED)
HEALTH_INTERVAL = 30
HEALTH_TIMEOUT = 30
HEALTH_RETRIES = 3


def check_exit_options(options: dict[str, Any]) -> dict[str, Any]:
    """The ContainerConfig fields of these options, defaults filled in."""
    policy = options.get("restart_policy") or NO
    if policy not in RESTART_POLICIES:
        raise InvalidArgument(f"restart_policy {policy!r}: use one of "
                              f"{', '.join(RESTART_POLICIES)}")
    retries = options.get("restart_retries", 0)
    if retries and policy != ON_FAILURE:
        raise InvalidArgument("restart_retries goes only with restart_policy 'on-failure'")
    auto_remove = options.get("auto_remove", False)
    if auto_remove and policy != NO:
        raise InvalidArgument(f"auto_remove and restart_policy {policy!r} conflict: a "
                              "container cannot be both removed and restarted on exit")
    health_cmd = list(options.get("health_cmd", []))
    if health_cmd and (not health_cmd[0] or any("\0" in arg for arg in health_cmd)):
        raise InvalidArgument("health_cmd needs a command (a non-empty first word, no NUL)")
    if health_cmd == ["NONE"]:  # podman's way of saying "no check"
        health_cmd = []
    timeout = options.get("health_timeout", HEALTH_TIMEOUT)
    health_retries = options.get("health_retries", HEALTH_RETRIES)
    if timeout < 1:
        raise InvalidArgument("health_timeout must be at least 1 second")
    if health_retries < 1:
        raise InvalidArgument("health_retries must be at least 1")
    return {
        "restart_policy": policy,
        "restart_retries": retries,
        "auto_remove": auto_remove,
        "health_cmd": health_cmd,
        "health_interval": options.get("health_interval", HEALTH_INTERVAL),
        "health_timeout": timeout,
        "health_retries": health_retries,
        "health_start_period": options.get("health_start_period", 0),
    }
