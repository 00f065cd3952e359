"""pyctrd.core.state: which operation may run in which state."""

import pytest

from pyctrd.core.state import ACTIVE, ALLOWED, State, require
from pyctrd.errors import InvalidState, PyctrdError

# The state machine of API.md, written out independently of ALLOWED.
EXPECTED = {
    "Init": {"configured", "exited"},
    "Start": {"configured", "created", "exited"},
    "Stop": {"created", "running", "paused"},
    "Kill": {"running"},
    "Pause": {"running"},
    "Unpause": {"paused"},
    "Mount": {"configured", "created", "running", "paused", "exited"},
    "Unmount": {"configured", "created", "exited"},
    "Export": {"configured", "created", "running", "paused", "exited"},
    "Remove": {"configured", "created", "exited", "unknown"},
}

PAIRS = [(op, state) for op in sorted(ALLOWED) for state in State]


def test_table_matches_the_contract():
    assert {op: {str(s) for s in states} for op, states in ALLOWED.items()} == EXPECTED


def test_active_states():
    assert {str(s) for s in ACTIVE} == {"created", "running", "paused"}


def test_state_values_are_the_api_strings():
    assert [str(s) for s in State] == [
        "configured", "created", "running", "paused", "exited", "unknown"]


@pytest.mark.parametrize(("operation", "state"), PAIRS, ids=[f"{o}-{s}" for o, s in PAIRS])
def test_require(operation, state):
    if state in ALLOWED[operation]:
        require(operation, state, "web")  # does not raise
        return
    with pytest.raises(InvalidState) as info:
        require(operation, state, "web")
    message = str(info.value)
    assert isinstance(info.value, PyctrdError)
    assert operation in message
    assert "web" in message
    assert f"it is {state.value}" in message
    for needed in ALLOWED[operation]:
        assert needed.value in message
    # no enum repr leaks into the human message
    assert "State." not in message
    assert "\n" not in message


def test_message_lists_needed_states_after_current():
    with pytest.raises(InvalidState) as info:
        require("Unpause", State.RUNNING, "db")
    assert str(info.value) == (
        "cannot Unpause container db: it is running; "
        "Unpause needs a container that is paused"
    )
