"""The log is checkpointed by a thread of the Database's own, not by commits."""

import os
import sqlite3
import time
from pathlib import Path

from pyctrd.database import Checkpointer, Database


def wal_frames_not_checkpointed(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        # PASSIVE with nothing else running reports (busy, log frames, checkpointed)
        _busy, log_frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log_frames) - int(done)
    finally:
        db.close()


def test_commits_never_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    db = Database(tmp_path / "pyctrd.db")
    try:
        db.checkpointer.stop()  # first: commits alone
        auto = db._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert auto == 0
        for i in range(3000):  # well past SQLite's automatic 1,000 pages
            db.set_meta(f"k{i}", "x" * 2000)
        wal = tmp_path / "pyctrd.db-wal"
        # SQLite's own checkpoints would keep it near 1,000 pages (4.1 MB)
        assert wal.stat().st_size > 20 << 20  # it grew: no commit checkpointed it

        thread_db = sqlite3.connect(tmp_path / "pyctrd.db", isolation_level=None)
        try:
            db.checkpointer._seen = None
            db.checkpointer.checkpoint_if_written(thread_db)
            assert db.checkpointer.done == 1
            # nothing written since: nothing done
            db.checkpointer.checkpoint_if_written(thread_db)
            assert db.checkpointer.done == 1
        finally:
            thread_db.close()
        assert wal_frames_not_checkpointed(tmp_path / "pyctrd.db") == 0
    finally:
        db.close()


def test_the_thread_checkpoints_what_was_written(tmp_path: Path) -> None:
    db = Database(tmp_path / "pyctrd.db")
    try:
        db.checkpointer.stop()
        db.checkpointer = Checkpointer(tmp_path / "pyctrd.db", every=0.02)
        for i in range(200):
            db.set_meta(f"k{i}", "y" * 500)
        deadline = time.monotonic() + 10
        while db.checkpointer.done == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert db.checkpointer.done >= 1
        assert db.get_meta("k199") == "y" * 500
        assert os.path.exists(tmp_path / "pyctrd.db-wal")
    finally:
        db.close()
