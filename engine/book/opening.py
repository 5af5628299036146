"""Opening a book's files safely: the data dir's lock, a checked connection, WAL mode.

Each refuses with a `BookError` written for the operator, and none writes to a file it
refuses: a book that cannot be used is left exactly as it was.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from engine.book.errors import BookError
from engine.book.schema import SCHEMA_VERSION

LOCK_FILE = "book.lock"


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Create the data dir if needed and hold its lock file; BookError if either fails."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(data_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
    except OSError as error:
        raise BookError(f"the data dir {data_dir} is not writable ({error.strerror or error}); "
                        "give safebrowse a folder it can write with --data-dir or SAFEBROWSE_DATA_DIR") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise BookError(f"another safebrowse server{who} is using the data dir {data_dir}; stop it, "
                        "or give this server its own --data-dir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        if not os.access(data_dir, os.W_OK):
            raise PermissionError("permission denied")
    except OSError as error:
        handle.close()
        raise BookError(f"the data dir {data_dir} is not writable ({getattr(error, 'strerror', None) or error}); "
                        "give safebrowse a folder it can write with --data-dir or SAFEBROWSE_DATA_DIR") from None
    return handle


def connect(path: Path, *, read_only: bool, check: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), checked unless `check` is False.

    Nothing here writes to the file: a book refused at open is left exactly as it was."""
    try:
        if read_only:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                         check_same_thread=False)
        else:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise BookError(f"the book {path} cannot be opened: {error}") from None
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        if check:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BookError(f"the book {path} is damaged (quick_check: {'; '.join(problems[:3])}); "
                                "safebrowse will not start on it: move it aside (a new book is then started) "
                                "or restore a backup")
    except sqlite3.OperationalError as error:
        connection.close()
        raise BookError(f"the book {path} cannot be opened ({error}); check that its data dir is writable "
                        "and on a local file system") from None
    except sqlite3.DatabaseError as error:
        connection.close()
        raise BookError(f"the book {path} is damaged or is not a SQLite database ({error}); "
                        "safebrowse will not start on it: move it aside (a new book is then started) "
                        "or restore a backup") from None
    except BaseException:
        connection.close()
        raise
    return connection


def use_write_ahead_log(connection: sqlite3.Connection, path: Path) -> None:
    """WAL mode (kept in the file) and synchronous=NORMAL (this connection): a commit is an
    append to the log, with no fsync."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise BookError(f"the book {path} cannot use a write-ahead log here (journal mode {mode}); "
                        "put the data dir on a local file system")
    connection.execute("PRAGMA synchronous = NORMAL")


def check_tables(connection: sqlite3.Connection, path: Path, version: int) -> None:
    """A book at the current version has every table this code reads."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = {"episodes", "steps", "exchanges", "media"} - tables
    if version == SCHEMA_VERSION and missing:
        raise BookError(f"the book {path} says schema version {version} but lacks the tables "
                        f"{', '.join(sorted(missing))}; move it aside or restore a backup")


__all__ = ["LOCK_FILE", "check_tables", "connect", "lock_data_dir", "use_write_ahead_log"]
