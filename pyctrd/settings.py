"""Daemon settings: command-line flags over the TOML config file over defaults."""

import argparse
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdg import BaseDirectory

SYSTEM_CONFIG = Path("/etc/pyctrd/pyctrd.toml")
# A user's own daemon's registries.d when the user has none: under its root,
# written by the daemon (registry/skopeo.write_registries_d).
OWN_REGISTRIES_D = "registries.d"
LOG_LEVELS = ("debug", "info", "warning", "error")

# config key → expected Python type
CONFIG_KEYS: dict[str, type] = {
    "root": str,
    "run_root": str,
    "runtime": str,
    "conmon": str,
    "log_level": str,
    "log_size_max": int,
    "runtime_timeout": int,  # seconds a runc/crun call may take before it is killed
    "import_max_bytes": int,  # file bytes one import may unpack; 0: from the free space
    # registries (skopeo): a daemon-wide auth file; other registries.conf / policy.json
    "registry_auth_file": str,
    "registries_conf": str,
    "signature_policy": str,
    "registries_d": str,
}


class SettingsError(Exception):
    """A bad flag or config: the daemon prints it on one line and exits with 2."""


@dataclass(frozen=True)
class Settings:
    bus: str
    root: Path
    run_root: Path
    runtime: str
    conmon: str
    log_level: str
    log_size_max: int
    config_file: Path | None
    runtime_timeout: int = 30
    import_max_bytes: int = 0  # 0: 90 % of the store's free space less 1 GiB, per import
    registry_auth_file: Path | None = None  # credentials used when a pull brings none
    registries_conf: Path | None = None  # None: /etc/containers/registries.conf
    signature_policy: Path | None = None  # None: /etc/containers/policy.json
    # an unprivileged user's daemon: it joins a user namespace (pyctrd/rootless)
    rootless: bool = False
    registries_d: Path | None = None  # None: /etc/containers/registries.d


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyctrd",
                                description="OCI containers as D-Bus objects (org.pyctrd1)")
    p.add_argument("--bus", choices=("system", "session"), default="system",
                   help="the bus to serve on (default: system)")
    p.add_argument("--root", help="persistent state directory")
    p.add_argument("--run-root", help="per-boot state directory")
    p.add_argument("--runtime", help="OCI runtime binary, runc (default) or crun")
    p.add_argument("--conmon", help="conmon binary (default: from PATH)")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")
    return p


def load(argv: list[str] | None = None) -> Settings:
    args = parser().parse_args(argv)
    session = args.bus == "session"
    config_path, explicit = _config_path(args.config, session)
    config = _read_config(config_path, explicit)

    def pick(flag: Any, key: str, default: Any) -> Any:
        return flag if flag is not None else config.get(key, default)

    if session:
        default_root = Path(BaseDirectory.xdg_data_home) / "pyctrd"
        default_run = Path(BaseDirectory.get_runtime_dir(strict=False)) / "pyctrd"
    else:
        default_root, default_run = Path("/var/lib/pyctrd"), Path("/run/pyctrd")
    log_level = pick(args.log_level, "log_level", "info")
    rootless = session and os.geteuid() != 0
    root = Path(pick(args.root, "root", default_root)).absolute()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    return Settings(
        bus=args.bus,
        root=root,
        run_root=Path(pick(args.run_root, "run_root", default_run)).absolute(),
        runtime=_find_binary(pick(args.runtime, "runtime", "runc"), "runtime"),
        conmon=_find_binary(pick(args.conmon, "conmon", "conmon"), "conmon"),
        log_level=log_level,
        log_size_max=int(config.get("log_size_max", -1)),
        config_file=config_path if config_path.exists() else None,
        runtime_timeout=_positive(config.get("runtime_timeout", 30), "runtime_timeout"),
        import_max_bytes=_not_negative(config.get("import_max_bytes", 0), "import_max_bytes"),
        registry_auth_file=_optional_path(config.get("registry_auth_file")),
        registries_conf=_optional_path(config.get("registries_conf")),
        signature_policy=_optional_path(config.get("signature_policy")),
        rootless=rootless,
        registries_d=_optional_path(config.get("registries_d")) or (
            _user_registries_d(root) if rootless else None),
    )


def _user_registries_d(root: Path) -> Path:
    """The user's own registries.d, else an empty one of ours: the system's sends
    signature lookups to root's /var/lib/containers/sigstore, which a user cannot
    read (and skopeo, root in our user namespace, would try)."""
    own = Path(BaseDirectory.xdg_config_home) / "containers" / "registries.d"
    return own if own.is_dir() else root / OWN_REGISTRIES_D


def _optional_path(value: str | None) -> Path | None:
    return Path(value).absolute() if value else None


def _positive(value: int, key: str) -> int:
    if value <= 0:
        raise SettingsError(f"{key} must be a positive number of seconds")
    return value


def _not_negative(value: int, key: str) -> int:
    if value < 0:
        raise SettingsError(f"{key} must be 0 (automatic) or a positive number of bytes")
    return value


def _config_path(flag: str | None, session: bool) -> tuple[Path, bool]:
    if flag:
        return Path(flag), True
    if session:
        return Path(BaseDirectory.xdg_config_home) / "pyctrd" / "pyctrd.toml", False
    return SYSTEM_CONFIG, False


def _read_config(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise SettingsError(f"config file {path} does not exist") from None
        return {}
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"config file {path} is not valid TOML: {err}") from None
    except OSError as err:
        raise SettingsError(f"cannot read config file {path}: {err.strerror}") from None
    for key, value in config.items():
        expected = CONFIG_KEYS.get(key)
        if expected is None:
            raise SettingsError(f"config file {path}: unknown key {key!r}; known keys: "
                                f"{', '.join(CONFIG_KEYS)}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise SettingsError(f"config file {path}: {key} must be a {expected.__name__}")
    return config


def _find_binary(name: str, what: str) -> str:
    found = shutil.which(name) if os.sep not in name else name
    if not found or not os.access(found, os.X_OK):
        raise SettingsError(f"{what} {name!r} not found or not executable")
    return os.path.abspath(found)
