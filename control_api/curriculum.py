"""`difficulty: "auto"`: the server picks each task's difficulty from recent results.

The policy, per task, over the task's declared difficulties (easiest first):

- Every ended episode of the task counts once, at the difficulty it ran at, in that
  level's window: its last `window` results. `success` counts as a success; any other
  failure reason counts as a failure, except `none` (closed while still running: the
  trainer abandoned it), `browser_error` (the browser failed, not the agent) and
  `server_restart` (the server died while it ran), which do not count.
- A task starts at its first (easiest) difficulty.
- When a result lands at the task's current level and that level's window is full, the
  level moves up one if the window's success rate is at least `promote_at`, or down one
  if it is at most `demote_at` (and such a level exists).
- Moving clears the window of the level left, so coming back to it takes a fresh full
  window of results.

Results of episodes created with an explicit difficulty count too: they say how the
trainer's agent does at that level. The state lives in memory, fed by the room's
`on_end` (`ControlState.count_ended`), so every way an episode can end (a step, the trainer's end,
the idle reaper, a browser fault) is seen exactly once. A server that starts on an
episode book rebuilds it by replaying the book's ended episodes in the order they
ended (`ControlState.restore`), so a restart neither forgets nor double-counts a
result the book still holds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from control_api.schemas import CurriculumLevel, CurriculumPolicy, CurriculumResponse, CurriculumTask
from engine.records import EpisodeState, FailureReason

AUTO = "auto"
UNCOUNTED = frozenset({FailureReason.NONE, FailureReason.BROWSER_ERROR, FailureReason.SERVER_RESTART})


@dataclass
class TaskProgress:
    """One task's place in the curriculum."""

    difficulties: tuple[str, ...]
    window: int
    level: int = 0
    results: dict[str, deque[bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = {difficulty: deque(maxlen=self.window) for difficulty in self.difficulties}

    @property
    def current(self) -> str:
        return self.difficulties[self.level]


class Curriculum:
    """Per-task difficulty levels, moved by results as the module docstring describes."""

    def __init__(self, policy: CurriculumPolicy | None = None) -> None:
        self.policy = policy or CurriculumPolicy()
        self._tasks: dict[str, TaskProgress] = {}

    def pick(self, task_id: str, difficulties: tuple[str, ...]) -> str | None:
        """The difficulty for a new `auto` episode of the task; None if it declares none."""
        if not difficulties:
            return None
        return self._progress(task_id, difficulties).current

    def record(self, task_id: str, difficulties: tuple[str, ...], difficulty: str | None, success: bool) -> None:
        """Count one ended episode's result at the difficulty it ran at."""
        if difficulty is None or difficulty not in difficulties:
            return
        progress = self._progress(task_id, difficulties)
        window = progress.results[difficulty]
        window.append(success)
        if difficulty != progress.current or len(window) < self.policy.window:
            return
        rate = sum(window) / len(window)
        if rate >= self.policy.promote_at and progress.level + 1 < len(difficulties):
            window.clear()
            progress.level += 1
        elif rate <= self.policy.demote_at and progress.level > 0:
            window.clear()
            progress.level -= 1

    def count(self, difficulties: tuple[str, ...], state: EpisodeState) -> None:
        """Count an ended episode of a task with these difficulties, unless its reason does not count."""
        if state.failure_reason in UNCOUNTED:
            return
        self.record(state.task_id, difficulties, state.difficulty, state.failure_reason is FailureReason.SUCCESS)

    def snapshot(self) -> CurriculumResponse:
        tasks = [
            CurriculumTask(
                task_id=task_id,
                current_difficulty=progress.current,
                levels=[
                    CurriculumLevel(
                        difficulty=difficulty, results=len(results), successes=sum(results),
                        success_rate=sum(results) / len(results) if results else None,
                    )
                    for difficulty, results in progress.results.items()
                ],
            )
            for task_id, progress in sorted(self._tasks.items())
        ]
        return CurriculumResponse(policy=self.policy, tasks=tasks)

    def _progress(self, task_id: str, difficulties: tuple[str, ...]) -> TaskProgress:
        progress = self._tasks.get(task_id)
        if progress is None or progress.difficulties != difficulties:
            progress = self._tasks[task_id] = TaskProgress(difficulties, self.policy.window)
        return progress


__all__ = ["AUTO", "UNCOUNTED", "Curriculum"]
