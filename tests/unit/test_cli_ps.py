"""pyctr ps without the template engine: the same table, the properties it needs,
and which Varlink socket pyctr tries."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from pyctrd.cli.commands import ps
from pyctrd.cli.gotemplate import render
from pyctrd.cli.parser import build_parser
from pyctrd.cli.reports import PS_DEFAULT, PS_HEADERS, ps_item
from pyctrd.cli.varlinkclient import SYSTEM_SOCKET, socket_path
from pyctrd.ops.properties import CONTAINER_PROPERTIES

NOW = 1_800_000_000.0
S = 1_000_000  # µs


def container(n: int, **props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Id": f"{n:02d}" * 32, "Name": f"c{n}", "Image": "busybox", "Command": ["true"],
        "State": "configured", "CreatedTimestamp": int((NOW - 3600 * n) * S),
        "ExitCode": 0, "StartedTimestamp": 0, "FinishedTimestamp": 0, "Ports": [],
        "Health": ""}
    return {**base, **props}


CONTAINERS = [
    container(1),
    container(2, State="running", StartedTimestamp=int((NOW - 5) * S),
              Command=["sh", "-c", "while true; do sleep 1; done"], Health="healthy"),
    container(3, State="exited", ExitCode=137, StartedTimestamp=int((NOW - 90) * S),
              FinishedTimestamp=int((NOW - 61) * S), Image="localhost/some/long-name:v1"),
    container(4, State="paused", StartedTimestamp=int((NOW - 7200) * S),
              Ports=[["", 8080, 80, "tcp"], ["127.0.0.1", 5353, 53, "udp"]]),
    container(5, State="running", StartedTimestamp=int(NOW * S), Name="a-very-long-name-x"),
    container(6, State="unknown", CreatedTimestamp=0),
]
# A tab or newline in a command splits the template's row into more cells and lines.
ODD = [container(7, Command=["sh", "-c", "echo a\tb\necho c"]), *CONTAINERS]


@pytest.mark.parametrize("no_trunc", [False, True])
@pytest.mark.parametrize("noheading", [False, True])
@pytest.mark.parametrize("chosen", [[], CONTAINERS[:1], CONTAINERS, ODD])
def test_the_default_table_is_the_templates(no_trunc: bool, noheading: bool,
                                            chosen: list[dict[str, Any]]) -> None:
    expected = render(PS_DEFAULT, [ps_item(c, no_trunc, NOW) for c in chosen], PS_HEADERS,
                      noheading)
    assert ps.table_text(chosen, no_trunc, noheading, NOW) == expected


def test_the_table_header_is_the_templates() -> None:
    header = render(PS_DEFAULT, [], PS_HEADERS).rstrip("\n").split()
    assert " ".join(header) == " ".join(ps.TABLE_HEADER)


def test_the_fields_are_the_property_tables() -> None:
    assert {name: row.field for name, row in CONTAINER_PROPERTIES.items()} == ps.FIELDS
    assert set(ps.TABLE_PROPERTIES) <= set(ps.FIELDS)
    assert set(ps.QUIET_PROPERTIES) <= set(ps.FIELDS)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["ps", *argv])


def test_what_ps_fetches() -> None:
    assert ps.wanted_properties(parse()) == ps.TABLE_PROPERTIES
    assert ps.wanted_properties(parse("--format", "table")) == ps.TABLE_PROPERTIES
    assert ps.wanted_properties(parse("-q")) == ps.QUIET_PROPERTIES
    # a template, JSON or a filter may read any property
    assert ps.wanted_properties(parse("--format", "{{.Labels}}")) == ()
    assert ps.wanted_properties(parse("--format", "json")) == ()
    assert ps.wanted_properties(parse("-q", "--filter", "label=a")) == ()
    assert ps.wanted_states(parse()) == ("running", "paused")
    for every in (["-a"], ["-n", "2"], ["-l"], ["--filter", "status=exited"]):
        assert ps.wanted_states(parse(*every)) == ()


def test_the_sort_keys_are_fetched() -> None:
    for order in ps.PS_SORT.values():
        for properties in (ps.TABLE_PROPERTIES, ps.QUIET_PROPERTIES):
            fetched = {name: CONTAINERS[1][name] for name in properties}
            order(fetched)  # KeyError if --sort key reads what was not fetched


def test_which_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert socket_path(None, None, False) == SYSTEM_SOCKET
    assert socket_path(None, None, True) == "/run/user/1000/pyctrd/io.pyctrd"
    assert socket_path("/tmp/x/io.pyctrd", "unix:path=/b", False) == "/tmp/x/io.pyctrd"
    assert socket_path("", None, False) is None  # --varlink '': D-Bus only
    # a bus chosen by hand may be another daemon's: not the default socket
    assert socket_path(None, "unix:path=/b", False) is None
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/b")
    assert socket_path(None, None, False) is None
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert socket_path(None, None, True) is None


class Replies:
    """ListRows' replies as the daemon sends them, for the client's decoding."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = replies
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, parameters: dict[str, Any]) -> Any:
        self.asked.append((method, parameters))
        return iter(self.replies)


def test_rows_become_dbus_properties_oldest_first() -> None:
    port = {"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}
    client = Replies({"rows": [["b" * 64, 20, [port]], ["c" * 64, 10, []]]},
                     {"rows": [["a" * 64, 20, []]]})
    found = ps.containers_over_varlink(client,  # type: ignore[arg-type]
                                       ("Id", "CreatedTimestamp", "Ports"), ("running",))
    assert client.asked == [("io.pyctrd.Container.ListRows", {
        "fields": ["id", "created_timestamp", "ports"], "states": ["running"]})]
    assert found == [
        {"Id": "c" * 64, "CreatedTimestamp": 10, "Ports": []},
        {"Id": "a" * 64, "CreatedTimestamp": 20, "Ports": []},
        {"Id": "b" * 64, "CreatedTimestamp": 20, "Ports": [["", 8080, 80, "tcp"]]}]
    # every property when none are named
    everything = Replies({"rows": []})
    ps.containers_over_varlink(everything, (), ())  # type: ignore[arg-type]
    assert everything.asked[0][1] == {"fields": list(ps.FIELDS.values())}
