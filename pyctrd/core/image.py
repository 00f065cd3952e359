"""An image: its layers (bottom first) and the defaults it gives containers."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Image:
    id: str
    reference: str
    digest: str
    size: int
    created: int  # µs since the epoch
    layers: list[str]  # layer ids, bottom first
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Image":
        return cls(**record)
