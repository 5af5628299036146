"""The operator's report of a suite: what each episode came to, per task and overall.

Built from the room's own records (each episode's state and step records), never
from what the agent was told, so it matches what the control API shows of the same
episodes. Success rates carry a 95% Wilson score interval: with the few episodes an
evaluation runs, the normal approximation would give intervals outside [0, 1] or of
zero width at 0% and 100%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a success rate; (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, not 1e-17 off
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return low, high


class SuiteEpisodeResult(BaseModel):
    """One episode of the suite, as the room recorded it."""

    index: int = Field(description="Position in the suite, from 0.")
    episode_id: str | None = Field(description="Null when the episode could not be set up.")
    task_id: str
    seed: int
    ended: bool = Field(description="False for the episode that was running when the report was made.")
    success: bool
    failure_reason: str = Field(description="The engine's failure reason (\"none\" on success), or "
                                            "\"setup_failed\" when the episode could not be set up.")
    steps: int
    return_: float = Field(alias="return", description="Cumulative reward with the default weights.")
    wall_time_s: float = Field(description="From the episode's creation to its last activity.")

    model_config = {"populate_by_name": True}


class RateWithInterval(BaseModel):
    episodes: int = Field(description="Ended episodes counted.")
    successes: int
    success_rate: float | None = Field(description="successes / episodes; null before any episode ended.")
    ci95_low: float = Field(description="Lower end of the 95% Wilson score interval.")
    ci95_high: float = Field(description="Upper end of the 95% Wilson score interval.")
    mean_return: float | None
    mean_steps: float | None


class TaskScore(RateWithInterval):
    task_id: str


class SuiteReport(BaseModel):
    """The report so far; `complete` once every planned episode has ended."""

    suite_id: str
    suite: str = Field(description="The suite as asked for (task ids and suite names).")
    tasks: list[str]
    episodes_per_task: int
    seed: int
    difficulty: str | None
    planned_episodes: int
    complete: bool
    incomplete_reason: str | None = Field(
        default=None, description="Why the suite stopped early (\"disconnected\", \"shutdown\"), when it did.")
    started_at: float
    updated_at: float
    episodes: list[SuiteEpisodeResult]
    per_task: list[TaskScore]
    overall: RateWithInterval

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def rate_of(results: Sequence[SuiteEpisodeResult]) -> RateWithInterval:
    """Success rate, interval and means over the ended episodes of `results`."""
    ended = [result for result in results if result.ended]
    successes = sum(result.success for result in ended)
    low, high = wilson_interval(successes, len(ended))
    return RateWithInterval(
        episodes=len(ended), successes=successes,
        success_rate=successes / len(ended) if ended else None, ci95_low=round(low, 4), ci95_high=round(high, 4),
        mean_return=sum(r.return_ for r in ended) / len(ended) if ended else None,
        mean_steps=sum(r.steps for r in ended) / len(ended) if ended else None,
    )


def per_task(task_ids: Sequence[str], results: Sequence[SuiteEpisodeResult]) -> list[TaskScore]:
    return [TaskScore(task_id=task_id, **rate_of([r for r in results if r.task_id == task_id]).model_dump())
            for task_id in task_ids]


def table(report: SuiteReport) -> str:
    """A short fixed-width table of the report, for a terminal (stderr of `safebrowse stdio`)."""
    lines = [f"suite {report.suite_id}: {report.suite} ({'complete' if report.complete else 'incomplete'})",
             f"{'task':<36} {'ok/n':>7} {'rate':>6} {'95% CI':>13} {'return':>7}"]

    def row(name: str, score: RateWithInterval) -> str:
        rate = f"{score.success_rate:.0%}" if score.success_rate is not None else "—"
        mean = f"{score.mean_return:.2f}" if score.mean_return is not None else "—"
        return (f"{name:<36} {f'{score.successes}/{score.episodes}':>7} {rate:>6} "
                f"{f'{score.ci95_low:.2f}-{score.ci95_high:.2f}':>13} {mean:>7}")

    lines += [row(score.task_id, score) for score in report.per_task]
    lines.append(row("overall", report.overall))
    return "\n".join(lines)


__all__ = ["RateWithInterval", "SuiteEpisodeResult", "SuiteReport", "TaskScore", "per_task", "rate_of", "table",
           "wilson_interval"]
