"""The episodes a manager knows from its book rather than holds live.

Closed episodes past the newest few, and every episode of an earlier run on the same
book, are not kept as `Episode` objects: the manager knows their states (loaded once,
at start) and reads their steps back from the book when a trainer asks, keeping the
last few snapshots it read. Event loop only, like the manager's other bookkeeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from engine.book.store import BookSummary, EpisodeBook
from engine.records import EpisodeState
from engine.snapshot import EpisodeSnapshot

SNAPSHOTS_CACHED = 32
"""Snapshots read back from the book, kept for the next read (their media stay on disk until asked for)."""


class BookArchive:
    def __init__(self) -> None:
        self._summaries: dict[str, BookSummary] = {}
        self._snapshots: OrderedDict[str, EpisodeSnapshot] = OrderedDict()
        self._history: list[EpisodeState] = []

    def load(self, book: EpisodeBook) -> None:
        """Know every episode the book holds (states only; steps are read when asked for)."""
        summaries = book.summaries()
        self._summaries = {summary.state.episode_id: summary for summary in summaries}
        ended = [summary for summary in summaries if summary.ended_at is not None]
        self._history = [summary.state for summary in sorted(ended, key=lambda summary: summary.ended_at or 0.0)]

    def __contains__(self, episode_id: str) -> bool:
        return episode_id in self._summaries

    def __iter__(self) -> Iterator[str]:
        return iter(self._summaries)

    def summary(self, episode_id: str) -> BookSummary | None:
        return self._summaries.get(episode_id)

    def states(self) -> list[EpisodeState]:
        return [summary.state for summary in self._summaries.values()]

    def history(self) -> list[EpisodeState]:
        """The ended episodes the book held at start, in the order they ended."""
        return list(self._history)

    def trainer_data_items(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for episode_id, summary in self._summaries.items():
            yield episode_id, summary.trainer_data

    def add(self, summary: BookSummary) -> None:
        """An episode the manager stops holding live; the book has all of it."""
        self._summaries[summary.state.episode_id] = summary

    def snapshot(self, book: EpisodeBook, episode_id: str) -> EpisodeSnapshot | None:
        """The episode read back from the book (or from the last reads); None if the book no
        longer holds it (pruned a moment ago)."""
        cached = self._snapshots.get(episode_id)
        if cached is not None:
            self._snapshots.move_to_end(episode_id)
            return cached
        snapshot = book.snapshot(episode_id)
        if snapshot is None:
            return None
        self._snapshots[episode_id] = snapshot
        while len(self._snapshots) > SNAPSHOTS_CACHED:
            self._snapshots.popitem(last=False)
        return snapshot

    def forget_snapshot(self, episode_id: str) -> None:
        """Drop a cached read (its media were removed from the book)."""
        self._snapshots.pop(episode_id, None)

    def forget(self, episode_id: str) -> None:
        """The book no longer holds the episode."""
        self._summaries.pop(episode_id, None)
        self._snapshots.pop(episode_id, None)
