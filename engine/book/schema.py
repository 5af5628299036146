"""The book's tables, versioned: an ordered list of migrations from version 1 on.

The version lives in SQLite's `PRAGMA user_version` (0 in a new file). Opening a
book applies, in one transaction, every migration past the stored version, so a
book written by an older safebrowse is brought up to date and one written by a
newer safebrowse is refused: its tables may mean something this code does not know.

To change the schema, append one function to `MIGRATIONS`; never edit one that
has shipped, since books out there are already past it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from engine.book.errors import BookError

Migration = Callable[[sqlite3.Connection], None]


def _version_1(connection: sqlite3.Connection) -> None:
    """Episodes (the state as JSON, with the columns listings filter on), step records,
    the agent's transcript, and the index of media files (their bytes are files)."""
    for statement in (
        """CREATE TABLE episodes (
            episode_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            status TEXT NOT NULL,
            success INTEGER NOT NULL,
            failure_reason TEXT NOT NULL,
            created_at REAL NOT NULL,
            ended_at REAL,
            closed_at REAL,
            state_json TEXT NOT NULL,
            recording_json TEXT NOT NULL,
            trainer_data_json TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX episodes_by_creation ON episodes (created_at)",
        "CREATE INDEX episodes_by_task ON episodes (task_id, created_at)",
        "CREATE INDEX episodes_by_status ON episodes (status, created_at)",
        """CREATE TABLE steps (
            episode_id TEXT NOT NULL,
            step_index INTEGER NOT NULL,
            record_json TEXT NOT NULL,
            PRIMARY KEY (episode_id, step_index)
        ) WITHOUT ROWID""",
        """CREATE TABLE exchanges (
            episode_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            exchange_json TEXT NOT NULL,
            PRIMARY KEY (episode_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE media (
            episode_id TEXT NOT NULL,
            step_index INTEGER NOT NULL,
            has_text INTEGER NOT NULL,
            has_png INTEGER NOT NULL,
            screenshot_skipped TEXT,
            PRIMARY KEY (episode_id, step_index)
        ) WITHOUT ROWID""",
    ):
        connection.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (_version_1,)
"""`MIGRATIONS[n]` brings a book from version n to version n + 1."""

SCHEMA_VERSION = len(MIGRATIONS)


def stored_version(connection: sqlite3.Connection) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def check_version(version: int, latest: int) -> None:
    """Refuse a book written by a newer safebrowse."""
    if version > latest:
        raise BookError(f"book schema version {version} is newer than this safebrowse ({latest}); "
                        "upgrade safebrowse, or give this server another --data-dir")


def migrate(connection: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations past the stored version, in one transaction; returns the version now.

    The connection must be in autocommit mode (`isolation_level=None`): the
    transaction is opened here, so a failing migration leaves the book as it was.
    """
    version = stored_version(connection)
    check_version(version, len(migrations))
    if version == len(migrations):
        return version
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = stored_version(connection)  # another process may have migrated meanwhile
        check_version(version, len(migrations))
        for migration in migrations[version:]:
            migration(connection)
        connection.execute(f"PRAGMA user_version = {len(migrations)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(migrations)


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "check_version", "migrate", "stored_version"]
