"""How a browser node hands each job's records to the front, and learns they are kept.

The node's `EpisodeManager` writes through a `RecordOutbox` (a `BookWriter`), on the
episode's worker thread, at the end of every job and before the agent is answered.
`save` queues the change as a numbered `RecordBatch` and waits until the front has
confirmed it. The front drains the outbox with a long-polling actor call,
`take(confirmed, wait_s)`: it passes the last batch it has written to its book and
receives the batches after it. So an answered step is in the front's book: losing the
node loses no step its agent was told about.

If the front does not confirm within `timeout_s` (it is gone, or its book refuses
writes), `save` raises `BookWriteError`: the agent is told its step could not be
recorded, exactly as on a single server whose disk is full, and the episode's cursor
keeps the change to send again. Sending again is harmless: the book keeps records by
index and exchanges by number.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.book.errors import BookWriteError
from engine.recorder import Recording, StepMedia
from engine.records import EpisodeState, StepRecord
from engine.transcript import AgentExchange


@dataclass(frozen=True)
class RecordBatch:
    """One job's change to one episode, as `EpisodeBook.save` takes it."""

    seq: int
    state: EpisodeState
    recording: Recording
    records: tuple[StepRecord, ...]
    exchanges: tuple[AgentExchange, ...]
    media: dict[int, StepMedia] = field(default_factory=dict)


class RecordOutbox:
    """A node's `BookWriter`: `save` from worker threads, `take` from the actor's event loop."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._condition = threading.Condition()
        self._unconfirmed: list[RecordBatch] = []
        self._last_seq = 0
        self._confirmed = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop `take` runs on (the actor's), so that `save` can wake it."""
        self._loop = loop
        self._ready = asyncio.Event()

    def save(
        self,
        state: EpisodeState,
        recording: Recording,
        records: Sequence[StepRecord] = (),
        exchanges: Sequence[AgentExchange] = (),
        media: Mapping[int, StepMedia] | None = None,
    ) -> None:
        with self._condition:
            if self._closed:
                raise BookWriteError(state.episode_id, "the browser node is stopping", full=False)
            self._last_seq += 1
            seq = self._last_seq
            self._unconfirmed.append(RecordBatch(seq, state, recording, tuple(records), tuple(exchanges),
                                                 dict(media or {})))
        self._wake()
        deadline = time.monotonic() + self.timeout_s
        with self._condition:
            while self._confirmed < seq:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    self._unconfirmed = [batch for batch in self._unconfirmed if batch.seq != seq]
                    why = "the browser node is stopping" if self._closed else (
                        f"the cluster's front did not confirm it within {self.timeout_s:g} s")
                    raise BookWriteError(state.episode_id, why, full=False)
                self._condition.wait(left)

    async def take(self, confirmed: int, wait_s: float) -> list[RecordBatch]:
        """Mark every batch up to `confirmed` as kept by the front, then return the batches after
        it, waiting up to `wait_s` for one when there are none."""
        batches = self._confirm(confirmed)
        if batches or self._ready is None:
            return batches
        self._ready.clear()
        batches = self._after(confirmed)  # a save between the confirm and the clear
        if batches:
            return batches
        try:
            await asyncio.wait_for(self._ready.wait(), wait_s)
        except TimeoutError:
            pass
        return self._after(confirmed)

    def close(self) -> None:
        """Stop accepting changes; waiting saves fail now."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _confirm(self, confirmed: int) -> list[RecordBatch]:
        with self._condition:
            if confirmed > self._confirmed:
                self._confirmed = confirmed
                self._unconfirmed = [batch for batch in self._unconfirmed if batch.seq > confirmed]
                self._condition.notify_all()
            return [batch for batch in self._unconfirmed if batch.seq > confirmed]

    def _after(self, confirmed: int) -> list[RecordBatch]:
        with self._condition:
            return [batch for batch in self._unconfirmed if batch.seq > confirmed]

    def _wake(self) -> None:
        loop, ready = self._loop, self._ready
        if loop is not None and ready is not None:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # the loop is closed: the node is gone
                pass


__all__ = ["RecordBatch", "RecordOutbox"]
