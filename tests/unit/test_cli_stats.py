"""pyctr stats's figures and their text, as podman prints them (no daemon)."""

from pyctrd.cli.commands.stats import (
    Reading,
    go_duration,
    go_units_size,
    pair,
    percent,
    stats_item,
)
from pyctrd.cli.gotemplate import Report


def test_sizes_durations_and_percentages_in_podmans_words() -> None:
    assert go_units_size(0) == "0B"
    assert go_units_size(479_232) == "479.2kB"
    assert go_units_size(64 << 20) == "67.11MB"
    assert go_units_size(64 << 20, binary=True) == "64MiB"
    assert pair(0, 0) == "-- / --"
    assert pair(1536, 266) == "1.536kB / 266B"
    assert percent(0) == "--" and percent(88.4412) == "88.44%"
    assert go_duration(0) == "0s"
    assert go_duration(999) == "999µs"
    assert go_duration(9_188) == "9.188ms"
    assert go_duration(1_300_205) == "1.300205s"
    assert go_duration(61_500_000) == "1m1.5s"
    assert go_duration(3_600_000_000) == "1h0m0s"


def test_cpu_percent_is_between_readings_and_average_since_start() -> None:
    props = {"Id": "a" * 64, "Name": "spin", "StartedTimestamp": 1_000_000}
    stats = {"cpu_usec": 3_000_000, "read_usec": 5_000_000, "memory_bytes": 50_000_000,
             "memory_limit": 100_000_000, "pids": 3, "block_read_bytes": 0,
             "block_write_bytes": 4096}
    # a second of CPU in the last two seconds; three in the four since it started
    item = stats_item(props, stats, Reading(2_000_000, 3_000_000))
    assert item["CPUPerc"] == "50.00%" and item["AVGCPU"] == "75.00%"
    assert item["ID"] == "a" * 12 and item["PIDS"] == "3" and item["CPU"] == "3s"
    assert item["MemUsage"] == "50MB / 100MB" and item["MemPerc"] == "50.00%"
    assert item["NetIO"] == "-- / --" and item["BlockIO"] == "0B / 4.096kB"
    # no limit: a share of the host's memory
    unlimited = stats_item(props, {**stats, "memory_limit": 0}, Reading(0, 1_000_000),
                           memory_total=200_000_000)
    assert unlimited["MemPerc"] == "25.00%" and unlimited["CPUPerc"] == "75.00%"
    table = Report("", "table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}",
                   {"CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT"}).lines([item])
    assert table.splitlines()[0].split("  ")[0] == "NAME"
    assert "CPU %" in table and "MEM USAGE / LIMIT" in table
    assert Report("json", "").lines([item]).count('"cpu_percent": "50.00%"') == 1
