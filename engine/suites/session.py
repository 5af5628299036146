"""`SuiteSession`: one agent port over a suite's episodes, in order.

The agent door holds an `AgentPort` and nothing else, so a suite is a port too: the
door needs no knowledge of suites. While the current episode runs, every call goes
to it unchanged. Once it has ended (success, failure or step budget, as the engine
decides; the agent has no tool to end it), the agent's next call is not carried out:
it is answered with the next episode's first observation, introduced as a new task
with its goal and nothing about how the last one went. After the last episode every
call raises `EvaluationOverError`.

The operator's report is kept here, from the room's records (`engine.suites.report`),
and handed to `on_report` whenever it changes (an episode ended, the suite stopped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from engine.agent_view.port import (
    AgentPort,
    AgentStepResult,
    EpisodeOverError,
    EvaluationOverError,
    OracleReply,
    Screen,
)
from engine.config import EngineConfig
from engine.episode_errors import CreatedEpisode, EpisodeNotFoundError, EpisodeSetupError
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, EpisodeStatus
from engine.reward import RewardWeights, cumulative_reward, score_trajectory
from engine.snapshot import EpisodeSnapshot
from engine.suites.plan import PlannedEpisode, SuitePlan
from engine.suites.report import SuiteEpisodeResult, SuiteReport, per_task, rate_of
from tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)

SUITE_ID_KEY = "suite_id"
"""The key of an episode's trainer data that names the suite it belongs to (listings group by it)."""
SETUP_FAILED = "setup_failed"
RETURN_WEIGHTS = RewardWeights()


class SuiteRoom(Protocol):
    """What a suite needs of the room: create, read and close episodes, and bind an agent to one.
    A single server's `EpisodeManager` has all of it; a cluster's front binds no agents."""

    @property
    def config(self) -> EngineConfig: ...

    @property
    def registry(self) -> TaskRegistry: ...

    async def create(self, task_id: str, seed: int | None = None, limits: EpisodeLimits | None = None,
                     difficulty: str | None = None, recording: Any = None, observe: bool = True) -> CreatedEpisode: ...

    def bind_agent(self, episode_id: str) -> AgentPort: ...

    def state(self, episode_id: str) -> EpisodeState: ...

    def snapshot(self, episode_id: str) -> EpisodeSnapshot: ...

    async def close(self, episode_id: str, by: ClosedBy = "trainer") -> EpisodeState: ...

    def keep_trainer_data(self, episode_id: str, data: Any) -> None: ...


def new_task_text(number: int, total: int, screen: Screen) -> str:
    """What the agent reads when its call meets a new task: plainly new, its goal, then the page."""
    return (f"A new task has begun (task {number} of {total}); your last call was not carried out on it.\n"
            f"New goal: {screen.observation.goal}\n\n{screen.text}")


class SuiteSession:
    """An `AgentPort` that walks its agent through `plan`'s episodes. Start it before handing it out."""

    def __init__(self, room: SuiteRoom, plan: SuitePlan, suite_id: str, suite: str,
                 on_report: Callable[[SuiteReport], None] | None = None) -> None:
        self._room = room
        self.plan = plan
        self.suite_id = suite_id
        self._suite = suite
        self._on_report = on_report
        self._lock = asyncio.Lock()
        self._next = 0  # the plan's next episode to create
        self._current: tuple[int, PlannedEpisode, str, AgentPort] | None = None
        self._results: list[SuiteEpisodeResult] = []
        self._stopped: str | None = None
        self.started_at = time.time()

    # -- the agent port ----------------------------------------------------------------

    @property
    def episode_id(self) -> str:
        """The suite's id: the door keeps its rate limits per port, and one agent walking a suite
        keeps one allowance (and one count of requests in flight) from episode to episode."""
        return self.suite_id

    @property
    def goal(self) -> str:
        return self._current[3].goal if self._current is not None else ""

    async def observe(self, screenshot: bool = False) -> Screen:
        port, fresh = await self._port()
        if fresh is not None:
            return fresh
        try:
            return await port.observe(screenshot)
        except EpisodeOverError:
            return await self._after_over()

    async def act(self, tool: str, arguments: dict[str, Any]) -> AgentStepResult:
        port, fresh = await self._port()
        if fresh is None:
            try:
                return await port.act(tool, arguments)
            except EpisodeOverError:
                fresh = await self._after_over()
        return AgentStepResult(observation=fresh.observation, error=None, text=fresh.text)

    async def consult_oracle(self, arguments: dict[str, Any]) -> OracleReply:
        port, fresh = await self._port()
        if fresh is None:
            try:
                return await port.consult_oracle(arguments)
            except EpisodeOverError:
                fresh = await self._after_over()
        return OracleReply(answer=fresh.text, refused=False)

    # -- the walk ----------------------------------------------------------------------

    async def start(self) -> None:
        """Set up the first episode (those whose setup fails are reported as such, and skipped)."""
        async with self._lock:
            await self._open_next()

    async def _port(self) -> tuple[AgentPort, Screen | None]:
        """The running episode's port; or, if it has ended, the next episode's first observation."""
        async with self._lock:
            current = self._current
            if current is None:
                raise EvaluationOverError()
            if not self._over(current[2]):
                return current[3], None
            return current[3], await self._move_on()

    async def _after_over(self) -> Screen:
        """The port refused a call (its episode ended or closed meanwhile): move on."""
        async with self._lock:
            if self._current is None:
                raise EvaluationOverError()
            return await self._move_on()

    def _over(self, episode_id: str) -> bool:
        try:
            state = self._room.state(episode_id)
        except EpisodeNotFoundError:
            return True  # closed and let go meanwhile (a cluster node's idle reaper)
        return state.done or state.status is EpisodeStatus.CLOSED

    async def _move_on(self) -> Screen:
        """Close the ended episode, keep its result and open the next; its first page, introduced."""
        await self._finish_current("trainer")
        screen = await self._open_next()
        if screen is None:
            raise EvaluationOverError()
        return screen

    async def _open_next(self) -> Screen | None:
        """Create the plan's next episode that sets up; its first observation, or None at the end."""
        while self._next < len(self.plan.episodes) and self._stopped is None:
            index, planned = self._next, self.plan.episodes[self._next]
            self._next += 1
            spec = self._room.registry.get(planned.task_id)
            difficulty = self.plan.difficulty if spec.difficulties else None
            limits = EpisodeLimits(max_steps=self.plan.max_steps or self._room.config.default_max_steps)
            started = time.time()
            try:
                created = await self._room.create(planned.task_id, seed=planned.seed, limits=limits,
                                                  difficulty=difficulty, observe=False)
            except (EpisodeSetupError, ValueError) as error:
                logger.warning("suite %s: %s", self.suite_id, error)
                self._results.append(SuiteEpisodeResult(
                    index=index, episode_id=None, task_id=planned.task_id, seed=planned.seed, ended=True,
                    success=False, failure_reason=SETUP_FAILED, steps=0, return_=0.0,
                    wall_time_s=round(time.time() - started, 3)))
                self._publish()
                continue
            except BaseException:
                self._next = index  # not run: the agent's next call tries it again (a full room, a full disk)
                raise
            self._room.keep_trainer_data(created.episode_id, {SUITE_ID_KEY: self.suite_id})
            port = self._room.bind_agent(created.episode_id)
            self._current = (index, planned, created.episode_id, port)
            screen = await port.observe()
            text = new_task_text(index + 1, len(self.plan.episodes), screen)
            return Screen(observation=screen.observation, image_png=None, text=text)
        self._publish()
        return None

    async def _finish_current(self, by: ClosedBy) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        index, planned, episode_id, _port = current
        # Read before closing: a cluster's browser node lets an episode go once it is closed
        # (its front's book has it), and what ended the episode is all there already.
        result = self._result(index, planned, episode_id, ended=True)
        try:
            await self._room.close(episode_id, by=by)
        except Exception as error:  # noqa: BLE001 - the report still takes what the room recorded
            logger.warning("suite %s: closing %s: %s", self.suite_id, episode_id, error)
        self._results.append(result)
        self._publish()

    def _result(self, index: int, planned: PlannedEpisode, episode_id: str, ended: bool) -> SuiteEpisodeResult:
        """The episode as the room recorded it: outcome, steps and return under the default weights."""
        try:
            snapshot = self._room.snapshot(episode_id)
            state = snapshot.state
            returned = cumulative_reward(score_trajectory(snapshot.records, RETURN_WEIGHTS, state.max_steps))
        except Exception:  # noqa: BLE001 - the book refuses reads now: the state alone still says a lot
            state, returned = self._room.state(episode_id), 0.0
        return SuiteEpisodeResult(
            index=index, episode_id=episode_id, task_id=planned.task_id, seed=planned.seed,
            ended=ended and state.done, success=state.success, failure_reason=state.failure_reason.value,
            steps=state.step_index, return_=round(returned, 6),
            wall_time_s=round(max(0.0, state.last_activity_at - state.created_at), 3))

    # -- the operator's side -------------------------------------------------------------

    @property
    def episode_ids(self) -> list[str]:
        ids = [result.episode_id for result in self._results if result.episode_id is not None]
        return ids + ([self._current[2]] if self._current is not None else [])

    def report(self) -> SuiteReport:
        """The report so far: ended episodes, then the running one (`ended` false while it runs)."""
        results = list(self._results)
        if self._current is not None:
            index, planned, episode_id, _port = self._current
            results.append(self._result(index, planned, episode_id, ended=True))
        complete = (self._stopped is None and len(results) == len(self.plan.episodes)
                    and all(result.ended for result in results))
        return SuiteReport(
            suite_id=self.suite_id, suite=self._suite, tasks=list(self.plan.task_ids),
            episodes_per_task=self.plan.episodes_per_task, seed=self.plan.seed, difficulty=self.plan.difficulty,
            planned_episodes=len(self.plan.episodes), complete=complete,
            incomplete_reason=None if complete else self._stopped, started_at=self.started_at,
            updated_at=time.time(), episodes=results, per_task=per_task(self.plan.task_ids, results),
            overall=rate_of(results))

    async def stop(self, reason: str) -> SuiteReport:
        """The agent is gone (`reason`: disconnected, shutdown): keep what was done, close the rest."""
        async with self._lock:
            if self._current is not None and not self._over(self._current[2]):
                self._stopped = reason
                index, planned, episode_id, _port = self._current
                self._current = None
                result = self._result(index, planned, episode_id, ended=False)
                try:
                    await self._room.close(episode_id, by="shutdown")
                except Exception as error:  # noqa: BLE001 - shutting down regardless
                    logger.warning("suite %s: closing %s: %s", self.suite_id, episode_id, error)
                self._results.append(result)
            elif self._current is not None:
                await self._finish_current("trainer")
            if self._next < len(self.plan.episodes) and self._stopped is None:
                self._stopped = reason
            self._next = len(self.plan.episodes)
            report = self.report()
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _publish(self) -> None:
        if self._on_report is not None:
            try:
                self._on_report(self.report())
            except Exception:  # noqa: BLE001 - a report that cannot be written must not stop the agent
                logger.exception("suite %s: writing the report failed", self.suite_id)


__all__ = ["SETUP_FAILED", "SUITE_ID_KEY", "SuiteRoom", "SuiteSession", "new_task_text"]
