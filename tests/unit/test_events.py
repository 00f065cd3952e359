"""pyctrd.core.events: the bounded, ordered history in the store."""

from pathlib import Path

from pyctrd.core.events import EventLog, _transition
from pyctrd.core.state import State
from pyctrd.database import Database


def test_history_is_bounded_and_ordered(tmp_path: Path) -> None:
    store = Database(tmp_path / "state.db")
    try:
        log = EventLog(store, keep=5)
        for n in range(12):
            log.record("container", "start", f"id{n}", {"n": str(n)})
        kept = log.history()
        assert [e.id for e in kept] == [f"id{n}" for n in range(7, 12)]
        assert [e.time_usec for e in kept] == sorted(e.time_usec for e in kept)
        assert kept[-1].attributes == {"n": "11"}
        assert log.history(since_usec=kept[-1].time_usec)[-1].id == "id11"
        assert log.history(until_usec=kept[0].time_usec - 1) == []
    finally:
        store.close()


def test_times_never_go_back(tmp_path: Path, monkeypatch) -> None:
    store = Database(tmp_path / "state.db")
    try:
        log = EventLog(store)
        first = log.record("image", "import", "a")
        monkeypatch.setattr("time.time_ns", lambda: 1_000)  # the clock stepped back
        second = log.record("image", "remove", "a")
        assert second.time_usec == first.time_usec
        # a new EventLog (a restart) continues from the stored last time
        assert EventLog(store).record("image", "tag", "a").time_usec >= first.time_usec
    finally:
        store.close()


def test_transitions_are_named() -> None:
    assert _transition(State.PAUSED, State.RUNNING) == "unpause"
    assert _transition(State.CREATED, State.RUNNING) == "start"
    assert _transition(State.RUNNING, State.PAUSED) == "pause"
    assert _transition(State.RUNNING, State.EXITED) == "died"
    assert _transition(State.CONFIGURED, State.EXITED) is None
