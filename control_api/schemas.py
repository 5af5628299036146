"""Request and response bodies of the control API.

These pydantic models are the single source of the wire format: handlers validate
and serialise with them, and `control_api.openapi` builds `/v1/openapi.json` from
them, so the published schema cannot drift from what the server does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from engine.records import ClosedBy, EpisodeLimits, EpisodeStatus, FailureReason, StepRecord
from engine.reward import RewardBreakdown, RewardWeights

# The largest seed the engine accepts (engine.manager.MAX_SEED); repeated here so that
# clients can import these models without loading the browser engine.
MAX_SEED = 2**31 - 1

# Episodes per task of a suite (engine.suites.MAX_EPISODES), repeated for the same reason.
MAX_SUITE_EPISODES = 100

# Fields of a create request that become the episode's EpisodeLimits.
LIMIT_FIELDS: tuple[str, ...] = tuple(EpisodeLimits.model_fields)


def _json_integer(value: Any) -> Any:
    """JSON Schema integers: 5 and 5.0, but not `true` or "5" (which pydantic would coerce)."""
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("must be an integer")
    return value


def _json_boolean(value: Any) -> Any:
    """JSON booleans only: not 1, "yes" or "true"."""
    if not isinstance(value, bool):
        raise ValueError("must be a boolean")
    return value


# Constraints come before the validator, so that they land in the JSON Schema as minimum/maximum.
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), BeforeValidator(_json_integer)]
StepCount = Annotated[int, Field(ge=1, le=10_000), BeforeValidator(_json_integer)]
RepeatCount = Annotated[int, Field(ge=2, le=10_000), BeforeValidator(_json_integer)]
OracleBudget = Annotated[int, Field(ge=0, le=1_000), BeforeValidator(_json_integer)]
JsonBool = Annotated[bool, BeforeValidator(_json_boolean)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'max_steps'].")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error the API returns, whatever its status."""

    error: str = Field(description="A stable machine-readable code, e.g. 'unknown_task'.")
    detail: str = Field(description="What went wrong, for a human.")
    errors: list[FieldError] | None = Field(default=None, description="Validation problems (422 only).")
    suggestions: list[str] | None = Field(default=None, description="Close task ids (unknown_task only).")


# -- health and tasks ----------------------------------------------------------------


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class TaskInfo(BaseModel):
    id: str
    family: str
    description: str
    difficulties: list[str]


class TaskLoadProblem(BaseModel):
    """An operator task folder that was skipped at start."""

    path: str
    reason: str


class TaskList(BaseModel):
    tasks: list[TaskInfo]
    load_errors: list[TaskLoadProblem] = Field(
        default_factory=list, description="Task folders that failed to load at start, and why; they are not listed.")


# -- episodes ------------------------------------------------------------------------


class CreateEpisodeRequest(_Strict):
    """Reset: start a new episode of a task. Unset limits take the server's defaults."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"task_id": "miniwob.click-test", "seed": 1, "max_steps": 5},
        {"task_id": "miniwob.enter-text", "max_steps": 10, "oracle_budget": 0,
         "reward_weights": {"step_penalty": 0.02, "delayed_penalty": 1.0}},
        {"task_id": "custom.login-form", "difficulty": "auto", "record_screenshots": True},
    ]})

    task_id: str = Field(min_length=1, max_length=200, description="A task id from GET /v1/tasks.")
    seed: Seed | None = Field(default=None, description="Random when unset.")
    difficulty: str | None = Field(default=None, min_length=1, max_length=100,
                                   description="One of the task's difficulties, when it has any; or \"auto\" "
                                               "to let the server's curriculum pick one (null for a task "
                                               "without difficulties). See GET /v1/curriculum.")
    max_steps: StepCount | None = None
    max_invalid_actions: StepCount | None = None
    max_repeated_actions: RepeatCount | None = None
    oracle_budget: OracleBudget | None = None
    end_on_oracle_budget: JsonBool | None = None
    low_progress_window: RepeatCount | None = None
    end_on_invalid_action: JsonBool | None = None
    end_on_action_error: JsonBool | None = None
    reward_weights: RewardWeights | None = Field(
        default=None, description="Weights of the reward rubric for this episode; unset fields keep their defaults."
    )
    record_screenshots: JsonBool = Field(
        default=False, description="Keep a PNG of the page after setup and after each step (capped in size and "
                                   "count), and the observation text; served per step for replay.")
    record_observations: JsonBool = Field(
        default=False, description="Keep the observation text the agent got after each step (capped in size).")

    def limit_values(self) -> dict[str, Any]:
        """The EpisodeLimits fields this request sets."""
        return {name: getattr(self, name) for name in LIMIT_FIELDS if getattr(self, name) is not None}


class CreatedEpisodeResponse(BaseModel):
    episode_id: str
    agent_token: str = Field(description="Bearer token for the agent's MCP connection; shown only here.")
    mcp_url: str = Field(description="Where the agent connects (streamable HTTP): in a cluster, the MCP door of "
                                     "the browser node that holds the episode.")
    node: str | None = Field(default=None, description="The Ray node id of the browser node that holds the "
                                                       "episode; null on a single server.")
    task_id: str
    goal: str
    seed: int
    limits: EpisodeLimits
    reward_weights: RewardWeights
    current_difficulty: str | None = Field(default=None, description="The difficulty the episode runs at.")
    curriculum_variant_id: str | None = Field(default=None, description="Task, difficulty and variant drawn.")


class EpisodeSummary(BaseModel):
    episode_id: str
    task_id: str
    status: EpisodeStatus
    step_index: int
    done: bool
    success: bool
    failure_reason: FailureReason
    created_at: float
    current_difficulty: str | None = None
    suite_id: str | None = Field(default=None, description="The suite (POST /v1/suites, or safebrowse stdio "
                                                           "--suite) the episode belongs to; null for others.")


class EpisodeList(BaseModel):
    episodes: list[EpisodeSummary]


class EpisodeListQuery(_Strict):
    status: EpisodeStatus | None = Field(default=None, description="Only episodes with this status.")


class ExportQuery(_Strict):
    """Which recorded episodes to export; every filter given must hold."""

    task_id: str | None = Field(default=None, max_length=200, description="Only episodes of this task.")
    success: bool | None = Field(default=None, description="Only successful (true) or failed (false) episodes.")
    since: float | None = Field(default=None, ge=0, description="Only episodes created at or after this time "
                                                                 "(seconds since the epoch).")
    until: float | None = Field(default=None, ge=0, description="Only episodes created before this time "
                                                                 "(seconds since the epoch).")


class EpisodeConstraints(BaseModel):
    """The budgets an episode runs under and how much of each is used."""

    max_steps: int
    steps_left: int
    oracle_budget: int
    oracle_calls: int
    end_on_oracle_budget: bool
    invalid_actions: int
    max_invalid_actions: int
    end_on_invalid_action: bool
    end_on_action_error: bool
    repeated_actions: int = Field(description="Consecutive repeats of the latest action.")
    max_repeated_actions: int
    low_progress_window: int | None
    difficulty: str | None
    curriculum_variant_id: str | None


class Recording(BaseModel):
    """What the episode keeps per step for replay (see the create request)."""

    screenshots: bool
    observations: bool


class EpisodeStateResponse(BaseModel):
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
    current_difficulty: str | None = Field(
        default=None, description="The difficulty the episode runs at (the server's pick for \"auto\").")
    difficulty_auto: bool = Field(default=False, description="Whether the curriculum picked the difficulty.")
    curriculum_variant_id: str | None = Field(
        default=None, description="\"<task>/<difficulty>/<variant>\" for tasks that declare variants.")
    recording: Recording = Field(default_factory=lambda: Recording(screenshots=False, observations=False))
    constraints: EpisodeConstraints
    reward_weights: RewardWeights
    last_reward: RewardBreakdown | None = Field(description="The latest step's breakdown; null before any step.")
    cumulative_reward: float = Field(description="Sum of every step's total so far.")
    created_at: float
    last_activity_at: float
    setup_ms: float
    closed_by: ClosedBy | None = Field(
        default=None,
        description="Who closed the episode's browser context: \"trainer\" (DELETE), \"idle_timeout\" (no "
                    "activity for the server's idle timeout), \"shutdown\", \"server_restart\" (the server "
                    "died while the episode was open; the next one on its episode book closed it), or "
                    "\"node_lost\" (a cluster's browser node that held it was lost); null while it is open.")
    node: str | None = Field(default=None, description="The Ray node id of the browser node that holds (or held) "
                                                       "the episode; null on a single server.")
    mcp_url: str | None = Field(default=None, description="On a cluster, the MCP door of the browser node that "
                                                          "holds (or held) the episode; null on a single server, "
                                                          "whose own door serves every episode.")


class TrajectoryQuery(_Strict):
    screenshots: bool = Field(
        default=False,
        description="Add a PNG screenshot (base64) of the episode's current page. A running or ended "
                    "episode has a page to show; a closed one has not, and `screenshot_error` says so.",
    )
    observations: bool = Field(
        default=False,
        description="Add each step's recorded observation text (episodes created with record_screenshots "
                    "or record_observations).",
    )


class TrajectoryStep(StepRecord):
    """One step as recorded, with its reward breakdown."""

    reward: RewardBreakdown
    screenshot_recorded: bool = Field(
        default=False, description="Whether GET .../steps/{index}/screenshot.png has this step's image.")
    observation_text: str | None = Field(
        default=None, description="What the agent saw after this step (with ?observations=true and recording on).")


class TrajectoryResponse(BaseModel):
    episode_id: str
    task_id: str
    status: EpisodeStatus
    done: bool
    success: bool
    failure_reason: FailureReason
    max_steps: int
    reward_weights: RewardWeights
    steps: list[TrajectoryStep]
    cumulative_reward: float
    recording: Recording = Field(default_factory=lambda: Recording(screenshots=False, observations=False))
    start_screenshot_recorded: bool = Field(
        default=False, description="Whether GET .../steps/0/screenshot.png has the page as setup left it.")
    start_observation_text: str | None = Field(
        default=None, description="What the agent saw before its first step (with ?observations=true).")
    screenshot_png_base64: str | None = None
    screenshot_error: str | None = None


# -- curriculum ------------------------------------------------------------------------


class CurriculumPolicy(BaseModel):
    """The thresholds of `difficulty: "auto"`; the defaults are what the server uses."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=10, ge=1, le=1_000, description="Results kept per task and difficulty.")
    promote_at: float = Field(default=0.8, ge=0.0, le=1.0,
                              description="Move up when a full window's success rate is at least this.")
    demote_at: float = Field(default=0.3, ge=0.0, le=1.0,
                             description="Move down when a full window's success rate is at most this.")

    @model_validator(mode="after")
    def _ordered(self) -> CurriculumPolicy:
        if self.demote_at >= self.promote_at:
            raise ValueError("demote_at must be below promote_at")
        return self


class CurriculumLevel(BaseModel):
    difficulty: str
    results: int = Field(description="Results in this level's window (at most the policy's window).")
    successes: int
    success_rate: float | None = Field(description="successes / results; null while the window is empty.")


class CurriculumTask(BaseModel):
    task_id: str
    current_difficulty: str = Field(description="What difficulty \"auto\" picks for this task now.")
    levels: list[CurriculumLevel] = Field(description="The task's difficulties, easiest first.")


class CurriculumResponse(BaseModel):
    policy: CurriculumPolicy
    tasks: list[CurriculumTask] = Field(description="Tasks the curriculum has seen (a result or an auto pick).")


# -- suites --------------------------------------------------------------------------


class CreateSuiteRequest(_Strict):
    """An evaluation: one agent token walked through every episode of a suite, in order."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"suite": "smoke", "episodes": 3},
        {"suite": "miniwob.click-test,custom.login-form", "episodes": 5, "seed": 100, "max_steps": 20},
    ]})

    suite: str = Field(min_length=1, max_length=4_000,
                       description="Task ids and named suites (see `safebrowse tasks --suites`), comma-separated.")
    episodes: Annotated[int, Field(ge=1, le=MAX_SUITE_EPISODES), BeforeValidator(_json_integer)] = Field(
        default=1, description="Episodes of each task.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED - MAX_SUITE_EPISODES), BeforeValidator(_json_integer)] = Field(
        default=0, description="Each task's episodes are seeded seed, seed + 1, ...")
    difficulty: str | None = Field(default=None, min_length=1, max_length=100,
                                   description="The difficulty of the tasks that have difficulties.")
    max_steps: StepCount | None = Field(default=None, description="Each episode's step budget (the server's "
                                                                  "default when unset).")


class CreatedSuiteResponse(BaseModel):
    suite_id: str
    agent_token: str = Field(description="Bearer token for the agent's MCP connection, for the whole suite; "
                                         "shown only here.")
    mcp_url: str = Field(description="Where the agent connects (streamable HTTP).")
    tasks: list[str] = Field(description="The suite's task ids, in the order the agent meets them.")
    episodes_per_task: int
    planned_episodes: int
    seed: int
    report_url: str = Field(description="Where the report so far is read (GET).")


class EndEpisodeRequest(_Strict):
    reason: Literal["client_step_cap"] = Field(
        default="client_step_cap", description="Why the trainer ends the episode; only client_step_cap."
    )


__all__ = [
    "CreateEpisodeRequest",
    "CreateSuiteRequest",
    "CreatedEpisodeResponse",
    "CreatedSuiteResponse",
    "CurriculumLevel",
    "CurriculumPolicy",
    "CurriculumResponse",
    "CurriculumTask",
    "EndEpisodeRequest",
    "EpisodeConstraints",
    "EpisodeList",
    "EpisodeListQuery",
    "EpisodeStateResponse",
    "EpisodeSummary",
    "ErrorResponse",
    "FieldError",
    "HealthResponse",
    "LIMIT_FIELDS",
    "Recording",
    "TaskInfo",
    "TaskList",
    "TrajectoryQuery",
    "TrajectoryResponse",
    "TrajectoryStep",
]
