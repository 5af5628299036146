"""What can go wrong with the episode book, worded for whoever has to act on it.

`BookError` is raised when a book cannot be opened (the operator fixes the data dir
or the file); `BookWriteError` when a write fails while serving (a full disk, a
size cap): the server keeps the episode in memory, refuses further steps of it,
and writes everything once the book accepts writes again.
"""

from __future__ import annotations

import errno
import sqlite3

SQLITE_FULL = 13


class BookError(Exception):
    """The book cannot be used; the message is written for the operator, as is."""


class BookWriteError(Exception):
    """A write to the book failed; nothing of it was committed.

    `full` says the disk (or the book's size cap) has no room: the one failure an
    operator fixes by freeing space, and the trainer sees as `book_full`.
    """

    def __init__(self, episode_id: str, reason: str, *, full: bool) -> None:
        self.episode_id = episode_id
        self.reason = reason
        self.full = full
        what = "the disk or the book's size cap is full" if full else "the book refused the write"
        super().__init__(f"episode {episode_id!r} could not be recorded: {what} ({reason}); it is kept in "
                         "memory and recorded once the book accepts writes again")

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled whole (a cluster's browser node raises it to the front through Ray)."""
        return _rebuild_write_error, (self.episode_id, self.reason, self.full)


def _rebuild_write_error(episode_id: str, reason: str, full: bool) -> BookWriteError:
    return BookWriteError(episode_id, reason, full=full)


def write_error(episode_id: str, error: BaseException) -> BookWriteError:
    """The `BookWriteError` for a failed SQLite statement or media file write."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    full = (code is not None and code & 0xFF == SQLITE_FULL) or (
        isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT))
    return BookWriteError(episode_id, f"{type(error).__name__}: {error}", full=full)


__all__ = ["BookError", "BookWriteError", "write_error"]
