"""info, version, system df, container exists, image exists."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
from typing import Any

from pyctrd.cli.bus import Daemon
from pyctrd.cli.errors import CliError, DaemonError
from pyctrd.cli.flags import _version
from pyctrd.cli.format import human_size
from pyctrd.errors import NoSuchContainer, NoSuchImage
from pyctrd.ops.names import MANAGER_IFACE, MANAGER_PATH

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
        "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _meminfo() -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                found[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def _os_release() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    found[key] = value.strip('"')
    except OSError:
        pass
    return found


def _uptime() -> str:
    try:
        with open("/proc/uptime", encoding="ascii") as f:
            secs = int(float(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return ""
    return f"{secs // 3600}h {secs % 3600 // 60}m {secs % 60}s"


def _client_version() -> dict[str, Any]:
    return {"APIVersion": _version(), "Version": _version(),
            "PythonVersion": platform.python_version(), "GoVersion": "",
            "GitCommit": "", "BuiltTime": "", "Built": 0,
            "OsArch": f"linux/{ARCH.get(platform.machine(), platform.machine())}",
            "Os": "linux"}


async def _manager(daemon: Daemon) -> dict[str, Any]:
    return await daemon.properties(MANAGER_PATH, MANAGER_IFACE)


async def info_data(daemon: Daemon) -> dict[str, Any]:
    """`podman info`'s fields (Go names) that pyctr can fill."""
    manager = await _manager(daemon)
    containers = await daemon.containers()
    images = await daemon.images()
    mem = _meminfo()
    release = _os_release()
    states = [c.get("State") for c in containers]
    server = {**_client_version(), "Version": manager.get("Version", ""),
              "APIVersion": manager.get("Version", "")}
    return {
        "Host": {
            "Arch": ARCH.get(platform.machine(), platform.machine()),
            "Hostname": socket.gethostname(),
            "Kernel": platform.release(),
            "OS": "linux",
            "CPUs": os.cpu_count() or 0,
            "MemTotal": mem.get("MemTotal", 0), "MemFree": mem.get("MemAvailable", 0),
            "SwapTotal": mem.get("SwapTotal", 0), "SwapFree": mem.get("SwapFree", 0),
            "Uptime": _uptime(),
            "Distribution": {"Distribution": release.get("ID", ""),
                             "Version": release.get("VERSION_ID", ""),
                             "Codename": release.get("VERSION_CODENAME", "")},
            "OCIRuntime": {"Name": os.path.basename(manager.get("Runtime", "")),
                           "Path": manager.get("Runtime", "")},
            "NetworkBackend": "netavark",
        },
        "Store": {
            "ContainerStore": {"Number": len(containers),
                               "Running": states.count("running"),
                               "Paused": states.count("paused"),
                               "Stopped": len(states) - states.count("running")
                               - states.count("paused")},
            "ImageStore": {"Number": len(images)},
            "GraphDriverName": "overlay",
        },
        "Version": server,
    }


_JSON_KEYS = {"CPUs": "cpus", "OCIRuntime": "ociRuntime", "OS": "os"}


def _json_key(name: str) -> str:
    """A Go field's JSON key in podman info: camelCase (MemTotal → memTotal)."""
    return _JSON_KEYS.get(name, name[:1].lower() + name[1:])


def _json_keys(value: Any, keep: bool = False) -> Any:
    """Go names → podman's JSON keys; the version section keeps its Go names, as
    podman's does (APIVersion, GoVersion)."""
    if isinstance(value, dict):
        return {(k if keep else _json_key(k)): _json_keys(v, keep or k == "Version")
                for k, v in value.items()}
    return value


def yaml_text(value: Any, indent: int = 0) -> str:
    """podman info's default text: YAML of the JSON keys."""
    lines = []
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines.append(yaml_text(item, indent + 1))
        else:
            shown = json.dumps(item) if isinstance(item, str) and (
                not item or item.strip() != item or ":" in item) else \
                str(item).lower() if isinstance(item, bool) else str(item)
            lines.append(f"{pad}{key}: {shown}")
    return "\n".join(line for line in lines if line)


def _print_formatted(fmt: str, data: dict[str, Any]) -> None:
    from pyctrd.cli.gotemplate import Template, TemplateError, normalize
    if fmt == "json":
        print(json.dumps(_json_keys(data), indent=4))
        return
    try:
        sys.stdout.write(Template(normalize(fmt)[1]).execute(data))
    except TemplateError as err:
        raise CliError(str(err)) from None


async def cmd_info(daemon: Daemon, args: argparse.Namespace) -> int:
    data = await info_data(daemon)
    if args.format:
        _print_formatted(args.format, data)
    else:
        print(yaml_text(_json_keys(data)))
    return 0


async def cmd_version(daemon: Daemon, args: argparse.Namespace) -> int:
    client = _client_version()
    server: dict[str, Any] | None = None
    try:
        manager = await _manager(daemon)
        server = {**client, "Version": manager.get("Version", ""),
                  "APIVersion": manager.get("Version", ""),
                  "Runtime": manager.get("Runtime", "")}
    except CliError:
        if args.format:
            raise
    data = {"Client": client, "Server": server}
    if args.format:
        _print_formatted(args.format, data)
        return 0
    print("Client:       pyctr")
    _version_lines(client)
    if server is not None:
        print("\nServer:       pyctrd")
        _version_lines(server)
    return 0


def _version_lines(v: dict[str, Any]) -> None:
    print(f"Version:      {v['Version']}")
    print(f"API Version:  {v['APIVersion']}")
    print(f"Python Version: {v['PythonVersion']}")
    print(f"OS/Arch:      {v['OsArch']}")


async def cmd_df(daemon: Daemon, args: argparse.Namespace) -> int:
    from pyctrd.cli.gotemplate import render
    images = await daemon.images()
    containers = await daemon.containers()
    used_ids = {c.get("ImageId") for c in containers}
    size = sum(i.get("Size", 0) for i in images)
    unused = sum(i.get("Size", 0) for i in images if i["Id"] not in used_ids)
    active = sum(1 for c in containers if c.get("State") in ("running", "paused"))
    rows = [
        {"Type": "Images", "Total": len(images), "Active": len(used_ids & {i["Id"]
                                                                          for i in images}),
         "RawSize": size, "RawReclaimable": unused},
        {"Type": "Containers", "Total": len(containers), "Active": active,
         "RawSize": 0, "RawReclaimable": 0},
        {"Type": "Local Volumes", "Total": 0, "Active": 0, "RawSize": 0,
         "RawReclaimable": 0},
    ]
    for row in rows:
        row["Size"] = human_size(row["RawSize"])
        pct = round(100 * row["RawReclaimable"] / row["RawSize"]) if row["RawSize"] else 0
        row["Reclaimable"] = f"{human_size(row['RawReclaimable'])} ({pct}%)"
    if args.verbose and not args.format:
        _df_verbose(images, containers)
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=4))
        return 0
    fmt = args.format or ("table {{.Type}}\t{{.Total}}\t{{.Active}}\t{{.Size}}\t"
                          "{{.Reclaimable}}")
    from pyctrd.cli.gotemplate import TemplateError
    try:
        sys.stdout.write(render(fmt, rows))
    except TemplateError as err:
        raise CliError(str(err)) from None
    return 0


def _df_verbose(images: list[dict[str, Any]], containers: list[dict[str, Any]]) -> None:
    """system df -v: one row per image, container and volume, as podman's."""
    from pyctrd.cli.gotemplate import render
    from pyctrd.cli.reports import image_item, image_rows, ps_item
    users: dict[str, int] = {}
    for c in containers:
        users[c.get("ImageId", "")] = users.get(c.get("ImageId", ""), 0) + 1
    image_items = []
    for i in images:
        for repository, tag in image_rows(i):
            item = image_item(i, repository, tag)
            item["UniqueSize"] = item["Size"]
            item["Containers"] = users.get(i["Id"], 0)
            image_items.append(item)
    sys.stdout.write("Images space usage:\n\n")
    sys.stdout.write(render("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t"
                            "{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
                            image_items, {"ID": "IMAGE ID"}))
    sys.stdout.write("\nContainers space usage:\n\n")
    items = [ps_item(c) for c in containers]
    for item in items:
        item["LocalVolumes"] = 0
        item["Size"] = "0 B"  # pyctrd does not measure a container's own layer
    sys.stdout.write(render("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t"
                            "{{.Size}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Names}}", items,
                            {"ID": "CONTAINER ID", "CreatedHuman": "CREATED"}))
    sys.stdout.write("\nLocal Volumes space usage:\n\n")
    sys.stdout.write(render("table {{.VolumeName}}\t{{.Links}}\t{{.Size}}", []))


async def _exists(lookup: Any, name: str, missing: type[Exception]) -> int:
    try:
        await lookup(name)
    except DaemonError as err:
        if err.is_a(missing):  # type: ignore[arg-type]
            return 1
        raise
    return 0


async def cmd_container_exists(daemon: Daemon, args: argparse.Namespace) -> int:
    return await _exists(daemon.container, args.name, NoSuchContainer)


async def cmd_image_exists(daemon: Daemon, args: argparse.Namespace) -> int:
    return await _exists(daemon.image, args.name, NoSuchImage)
