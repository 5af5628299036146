"""Every endpoint of the control API, and the table that mounts and documents them.

Handlers validate input with the models in `control_api.schemas`, call the
`EpisodeManager`, and score trajectories with `engine.reward` using the weights the
trainer chose for the episode. Errors are raised as `ApiError` and rendered by
`control_api.errors`.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from control_api.body import parse_body, parse_query
from control_api.curriculum import AUTO
from control_api.errors import ApiError, validation_failed
from control_api.export import jsonl_lines
from control_api.metrics import CONTENT_TYPE
from control_api.openapi import Link, Operation
from control_api.room import SuiteService
from control_api.schemas import (
    CreatedEpisodeResponse,
    CreatedSuiteResponse,
    CreateEpisodeRequest,
    CreateSuiteRequest,
    CurriculumResponse,
    EndEpisodeRequest,
    EpisodeConstraints,
    EpisodeList,
    EpisodeListQuery,
    EpisodeStateResponse,
    EpisodeSummary,
    ExportQuery,
    HealthResponse,
    Recording,
    TaskInfo,
    TaskList,
    TaskLoadProblem,
    TrajectoryQuery,
    TrajectoryResponse,
    TrajectoryStep,
)
from control_api.state import ControlState, control_state
from control_api.trainer_data import DEFAULT_WEIGHTS
from engine.episode import EpisodeClosedError
from engine.episode_errors import EpisodeNotFoundError, EpisodeSetupError, NoCapacityError, TooManyEpisodesError
from engine.recorder import Recording as EngineRecording
from engine.records import EpisodeLimits, EpisodeState, EpisodeStatus, FailureReason
from engine.reward import RewardBreakdown, cumulative_reward, score_trajectory
from engine.snapshot import EpisodeSnapshot
from engine.suites import SUITE_ID_KEY, SuitePlanError, SuiteReport, plan_suite
from engine.suites.desk import SuiteNotFoundError
from safebrowse import __version__
from tasks import custom as custom_tasks
from tasks.registry import UnknownTaskError

RETRY_AFTER_SECONDS = "5"
PNG = "image/png"
NDJSON = "application/x-ndjson"


def json_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json", headers=headers)


# -- helpers -------------------------------------------------------------------------------


def _snapshot_of(control: ControlState, episode_id: str) -> EpisodeSnapshot:
    """The episode as its last job left it. A response is built from one snapshot, so its
    state, steps and rewards describe the same moment."""
    try:
        return control.manager.snapshot(episode_id)
    except EpisodeNotFoundError:
        raise ApiError(404, "episode_not_found", f"no episode {episode_id!r}") from None


def _scored(control: ControlState, snapshot: EpisodeSnapshot) -> list[RewardBreakdown]:
    state = snapshot.state
    return score_trajectory(snapshot.records, control.weights_for(state.episode_id), state.max_steps)


def _constraints(state: EpisodeState) -> EpisodeConstraints:
    limits = state.limits
    return EpisodeConstraints(
        max_steps=limits.max_steps,
        steps_left=max(0, limits.max_steps - state.step_index),
        oracle_budget=limits.oracle_budget,
        oracle_calls=state.oracle_calls,
        end_on_oracle_budget=limits.end_on_oracle_budget,
        invalid_actions=state.invalid_actions,
        max_invalid_actions=limits.max_invalid_actions,
        end_on_invalid_action=limits.end_on_invalid_action,
        end_on_action_error=limits.end_on_action_error,
        repeated_actions=state.repeated_actions,
        max_repeated_actions=limits.max_repeated_actions,
        low_progress_window=limits.low_progress_window,
        difficulty=state.difficulty,
        curriculum_variant_id=state.curriculum_variant_id,
    )


def _recording(snapshot: EpisodeSnapshot) -> Recording:
    recording = snapshot.recording
    return Recording(screenshots=recording.screenshots, observations=recording.observations)


def _state_response(control: ControlState, snapshot: EpisodeSnapshot) -> EpisodeStateResponse:
    state = snapshot.state
    breakdowns = _scored(control, snapshot)
    placement = control.manager.placement(state.episode_id)
    return EpisodeStateResponse(
        episode_id=state.episode_id,
        task_id=state.task_id,
        seed=state.seed,
        status=state.status,
        goal=state.goal,
        step_index=state.step_index,
        max_steps=state.max_steps,
        done=state.done,
        success=state.success,
        failure_reason=state.failure_reason,
        current_difficulty=state.difficulty,
        difficulty_auto=state.episode_id in control.auto_difficulty,
        curriculum_variant_id=state.curriculum_variant_id,
        recording=_recording(snapshot),
        constraints=_constraints(state),
        reward_weights=control.weights_for(state.episode_id),
        last_reward=breakdowns[-1] if breakdowns else None,
        cumulative_reward=cumulative_reward(breakdowns),
        created_at=state.created_at,
        last_activity_at=state.last_activity_at,
        setup_ms=state.setup_ms,
        closed_by=state.closed_by,
        node=placement.node,
        mcp_url=placement.mcp_url,
    )


async def _screenshot(control: ControlState, state: EpisodeState) -> tuple[str | None, str | None]:
    """A base64 PNG of the episode's page as it is now (running or ended), or why there is none."""
    try:
        image = await control.manager.screenshot(state.episode_id)
    except (EpisodeClosedError, EpisodeNotFoundError):
        return None, "the episode is closed; only a running or ended episode has a page to show"
    except Exception as error:  # noqa: BLE001 - a dead browser is reported, not raised
        return None, f"the browser failed while taking the screenshot: {type(error).__name__}"
    return base64.b64encode(image).decode("ascii"), None


# -- endpoints -----------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """Liveness probe; the only route that needs no token."""
    return json_response(HealthResponse(version=__version__))


async def openapi_document(request: Request) -> Response:
    return Response(request.app.state.openapi_json, media_type="application/json")


async def list_tasks(request: Request) -> Response:
    registry = control_state(request).manager.registry
    tasks = [
        TaskInfo(id=spec.id, family=spec.family, description=spec.description, difficulties=list(spec.difficulties))
        for spec in registry
    ]
    problems = [TaskLoadProblem(path=error.path, reason=error.reason) for error in custom_tasks.load_errors]
    return json_response(TaskList(tasks=tasks, load_errors=problems))


async def create_episode(request: Request) -> Response:
    """Reset: a new episode in its own browser context, with a fresh agent token."""
    control = control_state(request)
    body = await parse_body(request, CreateEpisodeRequest)
    manager = control.manager
    try:
        limits = EpisodeLimits(**{"max_steps": manager.config.default_max_steps, **body.limit_values()})
    except ValidationError as error:
        raise validation_failed(error, "body") from None
    recording = EngineRecording(screenshots=body.record_screenshots,
                                observations=body.record_observations or body.record_screenshots)
    auto = body.difficulty == AUTO
    try:
        difficulty = body.difficulty
        if auto:
            spec = manager.registry.get(body.task_id)
            difficulty = control.curriculum.pick(spec.id, spec.difficulties)
        created = await manager.create(body.task_id, seed=body.seed, limits=limits, difficulty=difficulty,
                                       recording=recording, observe=False)
    except UnknownTaskError as error:
        control.metrics.create_failed("unknown_task")
        raise ApiError(404, "unknown_task", str(error), suggestions=error.suggestions) from None
    except TooManyEpisodesError as error:
        control.metrics.create_failed("too_many_episodes")
        raise ApiError(429, "too_many_episodes", str(error), headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    except NoCapacityError as error:
        control.metrics.create_failed("no_capacity")
        raise ApiError(503, "no_capacity", str(error), headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    except EpisodeSetupError as error:
        control.metrics.create_failed("setup_failed")
        raise ApiError(502, "episode_setup_failed", str(error)) from None
    except ValueError as error:
        control.metrics.create_failed("invalid_difficulty")
        raise ApiError(422, "invalid_difficulty", str(error)) from None
    weights = body.reward_weights or DEFAULT_WEIGHTS
    control.remember(created.episode_id, weights, auto_difficulty=auto)
    control.metrics.episode_created()
    state = manager.state(created.episode_id)
    response = CreatedEpisodeResponse(
        episode_id=created.episode_id,
        agent_token=created.agent_token,
        mcp_url=created.mcp_url or control.mcp_url,
        node=created.node,
        task_id=created.task_id,
        goal=created.goal,
        seed=state.seed,
        limits=limits,
        reward_weights=weights,
        current_difficulty=state.difficulty,
        curriculum_variant_id=state.curriculum_variant_id,
    )
    return json_response(response, 201, headers={"Location": f"/v1/episodes/{created.episode_id}"})


async def list_episodes(request: Request) -> Response:
    control = control_state(request)
    query = parse_query(request, EpisodeListQuery)
    suite_of = {episode_id: data[SUITE_ID_KEY] for episode_id, data in control.manager.trainer_data_items()
                if isinstance(data.get(SUITE_ID_KEY), str)}
    summaries = [
        EpisodeSummary(
            episode_id=state.episode_id, task_id=state.task_id, status=state.status,
            step_index=state.step_index, done=state.done, success=state.success,
            failure_reason=state.failure_reason, created_at=state.created_at,
            current_difficulty=state.difficulty, suite_id=suite_of.get(state.episode_id),
        )
        for state in control.manager.states()
        if query.status is None or state.status is query.status
    ]
    return json_response(EpisodeList(episodes=summaries))


async def export_episodes(request: Request) -> Response:
    """Every recorded episode that has ended, one JSON line each, streamed from the book."""
    control = control_state(request)
    query = parse_query(request, ExportQuery)
    book = control.manager.book
    if book is None:
        raise ApiError(404, "no_book", "this server keeps no episode book, so there is nothing to export")
    entries = book.entries(task_id=query.task_id, success=query.success, since=query.since, until=query.until)
    # A plain iterator: Starlette runs it in a thread, so reading the book never blocks the loop.
    return StreamingResponse(jsonl_lines(entries), media_type=NDJSON)


async def get_episode(request: Request) -> Response:
    control = control_state(request)
    return json_response(_state_response(control, _snapshot_of(control, request.path_params["episode_id"])))


async def get_trajectory(request: Request) -> Response:
    control = control_state(request)
    query = parse_query(request, TrajectoryQuery)
    snapshot = _snapshot_of(control, request.path_params["episode_id"])
    screenshot, screenshot_error = (await _screenshot(control, snapshot.state)) if query.screenshots else (None, None)
    if query.screenshots:
        snapshot = _snapshot_of(control, snapshot.state.episode_id)
    state, records, media = snapshot.state, snapshot.records, snapshot.media
    breakdowns = _scored(control, snapshot)
    start = media.get(0)

    def text_of(index: int) -> str | None:
        recorded = media.get(index)
        return recorded.observation_text if query.observations and recorded is not None else None

    response = TrajectoryResponse(
        episode_id=state.episode_id,
        task_id=state.task_id,
        status=state.status,
        done=state.done,
        success=state.success,
        failure_reason=state.failure_reason,
        max_steps=state.max_steps,
        reward_weights=control.weights_for(state.episode_id),
        steps=[
            TrajectoryStep(
                **record.model_dump(), reward=breakdown,
                screenshot_recorded=record.index in media and media[record.index].screenshot_png is not None,
                observation_text=text_of(record.index),
            )
            for record, breakdown in zip(records, breakdowns)
        ],
        cumulative_reward=cumulative_reward(breakdowns),
        recording=_recording(snapshot),
        start_screenshot_recorded=start is not None and start.screenshot_png is not None,
        start_observation_text=text_of(0),
        screenshot_png_base64=screenshot,
        screenshot_error=screenshot_error,
    )
    return json_response(response)


async def step_screenshot(request: Request) -> Response:
    """The page as recorded after one step (0: after setup), for episodes created with
    record_screenshots."""
    control = control_state(request)
    snapshot = _snapshot_of(control, request.path_params["episode_id"])
    state = snapshot.state
    raw = request.path_params["index"]
    index = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else -1
    if not 0 <= index <= state.step_index:
        raise ApiError(404, "step_not_found",
                       f"episode {state.episode_id!r} has steps 0 to {state.step_index}, not {raw[:20]!r}")
    recorded = snapshot.media.get(index)
    if recorded is None or recorded.screenshot_png is None:
        if not snapshot.recording.screenshots:
            why = "the episode was not created with record_screenshots"
        elif recorded is not None and recorded.screenshot_skipped:
            why = recorded.screenshot_skipped
        else:
            why = "no screenshot was kept for this step"
        raise ApiError(404, "screenshot_not_found", f"no screenshot of step {index}: {why}")
    return Response(recorded.screenshot_png, media_type=PNG, headers={"Cache-Control": "private, max-age=3600"})


async def curriculum(request: Request) -> Response:
    """Where `difficulty: "auto"` stands for every task it has seen."""
    return json_response(control_state(request).curriculum.snapshot())


async def end_episode(request: Request) -> Response:
    """The trainer's step cap: end a running episode now (reason client_step_cap)."""
    control = control_state(request)
    episode_id = request.path_params["episode_id"]
    was_running = _snapshot_of(control, episode_id).state.status is EpisodeStatus.RUNNING
    body = await parse_body(request, EndEpisodeRequest, optional=True)
    state = await control.manager.end(episode_id, FailureReason(body.reason))
    if was_running and state.failure_reason is FailureReason.CLIENT_STEP_CAP:
        control.metrics.episode_ended(state.failure_reason.value)
    return json_response(_state_response(control, _snapshot_of(control, episode_id)))


async def close_episode(request: Request) -> Response:
    """Close the episode and free its browser context; its record stays readable."""
    control = control_state(request)
    episode_id = request.path_params["episode_id"]
    try:
        # Closes the browser context even while the book refuses writes (then 507): a full disk
        # never keeps browsers open.
        await control.manager.close(episode_id)
    except EpisodeNotFoundError:
        raise ApiError(404, "episode_not_found", f"no episode {episode_id!r}") from None
    return json_response(_state_response(control, _snapshot_of(control, episode_id)))


def _suite_desk(control: ControlState) -> SuiteService:
    if control.suites is None:
        raise ApiError(501, "suites_not_supported", "this server runs no suites")
    return control.suites


async def create_suite(request: Request) -> Response:
    """An evaluation: one agent token that walks through every episode of the suite, in order."""
    control = control_state(request)
    desk = _suite_desk(control)
    if not desk.takes_new_suites:
        raise ApiError(501, "suites_not_supported",
                       "this process serves its one agent over stdio; start suites for HTTP agents on "
                       "`safebrowse serve`")
    body = await parse_body(request, CreateSuiteRequest)
    try:
        plan = plan_suite(control.manager.registry, body.suite, body.episodes, seed=body.seed,
                          difficulty=body.difficulty, max_steps=body.max_steps)
    except SuitePlanError as error:
        if error.suggestions or "unknown task" in str(error):
            raise ApiError(404, "unknown_task", str(error), suggestions=error.suggestions) from None
        raise ApiError(422, "invalid_suite", str(error)) from None
    try:
        opened = await desk.start(plan, body.suite)
    except TooManyEpisodesError as error:
        raise ApiError(429, "too_many_episodes", str(error), headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    except NoCapacityError as error:
        raise ApiError(503, "no_capacity", str(error), headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    location = f"/v1/suites/{opened.suite_id}"
    response = CreatedSuiteResponse(
        suite_id=opened.suite_id, agent_token=opened.agent_token, mcp_url=opened.mcp_url or control.mcp_url,
        tasks=list(plan.task_ids),
        episodes_per_task=plan.episodes_per_task, planned_episodes=len(plan.episodes), seed=plan.seed,
        report_url=location,
    )
    return json_response(response, 201, headers={"Location": location})


async def get_suite(request: Request) -> Response:
    """The suite's report so far, from the room's records."""
    desk = _suite_desk(control_state(request))
    suite_id = request.path_params["suite_id"]
    try:
        report = await desk.report_of(suite_id)
    except SuiteNotFoundError:
        raise ApiError(404, "suite_not_found", f"no suite {suite_id!r}") from None
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")


async def metrics(request: Request) -> Response:
    control = control_state(request)
    return Response(control.metrics.render(control.manager), media_type=CONTENT_TYPE)


# -- the table -----------------------------------------------------------------------------

EPISODE = "/v1/episodes/{episode_id}"
BOOK_FULL = ("The episode book cannot record (`book_full`: the server's disk or the book's size cap is "
             "full); what it recorded is kept. Free space and retry.", None)
BOOK_UNAVAILABLE = ("The episode book refused a write for another reason (`book_unavailable`); retry later.", None)
EPISODE_ID = {"episode_id": "$response.body#/episode_id"}
EPISODE_LINKS = (
    Link("GetEpisode", "get_episode", EPISODE_ID),
    Link("GetTrajectory", "get_trajectory", EPISODE_ID),
    Link("EndEpisode", "end_episode", EPISODE_ID),
    Link("CloseEpisode", "close_episode", EPISODE_ID),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/health", health, "health", "Liveness probe (no token needed)",
              {200: ("The server is up.", HealthResponse)}, public=True, tags=("meta",)),
    Operation("GET", "/v1/openapi.json", openapi_document, "openapi", "This OpenAPI document",
              {200: ("The OpenAPI 3.1 document.", None)}, media_type="application/json", tags=("meta",)),
    Operation("GET", "/v1/tasks", list_tasks, "list_tasks", "List the tasks episodes can be created from",
              {200: ("Every registered task.", TaskList)}, tags=("tasks",)),
    Operation("POST", "/v1/episodes", create_episode, "create_episode", "Create (reset) an episode",
              {201: ("The episode is ready; hand agent_token and mcp_url to the agent.", CreatedEpisodeResponse),
               404: ("Unknown task id; `suggestions` lists close ids.", None),
               429: ("Too many open episodes; close one first (see Retry-After).", None),
               502: ("The task's setup failed in the browser; nothing was left open.", None),
               503: ("No browser node of the cluster can take an episode now (`no_capacity`; see "
                     "Retry-After), or the episode book refused a write (`book_unavailable`).", None),
               507: ("The episode book cannot record a new episode (`book_full`); none was created.", None)},
              description="Limits left unset take the server defaults. reward_weights are kept with the "
                          "episode and used for every reward this API reports for it.",
              request_model=CreateEpisodeRequest, tags=("episodes",), links=EPISODE_LINKS),
    Operation("GET", "/v1/episodes", list_episodes, "list_episodes", "List episodes the server remembers",
              {200: ("Episodes, oldest first.", EpisodeList)}, query_model=EpisodeListQuery, tags=("episodes",)),
    Operation("GET", EPISODE, get_episode, "get_episode", "An episode's state, budgets and rewards",
              {200: ("The episode's state.", EpisodeStateResponse), 503: BOOK_UNAVAILABLE, 507: BOOK_FULL},
              tags=("episodes",)),
    Operation("GET", EPISODE + "/trajectory", get_trajectory, "get_trajectory",
              "Every step with its reward breakdown",
              {200: ("The steps so far, in order.", TrajectoryResponse), 503: BOOK_UNAVAILABLE, 507: BOOK_FULL},
              query_model=TrajectoryQuery, tags=("episodes",)),
    Operation("GET", EPISODE + "/steps/{index}/screenshot.png", step_screenshot, "get_step_screenshot",
              "The page as recorded after one step",
              {200: ("A PNG of the page after step `index` (0: after setup).", None),
               404: ("No such episode or step, or no screenshot was kept for it (the episode was not "
                     "created with record_screenshots, or the image went over a cap).", None)},
              description="Only for episodes created with record_screenshots; the trajectory's "
                          "`screenshot_recorded` says which steps have one.",
              media_type=PNG, tags=("episodes",)),
    Operation("POST", EPISODE + "/end", end_episode, "end_episode",
              "End a running episode now (client_step_cap)",
              {200: ("The episode's state; an episode that had already ended keeps its reason.",
                     EpisodeStateResponse), 503: BOOK_UNAVAILABLE, 507: BOOK_FULL},
              request_model=EndEpisodeRequest, body_required=False, tags=("episodes",)),
    Operation("DELETE", EPISODE, close_episode, "close_episode", "Close an episode and free its browser context",
              {200: ("The closed episode's final state; its record stays readable.", EpisodeStateResponse),
               503: BOOK_UNAVAILABLE,
               507: ("The browser context is closed, but the book cannot record it yet (`book_full`).", None)},
              tags=("episodes",)),
    Operation("GET", "/v1/export", export_episodes, "export_episodes",
              "Recorded episodes as training data (JSON lines)",
              {200: ("One JSON object per ended episode, oldest first: outcome, return, each step's reward "
                     "breakdown and `messages`, the agent's side in the chat format SFT trainers read.", None),
               404: ("The server keeps no episode book.", None)},
              description="Streams from the episode book, so episodes of earlier runs on the same data dir "
                          "come too. `safebrowse export` writes the same rows from a data dir, also as Parquet.",
              query_model=ExportQuery, media_type=NDJSON, tags=("episodes",)),
    Operation("GET", "/v1/curriculum", curriculum, "get_curriculum",
              "Where difficulty \"auto\" stands, per task",
              {200: ("The policy and, per task seen, the current difficulty and each level's window.",
                     CurriculumResponse)},
              tags=("curriculum",)),
    Operation("POST", "/v1/suites", create_suite, "create_suite", "Start an evaluation of one agent on a suite",
              {201: ("The suite's first episode is ready; hand agent_token and mcp_url to the agent. Each "
                     "time an episode ends, the agent's next tool call meets the next task.",
                     CreatedSuiteResponse),
               404: ("A task of the suite is unknown; `suggestions` lists close ids.", None),
               429: ("Too many open episodes; close one first (see Retry-After).", None),
               501: ("This server cannot run suites for HTTP agents (`suites_not_supported`): a stdio "
                     "process, whose one agent is on stdio.", None),
               503: ("On a cluster, no browser node can take the suite now (`no_capacity`; see Retry-After).",
                     None)},
              description="Each task runs `episodes` times, seeded seed, seed + 1, ... The agent sees only "
                          "observations: it cannot end, skip or restart an episode, and it is never told a "
                          "score. The operator reads the report at GET /v1/suites/{suite_id}.",
              request_model=CreateSuiteRequest, tags=("suites",),
              links=(Link("GetSuite", "get_suite", {"suite_id": "$response.body#/suite_id"}),)),
    Operation("GET", "/v1/suites/{suite_id}", get_suite, "get_suite", "A suite's report so far",
              {200: ("Per episode (task, seed, success, failure reason, steps, return, wall time), per task "
                     "(success rate with a 95% Wilson interval) and overall; `complete` once every episode "
                     "has ended.", SuiteReport),
               404: ("No suite with this id.", None),
               501: ("This server runs no suites (`suites_not_supported`).", None)},
              tags=("suites",)),
    Operation("GET", "/metrics", metrics, "metrics", "Prometheus metrics",
              {200: ("Metrics in the Prometheus text format 0.0.4.", None)},
              media_type=CONTENT_TYPE, tags=("meta",)),
)

__all__ = ["OPERATIONS"]
