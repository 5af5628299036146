"""The episode book: every episode, step record and agent exchange, in SQLite under a data dir.

One book per data dir, one server per book: `EpisodeBook.open` takes an exclusive
lock on `<data dir>/book.lock` (released when the process ends, however it ends),
so a second server on the same dir refuses to start. `read_only=True` takes no
lock and writes nothing, for reading a book a server may be writing.

The file is in WAL mode with `synchronous=NORMAL`: a commit is one append to the
write-ahead log with no fsync, so it survives the process being killed (the log is
in the operating system's cache) but not a power loss of the last moments, which
would take back the latest commits and never corrupt the file. One connection is
shared by every thread behind a lock; each write is one short transaction.

Opening refuses what would lose or misread episodes, with a message for the
operator (`BookError`): a data dir that cannot be written, a file that is not a
SQLite database or fails `PRAGMA quick_check`, a schema newer than this code.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.book import codec
from engine.book.errors import BookError, write_error
from engine.book.media import MediaFiles, MediaRow, StoredMedia
from engine.book.opening import LOCK_FILE, check_tables, connect, lock_data_dir, use_write_ahead_log
from engine.book.schema import SCHEMA_VERSION, check_version, migrate, stored_version
from engine.recorder import Recording, StepMedia
from engine.records import EpisodeState, EpisodeStatus, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.transcript import AgentExchange

BOOK_FILE = "book.sqlite3"
MEDIA_FOLDER = "media"
SECONDS_PER_DAY = 86_400.0
DEFAULT_MAX_EPISODES = 1_000
DEFAULT_MAX_MEDIA_EPISODES = 100


@dataclass(frozen=True)
class BookEntry:
    """One recorded episode, whole: what an export reads."""

    state: EpisodeState
    records: tuple[StepRecord, ...]
    exchanges: tuple[AgentExchange, ...]
    trainer_data: Mapping[str, Any]


@dataclass(frozen=True)
class BookSummary:
    """One recorded episode without its steps: what a starting server keeps in memory."""

    state: EpisodeState
    recording: Recording
    trainer_data: Mapping[str, Any]
    ended_at: float | None
    """When the book first saw the episode stop running (None while it runs)."""


@dataclass(frozen=True)
class Pruned:
    """What a prune removed: whole episodes, and the media of others."""

    removed: tuple[str, ...] = ()
    media_dropped: tuple[str, ...] = ()


class EpisodeBook:
    """The episodes of one data dir; see the module docstring. Open it with `EpisodeBook.open`."""

    def __init__(self, data_dir: Path, connection: sqlite3.Connection, lock: IO[str] | None, *,
                 max_episodes: int, max_age_days: float | None, max_media_episodes: int) -> None:
        self.data_dir = data_dir
        self.path = data_dir / BOOK_FILE
        self.media = MediaFiles(data_dir / MEDIA_FOLDER)
        self.max_episodes = max_episodes
        self.max_age_days = max_age_days
        self.max_media_episodes = max_media_episodes
        self.read_only = lock is None
        self._connection = connection
        self._lock_file = lock
        self._lock = threading.Lock()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        max_episodes: int = DEFAULT_MAX_EPISODES,
        max_age_days: float | None = None,
        read_only: bool = False,
        max_media_episodes: int = DEFAULT_MAX_MEDIA_EPISODES,
        max_bytes: int | None = None,
    ) -> EpisodeBook:
        """The book of `data_dir`, created (with the dir) when there is none unless `read_only`.

        Retention: closed episodes past the newest `max_episodes`, or created more than
        `max_age_days` ago, are removed by `prune`; closed episodes past the newest
        `max_media_episodes` lose their media files. `max_bytes` caps the database file:
        a write past it fails as a full disk would. Raises `BookError` on bad input.
        """
        data_dir = Path(data_dir).expanduser()
        if read_only:
            return cls._open_read_only(data_dir, max_episodes, max_age_days, max_media_episodes)
        lock = lock_data_dir(data_dir)
        try:
            connection = connect(data_dir / BOOK_FILE, read_only=False)
            try:
                check_version(stored_version(connection), SCHEMA_VERSION)  # before anything changes the file
                use_write_ahead_log(connection, data_dir / BOOK_FILE)
                version = migrate(connection)
                check_tables(connection, data_dir / BOOK_FILE, version)
                if max_bytes is not None:
                    page_size: int = connection.execute("PRAGMA page_size").fetchone()[0]
                    connection.execute(f"PRAGMA max_page_count = {max(1, int(max_bytes) // page_size)}")
            except sqlite3.Error as error:
                connection.close()
                raise BookError(f"the book {data_dir / BOOK_FILE} cannot be used: {error}") from None
            except BaseException:
                connection.close()
                raise
        except BaseException:
            lock.close()
            raise
        return cls(data_dir, connection, lock, max_episodes=max_episodes, max_age_days=max_age_days,
                   max_media_episodes=max_media_episodes)

    @classmethod
    def _open_read_only(cls, data_dir: Path, max_episodes: int, max_age_days: float | None,
                        max_media_episodes: int) -> EpisodeBook:
        path = data_dir / BOOK_FILE
        if not path.is_file():
            raise BookError(f"there is no episode book in {data_dir} (no {BOOK_FILE}); "
                            "name the data dir a server wrote with --data-dir")
        connection = connect(path, read_only=True)
        try:
            version = stored_version(connection)
            check_version(version, SCHEMA_VERSION)
            if version < SCHEMA_VERSION:
                raise BookError(f"book schema version {version} is older than this safebrowse ({SCHEMA_VERSION}); "
                                "start `safebrowse serve` on this data dir once to bring it up to date")
            check_tables(connection, path, version)
        except BaseException:
            connection.close()
            raise
        return cls(data_dir, connection, None, max_episodes=max_episodes, max_age_days=max_age_days,
                   max_media_episodes=max_media_episodes)

    def reader(self) -> EpisodeBook:
        """A book to read from any thread (`entries` opens its own connection each time): this one."""
        return self

    def close(self) -> None:
        """Close the connection and release the data dir's lock."""
        with self._lock:
            self._connection.close()
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    # -- writing -----------------------------------------------------------------------

    def save(
        self,
        state: EpisodeState,
        recording: Recording,
        records: Sequence[StepRecord] = (),
        exchanges: Sequence[AgentExchange] = (),
        media: Mapping[int, StepMedia] | None = None,
    ) -> None:
        """Record the episode's state and what changed since its last save, in one transaction.

        `records` are new or replaced records (kept by index), `exchanges` new ones,
        `media` new steps' media (files first, then their rows). Raises
        `BookWriteError` and commits nothing when any part fails.
        """
        self._require_writable()
        episode_id = state.episode_id
        now = time.time()
        running = state.status is EpisodeStatus.RUNNING
        try:
            rows = [(index, self.media.write(episode_id, index, step)) for index, step in (media or {}).items()]
            with self._lock, self._transaction():
                connection = self._connection
                connection.execute(
                    "INSERT INTO episodes (episode_id, task_id, status, success, failure_reason, created_at,"
                    " ended_at, closed_at, state_json, recording_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (episode_id) DO UPDATE SET status = excluded.status,"
                    " success = excluded.success, failure_reason = excluded.failure_reason,"
                    " ended_at = COALESCE(episodes.ended_at, excluded.ended_at),"
                    " closed_at = COALESCE(episodes.closed_at, excluded.closed_at),"
                    " state_json = excluded.state_json",
                    (episode_id, state.task_id, state.status.value, int(state.success), state.failure_reason.value,
                     state.created_at, None if running else now,
                     now if state.status is EpisodeStatus.CLOSED else None,
                     codec.state_json(state), codec.recording_json(recording)),
                )
                if records:
                    connection.executemany(
                        "INSERT OR REPLACE INTO steps (episode_id, step_index, record_json) VALUES (?, ?, ?)",
                        [(episode_id, record.index, codec.record_json(record)) for record in records])
                if exchanges:
                    connection.executemany(
                        "INSERT OR REPLACE INTO exchanges (episode_id, seq, exchange_json) VALUES (?, ?, ?)",
                        [(episode_id, exchange.seq, codec.exchange_json(exchange)) for exchange in exchanges])
                if rows:
                    connection.executemany(
                        "INSERT OR REPLACE INTO media (episode_id, step_index, has_text, has_png,"
                        " screenshot_skipped) VALUES (?, ?, ?, ?, ?)",
                        [(episode_id, index, int(row.has_text), int(row.has_png), row.screenshot_skipped)
                         for index, row in rows])
        except (sqlite3.Error, OSError) as error:
            raise write_error(episode_id, error) from error

    def set_trainer_data(self, episode_id: str, data: Mapping[str, Any]) -> None:
        """Keep the trainer's small JSON dict with an episode already in the book."""
        self._require_writable()
        try:
            with self._lock, self._transaction():
                self._connection.execute("UPDATE episodes SET trainer_data_json = ? WHERE episode_id = ?",
                                         (codec.trainer_data_json(data), episode_id))
        except sqlite3.Error as error:
            raise write_error(episode_id, error) from error

    def prune(self, now: float | None = None, *, sweep: bool = False) -> Pruned:
        """Apply the retention limits to closed episodes: remove whole episodes past the count
        or the age, and the media files of closed episodes past the newest `max_media_episodes`.

        `sweep` also removes media folders of episodes the book does not hold (left by a
        write that failed after its files); only safe while nothing is being saved.
        """
        self._require_writable()
        now = time.time() if now is None else now
        with self._lock, self._transaction():
            closed = [(row[0], row[1], bool(row[2])) for row in self._connection.execute(
                "SELECT e.episode_id, e.created_at, EXISTS (SELECT 1 FROM media m WHERE m.episode_id = e.episode_id)"
                " FROM episodes e WHERE e.status = ? ORDER BY e.created_at DESC",
                (EpisodeStatus.CLOSED.value,))]
            oldest_kept = now - self.max_age_days * SECONDS_PER_DAY if self.max_age_days is not None else None
            removed = [episode_id for rank, (episode_id, created_at, _media) in enumerate(closed)
                       if rank >= self.max_episodes or (oldest_kept is not None and created_at < oldest_kept)]
            gone = set(removed)
            kept = [(episode_id, has_media) for episode_id, _created, has_media in closed if episode_id not in gone]
            dropped = [episode_id for rank, (episode_id, has_media) in enumerate(kept)
                       if has_media and rank >= self.max_media_episodes]
            for table in ("steps", "exchanges", "media", "episodes"):
                self._connection.executemany(f"DELETE FROM {table} WHERE episode_id = ?",
                                             [(episode_id,) for episode_id in removed])
            self._connection.executemany("DELETE FROM media WHERE episode_id = ?",
                                         [(episode_id,) for episode_id in dropped])
            known = {row[0] for row in self._connection.execute("SELECT episode_id FROM episodes")} if sweep else set()
        for episode_id in (*removed, *dropped):
            self.media.remove(episode_id)
        if sweep:
            for orphan in self.media.episode_ids() - known:
                self.media.remove(orphan)
        return Pruned(tuple(removed), tuple(dropped))

    # -- reading -----------------------------------------------------------------------

    def summaries(self, *, unclosed_only: bool = False) -> list[BookSummary]:
        """Every episode without its steps, oldest first (or only those not closed)."""
        query = ("SELECT state_json, recording_json, trainer_data_json, ended_at FROM episodes"
                 + (" WHERE status != ?" if unclosed_only else "") + " ORDER BY created_at")
        with self._lock:
            rows = self._connection.execute(query, (EpisodeStatus.CLOSED.value,) if unclosed_only else ()).fetchall()
        return [BookSummary(codec.state_of(state), codec.recording_of(recording), codec.trainer_data_of(data), ended)
                for state, recording, data, ended in rows]

    def records(self, episode_id: str) -> tuple[StepRecord, ...]:
        with self._lock:
            return _records(self._connection, episode_id)

    def snapshot(self, episode_id: str) -> EpisodeSnapshot | None:
        """The episode as the book holds it, media read from files on access; None if unknown."""
        with self._lock:
            row = self._connection.execute(
                "SELECT state_json, recording_json FROM episodes WHERE episode_id = ?", (episode_id,)).fetchone()
            if row is None:
                return None
            records = _records(self._connection, episode_id)
            media = {index: MediaRow(bool(text), bool(png), skipped) for index, text, png, skipped in
                     self._connection.execute("SELECT step_index, has_text, has_png, screenshot_skipped FROM media"
                                              " WHERE episode_id = ?", (episode_id,))}
        return EpisodeSnapshot(state=codec.state_of(row[0]), records=records,
                               media=StoredMedia(self.media, episode_id, media), recording=codec.recording_of(row[1]))

    def entries(
        self,
        *,
        task_id: str | None = None,
        success: bool | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[BookEntry]:
        """Every recorded episode that matches, oldest first by creation, one at a time.

        Reads through a read-only connection of its own, opened here and closed when the
        iteration ends, so it may run on any thread while the server writes.
        """
        conditions, parameters = [], []
        for condition, value in (("task_id = ?", task_id), ("success = ?", None if success is None else int(success)),
                                 ("created_at >= ?", since), ("created_at < ?", until)):
            if value is not None:
                conditions.append(condition)
                parameters.append(value)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        connection = connect(self.path, read_only=True, check=False)
        try:
            episodes = connection.execute(
                "SELECT episode_id, state_json, trainer_data_json FROM episodes" + where + " ORDER BY created_at",
                parameters)
            for episode_id, state, data in episodes:
                exchanges = tuple(codec.exchange_of(text) for (text,) in connection.execute(
                    "SELECT exchange_json FROM exchanges WHERE episode_id = ? ORDER BY seq", (episode_id,)))
                yield BookEntry(codec.state_of(state), _records(connection, episode_id), exchanges,
                                codec.trainer_data_of(data))
        finally:
            connection.close()

    # -- internals ---------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self.read_only:
            raise BookError(f"the book {self.path} was opened read-only")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the caller holds `_lock`)."""
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # SQLite may already have rolled back (a full disk does)
                connection.execute("ROLLBACK")
            raise


def _records(connection: sqlite3.Connection, episode_id: str) -> tuple[StepRecord, ...]:
    return tuple(codec.record_of(text) for (text,) in connection.execute(
        "SELECT record_json FROM steps WHERE episode_id = ? ORDER BY step_index", (episode_id,)))


__all__ = ["BOOK_FILE", "LOCK_FILE", "MEDIA_FOLDER", "BookEntry", "BookSummary", "EpisodeBook", "Pruned"]
