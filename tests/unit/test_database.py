"""pyctrd.database: the SQLite state store."""

import sqlite3

import pytest

from pyctrd import database as db
from pyctrd.database import SCHEMA_VERSION, Database
from pyctrd.errors import Exists

CID1 = "a" * 64
CID2 = "b" * 64
CONFIG = {"id": CID1, "name": "web", "command": ["sh", "-c", "echo ü"],
          "mounts": [["/src", "/dst", "ro"]], "labels": {"k": "v"}}
STATE = {"state": "configured", "pid": 0, "exit_code": 0, "mounted": False}


@pytest.fixture
def store(tmp_path):
    s = Database(tmp_path / "state.db")
    yield s
    s.close()


def tables(path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def user_version(path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def test_fresh_store_schema_and_wal(store, tmp_path):
    assert store.schema_version == SCHEMA_VERSION
    assert SCHEMA_VERSION == len(db.MIGRATIONS) >= 1
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # WAL is a property of the file: another connection sees it too
    con = sqlite3.connect(tmp_path / "state.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    assert {"containers", "images", "meta"} <= tables(tmp_path / "state.db")


def test_empty_store_lists_nothing(store):
    assert list(store.containers()) == []
    assert list(store.images()) == []
    assert store.get_meta("nope") is None


def test_container_round_trip(store):
    store.add_container(CID1, "web", CONFIG, STATE)
    assert list(store.containers()) == [(CONFIG, STATE)]

    running = {**STATE, "state": "running", "pid": 1234}
    store.save_container_state(CID1, running)
    assert list(store.containers()) == [(CONFIG, running)]

    store.add_container(CID2, "db", {**CONFIG, "id": CID2, "name": "db"}, STATE)
    assert len(list(store.containers())) == 2

    store.remove_container(CID1)
    remaining = list(store.containers())
    assert remaining == [({**CONFIG, "id": CID2, "name": "db"}, STATE)]


def test_remove_missing_container_is_harmless(store):
    store.remove_container("f" * 64)
    assert list(store.containers()) == []


def test_duplicate_name_raises_exists_and_keeps_first(store):
    store.add_container(CID1, "web", CONFIG, STATE)
    other_config = {**CONFIG, "id": CID2, "command": ["other"]}
    with pytest.raises(Exists) as info:
        store.add_container(CID2, "web", other_config, {"state": "created"})
    assert "web" in str(info.value)
    assert list(store.containers()) == [(CONFIG, STATE)]
    # the failed insert left no transaction open: later writes still work
    assert not store._db.in_transaction
    store.add_container(CID2, "db", other_config, STATE)
    assert len(list(store.containers())) == 2


def test_data_is_durable_for_other_connections(store, tmp_path):
    store.add_container(CID1, "web", CONFIG, STATE)
    store.save_container_state(CID1, {"state": "exited"})
    con = sqlite3.connect(tmp_path / "state.db")
    try:
        rows = con.execute("SELECT id, name FROM containers").fetchall()
    finally:
        con.close()
    assert rows == [(CID1, "web")]


def test_images_round_trip(store):
    image = {"id": CID1, "reference": "localhost/busybox:latest", "layers": ["l1", "l2"],
             "size": 2**40}
    store.add_image(CID1, image)
    assert list(store.images()) == [image]
    # add_image replaces a record with the same id
    updated = {**image, "reference": "busybox:1"}
    store.add_image(CID1, updated)
    assert list(store.images()) == [updated]
    store.add_image(CID2, {"id": CID2})
    assert len(list(store.images())) == 2
    store.remove_image(CID1)
    assert list(store.images()) == [{"id": CID2}]


def test_meta_round_trip(store):
    store.set_meta("boot_id", "abc")
    assert store.get_meta("boot_id") == "abc"
    store.set_meta("boot_id", "def")
    assert store.get_meta("boot_id") == "def"
    assert store.get_meta("other") is None


def test_reopen_keeps_data_and_skips_migrations(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    first = Database(path)
    first.add_container(CID1, "web", CONFIG, STATE)
    first.add_image(CID2, {"id": CID2})
    first.set_meta("k", "v")
    first.close()

    # Were migration 1 run again, this would fail.
    monkeypatch.setattr(db, "MIGRATIONS", ["SELECT * FROM no_such_table"])
    second = Database(path)
    try:
        assert second.schema_version == SCHEMA_VERSION
        assert list(second.containers()) == [(CONFIG, STATE)]
        assert list(second.images()) == [{"id": CID2}]
        assert second.get_meta("k") == "v"
    finally:
        second.close()


def test_newer_schema_refuses_to_open(tmp_path):
    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(Exception) as info:
        Database(path)
    message = str(info.value)
    assert str(path) in message
    assert str(SCHEMA_VERSION + 1) in message
    assert "upgrade" in message
    # and it did not touch the file
    assert user_version(path) == SCHEMA_VERSION + 1
    assert tables(path) == set()


BROKEN = """
    CREATE TABLE partial (x INTEGER);
    INSERT INTO partial VALUES (1);
    INSERT INTO no_such_table VALUES (1);
    CREATE TABLE never (y INTEGER);
"""


def _patch_broken_second_migration(monkeypatch):
    # BROKEN after every real migration
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, BROKEN])
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(db.MIGRATIONS) + 1)


def test_failed_migration_on_fresh_db_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    _patch_broken_second_migration(monkeypatch)
    with pytest.raises(sqlite3.Error):
        Database(path)
    assert user_version(path) == SCHEMA_VERSION
    found = tables(path)
    assert {"containers", "images", "meta"} <= found
    assert "partial" not in found
    assert "never" not in found


def test_failed_migration_on_existing_db_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    s = Database(path)
    s.add_container(CID1, "web", CONFIG, STATE)
    s.close()
    _patch_broken_second_migration(monkeypatch)
    with pytest.raises(sqlite3.Error):
        Database(path)
    assert user_version(path) == SCHEMA_VERSION
    assert "partial" not in tables(path)
    # the data from before is untouched and the old schema still opens
    monkeypatch.undo()
    again = Database(path)
    try:
        assert again.schema_version == SCHEMA_VERSION
        assert list(again.containers()) == [(CONFIG, STATE)]
    finally:
        again.close()


def test_second_migration_applies_when_it_works(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    Database(path).close()
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, "CREATE TABLE extra (x);"])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    s = Database(path)
    try:
        assert s.schema_version == SCHEMA_VERSION + 1
    finally:
        s.close()
    assert "extra" in tables(path)
