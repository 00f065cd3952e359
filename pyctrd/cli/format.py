"""How pyctr shows things: podman's tables, durations, sizes and JSON shapes."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import Any

SHORT_ID = 12
COMMAND_WIDTH = 20


def seconds(micros: int) -> float:
    return micros / 1_000_000


def human_duration(secs: float) -> str:
    """A rough duration in words, as podman (go-units) writes it."""
    s = int(secs)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def ago(micros: int, now: float | None = None) -> str:
    if not micros:
        return ""
    now = time.time() if now is None else now
    return f"{human_duration(now - seconds(micros))} ago"


def human_size(size: int) -> str:
    """Decimal units with three significant digits, as podman shows sizes."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    raise AssertionError("unreachable")


def container_status(c: dict[str, Any], now: float | None = None) -> str:
    """podman ps's STATUS column."""
    now = time.time() if now is None else now
    state = c.get("State", "")
    if state == "running":
        health = f" ({c['Health']})" if c.get("Health") else ""  # podman's "(healthy)"
        return f"Up {human_duration(now - seconds(c.get('StartedTimestamp', 0)))}{health}"
    if state == "paused":
        return f"Up {human_duration(now - seconds(c.get('StartedTimestamp', 0)))} (paused)"
    if state == "exited":
        return f"Exited ({c.get('ExitCode', 0)}) {ago(c.get('FinishedTimestamp', 0), now)}"
    if state in ("created", "configured"):
        return "Created"
    return state.capitalize() or "Unknown"


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart (tabwriter-like)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def tabwrite(text: str, minwidth: int = 12, padding: int = 2) -> str:
    """text/tabwriter as podman's reports use it: each tab-ended cell padded to its
    column's widest cell plus two spaces (at least 12); the text after a line's
    last tab is not a cell."""
    lines = text.split("\n")
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    out = []
    for cells in rows:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        out.append("".join(padded) + cells[-1])
    return "\n".join(out)


def split_reference(reference: str) -> tuple[str, str]:
    """"name:tag" → (name, tag); a colon in a registry's host:port is not a tag."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, ""
    return name, tag


def rfc3339(micros: int) -> str:
    from datetime import UTC, datetime  # loaded by the verbs that print times only
    return datetime.fromtimestamp(seconds(micros), UTC).isoformat().replace("+00:00", "Z")
