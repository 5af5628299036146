"""Episodes a server left open when it died: shown ended and closed, saying why.

A server killed while an episode ran (SIGKILL, a crash, a power cut) never ended
or closed it, and its browser is gone with the process. The next server on the
same book settles such episodes before serving anything, so every reader (the
control API, an export) sees a finished episode that says what happened:

- a running episode ends with `server_restart`; its last step, if any, becomes
  the terminal one (as when a trainer ends an episode after its last step), and it
  is closed by `server_restart`;
- an episode that had ended but was not closed keeps its reason, and is closed by
  `server_restart`.
"""

from __future__ import annotations

from engine.book.store import EpisodeBook
from engine.records import EpisodeStatus, FailureReason
from engine.step_records import terminal


def settle_interrupted(book: EpisodeBook) -> list[str]:
    """Close every episode the book holds as not closed; returns their ids."""
    settled = []
    for summary in book.summaries(unclosed_only=True):
        state = summary.state
        changed = []
        if state.status is EpisodeStatus.RUNNING:
            state = state.model_copy(update={"failure_reason": FailureReason.SERVER_RESTART, "success": False})
            records = book.records(state.episode_id)
            if records:
                changed.append(terminal(records[-1], FailureReason.SERVER_RESTART))
        state = state.model_copy(update={"status": EpisodeStatus.CLOSED, "done": True, "closed_by": "server_restart"})
        book.save(state, summary.recording, changed)
        settled.append(state.episode_id)
    return settled


__all__ = ["settle_interrupted"]
