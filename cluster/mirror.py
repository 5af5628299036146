"""The front's copy of one live episode, built from the record batches of its node.

Every batch a node sends is what one job changed (`cluster.outbox.RecordBatch`): the
episode's whole state, new or replaced step records, new media. The front writes a
batch to its book, then applies it here, then confirms it, so by the time an agent
hears of a step, the front's control API shows it. Event loop only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cluster.outbox import RecordBatch
from engine.recorder import StepMedia
from engine.records import EpisodeStatus, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.step_records import terminal


@dataclass
class EpisodeMirror:
    node_name: str
    """The browser node (`cluster.fleet.Node.name`) that holds the episode."""
    snapshot: EpisodeSnapshot | None = None
    trainer_data: dict[str, Any] = field(default_factory=dict)
    _records: dict[int, StepRecord] = field(default_factory=dict)
    _media: dict[int, StepMedia] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.snapshot is None or self.snapshot.state.status is EpisodeStatus.RUNNING

    def apply(self, batch: RecordBatch) -> list[StepRecord]:
        """Take in one batch; returns the steps it adds (not those it replaces)."""
        added = [record for record in batch.records if record.index not in self._records]
        for record in batch.records:
            self._records[record.index] = record
        self._media.update(batch.media)
        self.snapshot = EpisodeSnapshot(
            state=batch.state,
            records=tuple(self._records[index] for index in sorted(self._records)),
            media=dict(self._media),
            recording=batch.recording,
        )
        return added

    def lost(self) -> RecordBatch:
        """The batch that settles the episode when its node is lost: a running episode ends
        `browser_error` on its last answered step; either way it is closed (`node_lost`)."""
        assert self.snapshot is not None
        state, records = self.snapshot.state, self.snapshot.records
        changed: tuple[StepRecord, ...] = ()
        if state.status is EpisodeStatus.RUNNING:
            state = state.model_copy(update={"failure_reason": FailureReason.BROWSER_ERROR, "success": False})
            if records:
                changed = (terminal(records[-1], FailureReason.BROWSER_ERROR),)
        state = state.model_copy(update={"status": EpisodeStatus.CLOSED, "done": True, "closed_by": "node_lost"})
        return RecordBatch(seq=0, state=state, recording=self.snapshot.recording, records=changed, exchanges=())


__all__ = ["EpisodeMirror"]
