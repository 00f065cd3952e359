"""The error catalogue (pyctrd.ops.errors) against shared/API.md's error tables.

API.md lies in shared/, beside the repository's clone (CI lays a copy there
too). The tables parsed are "## Errors" and "## New errors": rows of
| `wire name` | when |.
"""

import inspect
import re
from pathlib import Path

import pytest

from pyctrd import errors
from pyctrd.ops.errors import BY_VARLINK_NAME, CATALOGUE, FAILED, from_dbus_name, kind_of

API_MD = Path(__file__).resolve().parents[3] / "shared" / "API.md"
TABLES = ("## Errors", "## New errors")
# Catalogued names API.md need not list: the generic failure, and the standard
# answer to an unknown object path (stated in API.md's prose, not in a table).
ALLOWED_EXTRAS = {"org.freedesktop.DBus.Error.Failed", "org.freedesktop.DBus.Error.UnknownObject"}

_ROW = re.compile(r"^\|\s*`([A-Za-z0-9_.]+)`\s*\|")
_NAME_IN_TEXT = re.compile(r"`((?:org\.pyctrd1|org\.freedesktop\.DBus)\.Error\.[A-Za-z]+)`")


def _api_text() -> str:
    if not API_MD.is_file():
        pytest.skip(f"{API_MD} is absent: shared/API.md lies beside the clone (CI copies it)")
    return API_MD.read_text()


def table_names(text: str, heading: str) -> list[str]:
    """The error names of the table under ``heading`` (up to the next heading)."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"API.md has no {heading!r} section") from None
    names = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        match = _ROW.match(line)
        if match:
            names.append(match.group(1))
    assert names, f"no error table under {heading!r} in API.md"
    return names


@pytest.fixture(scope="module")
def api_names() -> list[str]:
    text = _api_text()
    return [name for heading in TABLES for name in table_names(text, heading)]


def test_the_tables_parse(api_names: list[str]) -> None:
    assert "org.pyctrd1.Error.NoSuchContainer" in api_names
    assert "org.freedesktop.DBus.Error.LimitsExceeded" in api_names
    assert len(api_names) == len(set(api_names)), "an error is listed twice in API.md"


def test_every_documented_error_is_catalogued(api_names: list[str]) -> None:
    catalogued = {kind.dbus_name for kind in CATALOGUE}
    missing = [name for name in api_names if name not in catalogued]
    assert not missing, f"API.md lists errors pyctrd.ops.errors.CATALOGUE lacks: {missing}"


def test_every_catalogued_error_is_documented(api_names: list[str]) -> None:
    # a name API.md gives in its prose (e.g. the volumes section's NoSuchVolume)
    # is documented too
    in_prose = set(_NAME_IN_TEXT.findall(_api_text()))
    documented = set(api_names) | in_prose | ALLOWED_EXTRAS
    undocumented = sorted({kind.dbus_name for kind in CATALOGUE} - documented)
    assert not undocumented, f"catalogued errors API.md does not mention: {undocumented}"


def _error_classes() -> list[type[errors.PyctrdError]]:
    return [cls for _name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, errors.PyctrdError) and cls is not errors.PyctrdError
            and cls.__module__ == errors.__name__]


def test_each_error_class_has_exactly_one_kind() -> None:
    for cls in _error_classes():
        kinds = [kind for kind in CATALOGUE if kind.exception is cls]
        assert len(kinds) == 1, f"{cls.__name__} is catalogued {len(kinds)} times"
        assert kind_of(cls("x")) is kinds[0]
    assert {kind.exception for kind in CATALOGUE} <= set(_error_classes())


def test_varlink_names_are_unique_and_short() -> None:
    names = [kind.varlink_name for kind in CATALOGUE]
    assert len(names) == len(set(names)), "two kinds share a Varlink error name"
    assert set(BY_VARLINK_NAME) == set(names)
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name


def test_dbus_names_map_back() -> None:
    for kind in CATALOGUE:
        # a wire name two kinds share (Overflow, LimitsExceeded) maps back to the first
        back = from_dbus_name(kind.dbus_name)
        assert back is not None and back.dbus_name == kind.dbus_name
    assert from_dbus_name("org.pyctrd1.Error.NoSuchThing") is None


def test_a_subclass_keeps_its_base_s_wire_name() -> None:
    class NoSuchContainerAnyMore(errors.NoSuchContainer):
        pass

    class DeniedOnTuesdays(errors.AccessDenied):
        pass

    assert kind_of(NoSuchContainerAnyMore("x")).dbus_name == "org.pyctrd1.Error.NoSuchContainer"
    assert kind_of(NoSuchContainerAnyMore("x")).varlink_name == "NoSuchContainer"
    assert kind_of(DeniedOnTuesdays("x")).dbus_name == "org.freedesktop.DBus.Error.AccessDenied"


def test_anything_else_is_failed() -> None:
    assert kind_of(ValueError("x")) is FAILED
    assert kind_of(errors.PyctrdError("x")) is FAILED
    assert FAILED.dbus_name == "org.freedesktop.DBus.Error.Failed"
