"""A container described as `podman inspect` describes one (API.md's Inspect)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctrd.core.state import State

if TYPE_CHECKING:
    from pyctrd.core.config import ContainerConfig
    from pyctrd.core.container import Container


def inspect(container: "Container", runtime_name: str) -> dict[str, Any]:
    """Everything about ``container``; ``runtime_name`` is the OCI runtime's ("runc")."""
    cfg, st = container.config, container.status
    bundle = container.bundle
    paths = container.paths
    return {
        "Id": container.id,
        "Name": container.name,
        "Created": rfc3339(cfg.created),
        "Path": cfg.command[0],
        "Args": cfg.command[1:],
        "Image": cfg.image_id,
        "ImageName": cfg.image_ref,
        "State": {
            "Status": str(st.state),
            "Running": st.state == State.RUNNING,
            "Paused": st.state == State.PAUSED,
            "Pid": st.pid,  # 0 unless running or paused, as the PID property
            "ConmonPid": st.conmon_pid,
            "ExitCode": st.exit_code,
            "OOMKilled": st.oom_killed,
            "StartedAt": rfc3339(st.started),
            "FinishedAt": rfc3339(st.finished),
            # podman's, with a health check only; and the restart policy's count
            **({"Health": {"Status": st.health, "FailingStreak": st.health_failures,
                           "Log": list(st.health_log)}} if cfg.health_cmd else {}),
            "RestartCount": st.restart_count,
        },
        "Config": {
            "Cmd": cfg.command,
            "Env": cfg.env,
            "WorkingDir": cfg.workdir,
            "User": cfg.user,
            "Uid": cfg.uid,
            "Gid": cfg.gid,
            "Hostname": cfg.hostname,
            "Labels": cfg.labels,
            "Annotations": cfg.annotations,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "Tty": cfg.terminal,
            "OpenStdin": cfg.stdin,
        },
        "HostConfig": {
            "Memory": cfg.memory_limit,
            "Cpus": cfg.cpu_quota,
            "PidsLimit": cfg.pids_limit,
            "NetworkMode": cfg.network,
            "ReadonlyRootfs": cfg.read_only,
            # podman's names; Capabilities is the resolved set (older records: None).
            "Privileged": cfg.privileged,
            "Capabilities": cfg.capabilities,
            "SecurityOpt": _security_opts(cfg),
            "Ulimits": [{"Name": f"RLIMIT_{name.upper()}", "Soft": soft, "Hard": hard}
                        for name, soft, hard in cfg.ulimits or ()],
            "RestartPolicy": {"Name": cfg.restart_policy,
                              "MaximumRetryCount": cfg.restart_retries},
            "AutoRemove": cfg.auto_remove,
        },
        "Mounts": [{"Source": src, "Destination": dst, "Options": opts.split(",")
                    if opts else []} for src, dst, opts in cfg.mounts],
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"LowerDir": ":".join(str(p) for p in paths.lower),
                     "UpperDir": str(paths.upper), "WorkDir": str(paths.work),
                     "MergedDir": str(paths.merged)},
        },
        "NetworkSettings": _network_settings(container),
        "Mounted": st.mounted,
        "Mountpoint": st.mountpoint,
        "LogPath": str(container.log_path),
        "BundlePath": str(bundle),
        "OCIRuntime": runtime_name,
        "OCISpec": _read_json(bundle / "config.json"),
    }


def _network_settings(container: "Container") -> dict[str, Any]:
    """podman's NetworkSettings: addresses while set up, ports (host port as asked
    until set up), the namespace (SandboxKey)."""
    cfg, st = container.config, container.status
    published = st.published if st.netns else cfg.ports
    ports: dict[str, list[dict[str, str]]] = {}
    for host_ip, host_port, container_port, proto in published:
        ports.setdefault(f"{container_port}/{proto}", []).append(
            {"HostIp": host_ip, "HostPort": str(host_port) if host_port else ""})
    first = next((st.addresses[n] for n in st.networks if n in st.addresses), "")
    return {
        "IPAddress": first,
        "Ports": ports,
        "SandboxKey": st.netns,
        "Networks": {name: {"IPAddress": st.addresses.get(name, ""),
                            "Aliases": [cfg.hostname, *cfg.network_aliases]}
                     for name in st.networks},
    }


def _security_opts(cfg: "ContainerConfig") -> list[str]:
    opts = [f"seccomp={cfg.seccomp}"]
    if cfg.no_new_privileges:
        opts.append("no-new-privileges")
    return opts


def rfc3339(us: int) -> str:
    """µs since the epoch → podman's time format; "" for never."""
    if not us:
        return ""
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
