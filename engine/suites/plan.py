"""Which episodes a suite runs, decided and checked before any browser starts.

A suite names tasks (or named suites of `tasks.suites`, expanded in place) and runs
each task `episodes` times, seeded `seed`, `seed + 1`, ... Everything a run could
trip on later (an unknown task, a count out of range, a difficulty a task lacks) is
refused here with one sentence, so an evaluation never stops half-way on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.registry import TaskRegistry, UnknownTaskError
from tasks.suites import NAMED_SUITES

MAX_EPISODES = 100
"""Episodes per task: enough for a tight interval, few enough that a typo is not a day's run."""
MAX_TASKS = 200
MAX_SEED = 2**31 - 1


class SuitePlanError(ValueError):
    """The suite cannot be run as asked; the message says what to change."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions or []


@dataclass(frozen=True)
class PlannedEpisode:
    task_id: str
    seed: int


@dataclass(frozen=True)
class SuitePlan:
    """The episodes of a suite, in the order the agent meets them."""

    task_ids: tuple[str, ...]
    episodes_per_task: int
    seed: int
    difficulty: str | None
    max_steps: int | None
    episodes: tuple[PlannedEpisode, ...]


def expand(suite: str) -> list[str]:
    """Task ids of a comma-separated list of task ids and suite names, first mention kept."""
    ids: list[str] = []
    for item in (part.strip() for part in suite.split(",")):
        if not item:
            continue
        named = NAMED_SUITES.get(item)
        ids.extend(named.task_ids if named is not None else (item,))
    return list(dict.fromkeys(ids))


def plan_suite(
    registry: TaskRegistry, suite: str, episodes: int, seed: int = 0, difficulty: str | None = None,
    max_steps: int | None = None,
) -> SuitePlan:
    """The plan of `suite`, or `SuitePlanError` saying what is wrong with the request."""
    task_ids = expand(suite)
    if not task_ids:
        raise SuitePlanError("the suite names no task: give task ids or a suite name "
                             f"({', '.join(NAMED_SUITES)}), separated by commas")
    if len(task_ids) > MAX_TASKS:
        raise SuitePlanError(f"the suite names {len(task_ids)} tasks; at most {MAX_TASKS}")
    if not 1 <= episodes <= MAX_EPISODES:
        raise SuitePlanError(f"episodes per task must be between 1 and {MAX_EPISODES}, not {episodes}")
    if not 0 <= seed <= MAX_SEED - episodes:
        raise SuitePlanError(f"the seed must be between 0 and {MAX_SEED - episodes}, not {seed}")
    if max_steps is not None and not 1 <= max_steps <= 10_000:
        raise SuitePlanError(f"max_steps must be between 1 and 10000, not {max_steps}")
    for task_id in task_ids:
        try:
            spec = registry.get(task_id)
        except UnknownTaskError as error:
            raise SuitePlanError(f"{error} (a suite names task ids or suites: {', '.join(NAMED_SUITES)})",
                                 error.suggestions) from None
        if difficulty is not None and spec.difficulties and difficulty not in spec.difficulties:
            raise SuitePlanError(f"task {task_id!r} has difficulties {list(spec.difficulties)}, not {difficulty!r}")
    planned = tuple(PlannedEpisode(task_id, seed + n) for task_id in task_ids for n in range(episodes))
    return SuitePlan(tuple(task_ids), episodes, seed, difficulty, max_steps, planned)


__all__ = ["MAX_EPISODES", "PlannedEpisode", "SuitePlan", "SuitePlanError", "expand", "plan_suite"]
