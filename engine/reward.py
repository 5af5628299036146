"""The reward rubric: per-step reward breakdowns computed from step records.

Everything here is a pure function of a trajectory (`StepRecord`s), the episode's
step budget and a `RewardWeights`. Nothing here touches a browser, and the rest of
the engine never imports this module: rewards exist only behind the trainer door,
which recomputes them from the records whenever it is asked. Recomputing (rather
than storing a reward at step time) matters because an episode can end *after* its
last step (a trainer cap, an idle reaper), which makes that step terminal.

For step t of an episode with budget `max_steps` the rubric reads these signals:

    r_t  the task's own reward for the step (BrowserGym's `validate`)
    S_t  1 if the step ended the episode with success, else 0
    dp_t progress gained: max(0, p_t - max(0, p_1..p_{t-1})), progress as the task reports it
    O_t  1 if the step was a charged oracle call, else 0
    V_t  1 if the step was an agent mistake (error_kind `invalid` or `page`), else 0
    R_t  1 if the step repeats the previous step's tool and arguments exactly, else 0
    T_t  1 if the step is terminal (the episode ended on it), else 0
    Q_t  the trajectory_quality channel at step t (see `channels`)
    F_t  1 if the step is terminal and the episode ended with an agent failure, else 0

and the total is the weighted sum (w = RewardWeights):

    total_t = w.browsergym_reward_scale * r_t
            + w.success_reward          * S_t
            - w.step_penalty
            + w.progress_reward         * dp_t
            - w.llm_penalty             * O_t
            - w.mistake_penalty         * V_t
            - w.repetition_penalty      * R_t
            + w.judge_quality_reward    * Q_t * T_t
            - w.delayed_penalty         * F_t

Each product is reported as its own term of `RewardBreakdown`, so `total` is exactly
the sum of the nine terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engine.records import FailureReason, StepRecord

# Terminal reasons that say nothing about the agent: the trainer cut the episode
# short, the browser died, the task's own code failed, or the server died while the
# episode ran. No delayed penalty for these.
NOT_AGENT_FAILURES = frozenset({
    FailureReason.NONE,
    FailureReason.SUCCESS,
    FailureReason.CLIENT_STEP_CAP,
    FailureReason.BROWSER_ERROR,
    FailureReason.TASK_VALIDATION_FAILED,
    FailureReason.SERVER_RESTART,
})
MISTAKE_KINDS = frozenset({"invalid", "page"})
TERM_NAMES: tuple[str, ...] = (
    "browsergym_reward_scaled",
    "success_reward",
    "step_penalty",
    "progress_reward",
    "llm_penalty",
    "mistake_penalty",
    "repetition_penalty",
    "judge_quality_reward",
    "delayed_penalty",
)
CHANNEL_NAMES: tuple[str, ...] = (
    "task_completion",
    "action_validity",
    "efficiency",
    "non_repetition",
    "help_independence",
    "trajectory_quality",
)


def _number(value: Any) -> Any:
    """Weights arrive as JSON numbers; pydantic would otherwise turn `true` or "0.5" into floats."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("must be a number")
    return value


Weight = Annotated[float, Field(ge=0.0, le=1_000.0, allow_inf_nan=False), BeforeValidator(_number)]


def _weight(default: float, description: str) -> Any:
    return Field(default=default, description=description)


class RewardWeights(BaseModel):
    """Non-negative magnitudes; penalties are subtracted. Any subset may be given per episode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    browsergym_reward_scale: Weight = _weight(1.0, "Multiplies the task's own reward (BrowserGym validate).")
    success_reward: Weight = _weight(1.0, "Added on the step that ends the episode with success.")
    step_penalty: Weight = _weight(0.01, "Subtracted on every step.")
    progress_reward: Weight = _weight(0.5, "Multiplies new progress (0..1) on tasks that report it.")
    llm_penalty: Weight = _weight(0.05, "Subtracted for each charged oracle (ask_oracle) call.")
    mistake_penalty: Weight = _weight(0.05, "Subtracted for an invalid action or one the page refused.")
    repetition_penalty: Weight = _weight(0.02, "Subtracted when a step repeats the previous one exactly.")
    judge_quality_reward: Weight = _weight(0.2, "Multiplies the trajectory_quality channel on the terminal step.")
    delayed_penalty: Weight = _weight(0.5, "Subtracted on the terminal step when the agent failed the episode.")


class RewardBreakdown(BaseModel):
    """One step's reward, term by term, plus the rubric channels it was judged on."""

    model_config = ConfigDict(extra="forbid")

    step_index: int
    browsergym_reward_scaled: float
    success_reward: float
    step_penalty: float
    progress_reward: float
    llm_penalty: float
    mistake_penalty: float
    repetition_penalty: float
    judge_quality_reward: float
    delayed_penalty: float
    task_completion: float = Field(ge=0.0, le=1.0, description="1 on success, else the best progress so far.")
    action_validity: float = Field(ge=0.0, le=1.0, description="Share of steps so far that were not mistakes.")
    efficiency: float = Field(ge=0.0, le=1.0, description="1 - (steps so far - 1) / max_steps.")
    non_repetition: float = Field(ge=0.0, le=1.0, description="Share of steps so far that were not repeats.")
    help_independence: float = Field(ge=0.0, le=1.0, description="Share of steps so far that were not oracle calls.")
    trajectory_quality: float = Field(
        ge=0.0, le=1.0,
        description="task_completion x mean(action_validity, efficiency, non_repetition, help_independence).",
    )
    total: float = Field(description="Sum of the nine terms above (the weighted sum in docs/rewards.md).")


def is_mistake(record: StepRecord) -> bool:
    return record.error_kind in MISTAKE_KINDS and not record.oracle_call


def is_repeat(record: StepRecord, previous: StepRecord | None) -> bool:
    return previous is not None and record.tool == previous.tool and record.arguments == previous.arguments


def is_agent_failure(record: StepRecord) -> bool:
    return record.terminated and record.failure_reason not in NOT_AGENT_FAILURES


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def score_trajectory(
    records: Sequence[StepRecord], weights: RewardWeights, max_steps: int
) -> list[RewardBreakdown]:
    """One breakdown per record, in order."""
    breakdowns: list[RewardBreakdown] = []
    best_progress = 0.0
    mistakes = repeats = oracle_calls = 0
    previous: StepRecord | None = None
    budget = max(1, max_steps)
    for count, record in enumerate(records, start=1):
        progress = _clamp(record.progress) if record.progress is not None else None
        gained = max(0.0, progress - best_progress) if progress is not None else 0.0
        best_progress = max(best_progress, progress or 0.0)
        mistake, repeat = is_mistake(record), is_repeat(record, previous)
        mistakes += mistake
        repeats += repeat
        oracle_calls += record.oracle_call
        success = record.terminated and record.failure_reason is FailureReason.SUCCESS
        terminal = record.terminated

        task_completion = 1.0 if success else best_progress
        action_validity = 1.0 - mistakes / count
        efficiency = _clamp(1.0 - (count - 1) / budget)
        non_repetition = 1.0 - repeats / count
        help_independence = 1.0 - oracle_calls / count
        quality = task_completion * (action_validity + efficiency + non_repetition + help_independence) / 4

        task_reward = record.task_reward if math.isfinite(record.task_reward) else 0.0
        terms = {
            "browsergym_reward_scaled": weights.browsergym_reward_scale * task_reward,
            "success_reward": weights.success_reward * success,
            "step_penalty": -weights.step_penalty,
            "progress_reward": weights.progress_reward * gained,
            "llm_penalty": -weights.llm_penalty * record.oracle_call,
            "mistake_penalty": -weights.mistake_penalty * mistake,
            "repetition_penalty": -weights.repetition_penalty * repeat,
            "judge_quality_reward": weights.judge_quality_reward * quality * terminal,
            "delayed_penalty": -weights.delayed_penalty * is_agent_failure(record),
        }
        terms = {name: float(value) + 0.0 for name, value in terms.items()}  # + 0.0 turns -0.0 into 0.0
        breakdowns.append(RewardBreakdown(
            step_index=record.index,
            **terms,
            task_completion=_clamp(task_completion),
            action_validity=_clamp(action_validity),
            efficiency=efficiency,
            non_repetition=_clamp(non_repetition),
            help_independence=_clamp(help_independence),
            trajectory_quality=_clamp(quality),
            total=math.fsum(terms.values()),
        ))
        previous = record
    return breakdowns


def cumulative_reward(breakdowns: Sequence[RewardBreakdown]) -> float:
    """The episode's return: the undiscounted sum of step totals."""
    return math.fsum(b.total for b in breakdowns)


__all__ = [
    "CHANNEL_NAMES",
    "NOT_AGENT_FAILURES",
    "RewardBreakdown",
    "RewardWeights",
    "TERM_NAMES",
    "cumulative_reward",
    "score_trajectory",
]
