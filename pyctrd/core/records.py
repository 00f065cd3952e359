"""Stored containers decoded at start-up, 100,000 of them within a second.

Most containers' records are alike: the same image, command, environment,
capabilities, and (defined, not running) the same state. A config differs
from its neighbours in four values only (id, name, its default hostname,
the creation time): with those cut out of the stored JSON text, equal
remainders are decoded once and their values shared (nothing changes a
config, nor a status's lists in place: core/config.py's ``shared``). Equal
state texts are decoded once too. A record that is not alike anything
(a unique command, a running container's state) is decoded as it is.
"""

import json
import re
from typing import Any

from pyctrd.core.config import ContainerConfig
from pyctrd.core.container import ContainerStatus

# Our own JSON (database.py: sorted keys, no spaces). Labels and annotations hold
# strings only, so a number after "created": is the top-level key's.
_CREATED = re.compile(r'"created":(\d+)')
TEMPLATES_MAX = 4096  # distinct remainders kept


class RecordDecoder:
    def __init__(self) -> None:
        self._configs: dict[str, dict[str, Any]] = {}
        self._states: dict[str, tuple[Any, ...]] = {}

    def config(self, container_id: str, name: str, text: str) -> ContainerConfig:
        """The config stored as ``text`` for the container ``container_id`` named
        ``name`` (the table's own columns)."""
        key, created = _remainder(container_id, name, text)
        template = self._configs.get(key) if key else None
        if template is not None:
            return ContainerConfig(id=container_id, name=name, hostname=container_id[:12],
                                   created=created, **template)
        config = ContainerConfig.from_record(json.loads(text))
        if key and len(self._configs) < TEMPLATES_MAX:
            self._configs[key] = {field: getattr(config, field) for field in _TEMPLATE_FIELDS}
        return config

    def status(self, text: str) -> ContainerStatus:
        values = self._states.get(text)
        if values is not None:
            return ContainerStatus(*values)
        status = ContainerStatus.from_record(json.loads(text))
        if len(self._states) < TEMPLATES_MAX:
            self._states[text] = tuple(getattr(status, field) for field in _STATUS_FIELDS)
        return status


_UNIQUE = ("id", "name", "hostname", "created")
_TEMPLATE_FIELDS = tuple(field for field in ContainerConfig.__dataclass_fields__
                         if field not in _UNIQUE)
_STATUS_FIELDS = tuple(ContainerStatus.__dataclass_fields__)  # in their order


def _remainder(container_id: str, name: str, text: str) -> tuple[str, int]:
    """(``text`` without its id, name, default hostname and creation time, that time);
    ("", 0) if it is not plainly so (a hostname of its own, say)."""
    created = _CREATED.search(text)
    if created is None:
        return "", 0
    key = text[:created.start()] + text[created.end():]
    for part in (f'"id":"{container_id}",', f'"name":"{name}",',
                 f'"hostname":"{container_id[:12]}",'):
        if key.count(part) != 1:
            return "", 0
        key = key.replace(part, "")
    return key, int(created.group(1))
