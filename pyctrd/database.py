"""The on-disk state store: SQLite in WAL mode with versioned migrations.

Records are kept as JSON documents keyed by id: the container's config is
written once, its state on every transition. WAL with synchronous=NORMAL
survives the daemon being killed at any point (a commit is in the log before
the caller is answered); only a power cut may lose the last transitions,
which start-up reconciliation with runc repairs.

Checkpoints (copying the log back into the database, with an fsync) run in a
thread of their own, never in a commit on the event loop: SQLite's automatic
checkpoint would make whichever commit crosses 1,000 pages wait for it (18 ms
and more during an exit storm).
"""

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyctrd.errors import Exists

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE containers (
        id     TEXT PRIMARY KEY,
        name   TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,
        state  TEXT NOT NULL
    );
    CREATE TABLE images (
        id     TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the event history (core/events.py), bounded by EventLog; seq orders it
    """
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY,
        time_usec  INTEGER NOT NULL,
        type       TEXT NOT NULL,
        action     TEXT NOT NULL,
        object_id  TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    CREATE INDEX events_time ON events (time_usec);
    """,
    # 3: named volumes (core/volumes.py)
    """
    CREATE TABLE volumes (
        name   TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's job
        self._db.execute("PRAGMA journal_size_limit=8388608")  # a storm's log, not kept
        self._migrate()
        self.checkpointer = Checkpointer(path)

    def close(self) -> None:
        self.checkpointer.stop()
        self._db.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {self.path} has schema {current}, newer than this pyctrd "
                f"({SCHEMA_VERSION}); upgrade pyctrd"
            )
        for version in range(current, SCHEMA_VERSION):
            # executescript commits first, so the transaction is part of the script.
            try:
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {MIGRATIONS[version]}; "
                    f"PRAGMA user_version={version + 1}; COMMIT;"
                )
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    # containers

    def add_container(self, cid: str, name: str, config: dict[str, Any],
                      state: dict[str, Any]) -> None:
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO containers (id, name, config, state) VALUES (?, ?, ?, ?)",
                    (cid, name, _dump(config), _dump(state)),
                )
        except sqlite3.IntegrityError as err:
            raise Exists(f"the name {name} is already in use; choose another name") from err

    def save_container_state(self, cid: str, state: dict[str, Any]) -> None:
        self._db.execute("UPDATE containers SET state = ? WHERE id = ?", (_dump(state), cid))

    def remove_container(self, cid: str) -> None:
        self._db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for config, state in self._db.execute("SELECT config, state FROM containers"):
            yield json.loads(config), json.loads(state)

    def container_texts(self) -> Iterator[tuple[str, str, str, str]]:
        """(id, name, config, state) with the two documents as stored, JSON text
        (core/records.py decodes alike ones once)."""
        yield from self._db.execute("SELECT id, name, config, state FROM containers")

    # images

    def add_image(self, iid: str, record: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO images (id, record) VALUES (?, ?)", (iid, _dump(record))
        )

    def remove_image(self, iid: str) -> None:
        self._db.execute("DELETE FROM images WHERE id = ?", (iid,))

    def images(self) -> Iterator[dict[str, Any]]:
        for (record,) in self._db.execute("SELECT record FROM images"):
            yield json.loads(record)

    # volumes

    def add_volume(self, name: str, record: dict[str, Any]) -> None:
        try:
            self._db.execute("INSERT INTO volumes (name, record) VALUES (?, ?)",
                             (name, _dump(record)))
        except sqlite3.IntegrityError as e:
            raise Exists(f"volume {name!r} already exists") from e

    def remove_volume(self, name: str) -> None:
        self._db.execute("DELETE FROM volumes WHERE name = ?", (name,))

    def volumes(self) -> Iterator[dict[str, Any]]:
        for (record,) in self._db.execute("SELECT record FROM volumes"):
            yield json.loads(record)

    # meta

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


    # events (newest last; at most ``keep`` of them stay)

    def add_event(self, time_usec: int, kind: str, action: str, object_id: str,
                  attributes: dict[str, str], keep: int) -> None:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO events (time_usec, type, action, object_id, attributes) "
                "VALUES (?, ?, ?, ?, ?)",
                (time_usec, kind, action, object_id, _dump(attributes)))
            # seq grows by one per event: everything older than the last ``keep`` goes.
            self._db.execute("DELETE FROM events WHERE seq <= ?",
                             ((cursor.lastrowid or 0) - keep,))

    def events(self, since_usec: int = 0, until_usec: int = 0
               ) -> list[tuple[int, str, str, str, dict[str, str]]]:
        """(time, type, action, object ID, attributes), oldest first; 0: no bound."""
        query = "SELECT time_usec, type, action, object_id, attributes FROM events"
        bounds, args = [], []
        if since_usec:
            bounds.append("time_usec >= ?")
            args.append(since_usec)
        if until_usec:
            bounds.append("time_usec <= ?")
            args.append(until_usec)
        if bounds:
            query += " WHERE " + " AND ".join(bounds)
        return [(t, kind, action, oid, json.loads(attrs)) for t, kind, action, oid, attrs
                in self._db.execute(query + " ORDER BY seq", args)]

    def last_event_time(self) -> int:
        row = self._db.execute("SELECT time_usec FROM events ORDER BY seq DESC LIMIT 1"
                               ).fetchone()
        return 0 if row is None else int(row[0])


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


class Checkpointer:
    """Checkpoints the log in a thread, at most every ``every`` s, when it was written."""

    def __init__(self, path: Path, every: float = 1.0) -> None:
        self._wal = Path(f"{path}-wal")
        self._path = path
        self._every = every
        self._seen: int | None = None  # the log's mtime at the last checkpoint
        self._stop = threading.Event()
        self.done = 0  # checkpoints made: for tests and logs
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._every):
                self.checkpoint_if_written(db)
        finally:
            db.close()

    def checkpoint_if_written(self, db: sqlite3.Connection) -> None:
        try:
            written = os.stat(self._wal).st_mtime_ns
        except FileNotFoundError:
            return
        if written == self._seen:
            return
        self._seen = written
        try:
            # PASSIVE: copies what no reader needs; never waits for, nor blocks, a writer
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.done += 1
        except sqlite3.Error as err:
            log.warning("checkpointing %s failed: %s", self._path, err)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)
