"""What a trainer may see: step records and episode state.

Only the trainer door (`control_api`) serialises these. The agent door works
with `engine.agent_view` instead.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EpisodeStatus(str, enum.Enum):
    RUNNING = "running"
    ENDED = "ended"
    CLOSED = "closed"


class FailureReason(str, enum.Enum):
    """Why an episode ended (or `none` while it runs)."""

    NONE = "none"
    SUCCESS = "success"
    MAX_STEPS_EXCEEDED = "max_steps_exceeded"
    INVALID_ACTION = "invalid_action"
    BROWSERGYM_ACTION_ERROR = "browsergym_action_error"
    WRONG_TARGET = "wrong_target"
    WRONG_TEXT = "wrong_text"
    SUBMISSION_FAILED = "submission_failed"
    TASK_FAILED = "task_failed"
    ORACLE_BUDGET_EXCEEDED = "oracle_budget_exceeded"
    BROWSER_ERROR = "browser_error"
    TASK_VALIDATION_FAILED = "task_validation_failed"
    REPEATED_ACTION_LOOP = "repeated_action_loop"
    TOO_MANY_INVALID_ACTIONS = "too_many_invalid_actions"
    CLIENT_STEP_CAP = "client_step_cap"
    LOW_PROGRESS_ABORT = "low_progress_abort"
    SERVER_RESTART = "server_restart"


class EpisodeLimits(BaseModel):
    """Budgets an episode is created with; the trainer chooses them."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(default=50, ge=1, le=10_000)
    max_invalid_actions: int = Field(default=10, ge=1, le=10_000,
                                     description="Invalid actions tolerated before the episode ends.")
    max_repeated_actions: int = Field(default=8, ge=2, le=10_000,
                                      description="Identical consecutive actions tolerated before the episode ends.")
    oracle_budget: int = Field(default=3, ge=0, le=1_000)
    end_on_oracle_budget: bool = Field(
        default=True, description="End the episode when the oracle budget is exceeded (else only refuse).")
    low_progress_window: int | None = Field(
        default=None, ge=2, le=10_000, description="End when this many steps pass without progress (off when unset).")
    end_on_invalid_action: bool = Field(default=False,
                                        description="End on the first invalid action (failure reason invalid_action).")
    end_on_action_error: bool = Field(default=False,
                                      description="End on the first action the page refused "
                                                  "(failure reason browsergym_action_error).")


ErrorKind = Literal["invalid", "page", "browser", "oracle_budget"]
"""Why a step failed: `invalid` arguments, or an element or tab that does not exist; the `page`
refused a well-formed action on an element it has (disabled, hidden, covered, not editable, a
Playwright error); the `browser` died; the oracle budget was used up."""


class BlockedRequest(BaseModel):
    """A request or navigation the egress guard refused."""

    model_config = ConfigDict(frozen=True)

    url: str
    kind: str
    step_index: int


class StepRecord(BaseModel):
    """One action as it happened, with the task's own verdict.

    Frozen: a record is built complete before it joins a trajectory, and a later
    change (requests that surfaced after the step, the episode ending after it) is a
    new record in its place, so a trajectory a reader holds never changes under it.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    tool: str
    arguments: dict[str, Any]
    valid: bool
    error: str | None = None
    error_kind: ErrorKind | None = None
    url: str
    started_at: float
    action_ms: float
    observation_ms: float
    validate_ms: float
    task_reward: float = 0.0
    task_done: bool = False
    task_message: str = ""
    task_info: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Scalar entries of the task's own info (e.g. MiniWoB's REWARD_REASON).")
    progress: float | None = None
    oracle_call: bool = False
    blocked: tuple[BlockedRequest, ...] = Field(default_factory=tuple)
    terminated: bool = False
    failure_reason: FailureReason = FailureReason.NONE


ClosedBy = Literal["trainer", "idle_timeout", "shutdown", "server_restart", "node_lost"]
"""Who closed an episode's browser context: the trainer (`DELETE /v1/episodes/{id}`), the
idle reaper (no activity for the server's idle timeout), the server shutting down, the
next server on the same episode book, after the one that held the episode died, or a
cluster's front, after the browser node that held the episode was lost."""


class EpisodeState(BaseModel):
    """A trainer's snapshot of one episode."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    task_id: str
    seed: int
    status: EpisodeStatus
    goal: str
    step_index: int
    max_steps: int
    done: bool
    success: bool
    failure_reason: FailureReason
    limits: EpisodeLimits
    invalid_actions: int
    repeated_actions: int
    oracle_calls: int
    difficulty: str | None = None
    curriculum_variant_id: str | None = None
    created_at: float
    last_activity_at: float
    setup_ms: float
    closed_by: ClosedBy | None = None
