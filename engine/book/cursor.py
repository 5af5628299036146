"""What of one live episode the book already holds, and how to write the rest.

The manager keeps one `BookCursor` per live episode and calls `save` on the
episode's worker thread at the end of every job, right after the episode
published its snapshot. Records are frozen and replaced by copies when they
change, so the records to write are found by identity against the tuple saved
last; media are new when their step index was not saved yet; the transcript's
exchanges come drained, exactly once.

A failed write keeps everything pending (the exchanges, and the records and media
by not moving the cursor), so the next save writes it all. The exchanges of the
job whose write failed are rewritten first: the agent was told its call could not
be recorded, not shown the page, and the transcript says what the agent saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from engine.agent_view.port import StepNotRecordedError
from engine.book.errors import BookWriteError
from engine.book.writer import BookWriter
from engine.records import EpisodeState, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.transcript import AgentExchange

NOT_RECORDED = StepNotRecordedError.MESSAGE
"""What the agent is told when its call could not be recorded."""


class BookCursor:
    """One episode's position in the book. Used on the episode's worker thread only,
    except `failure`, which other threads may read."""

    def __init__(self) -> None:
        self._state: EpisodeState | None = None
        self._records: tuple[StepRecord, ...] = ()
        self._media: set[int] = set()
        self._pending: list[AgentExchange] = []
        self.failure: BookWriteError | None = None
        """The last write's error while it has not been retried successfully."""

    def save(self, book: BookWriter, snapshot: EpisodeSnapshot, exchanges: Sequence[AgentExchange]) -> None:
        """Write what changed since the last successful save; raises `BookWriteError`."""
        fresh = len(self._pending)
        self._pending.extend(exchanges)
        records = snapshot.records
        changed = [record for index, record in enumerate(records)
                   if index >= len(self._records) or record is not self._records[index]]
        media = {index: step for index, step in snapshot.media.items() if index not in self._media}
        if not changed and not media and not self._pending and snapshot.state == self._state:
            return
        try:
            book.save(snapshot.state, snapshot.recording, changed, self._pending, media)
        except BookWriteError as error:
            self._pending[fresh:] = [dataclasses.replace(exchange, result_text=NOT_RECORDED, is_error=True)
                                     for exchange in self._pending[fresh:]]
            self.failure = error
            raise
        self._state, self._records = snapshot.state, records
        self._media.update(media)
        self._pending = []
        self.failure = None


__all__ = ["NOT_RECORDED", "BookCursor"]
