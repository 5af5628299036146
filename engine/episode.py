"""One episode: a task in its own browser context, driven one action at a time.

All methods here run on the owning worker's thread (see `engine.worker`); the
async `EpisodeManager` is the only caller. The task's `validate` runs here,
server-side, after every action, and its verdict goes into the step record,
never into the observation.

The episode composes the parts that do the work: a `TaskSession` (the BrowserGym
task and its chat), a `BrowserSession` (context, tabs, page reads), the
termination policy (`engine.termination`), the step record builders
(`engine.step_records`) and a `MediaRecorder`. Other threads read only
`snapshot`, which `publish` replaces at the end of every job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import playwright.sync_api as pw
from pydantic import ValidationError

from engine.actions import ActionError, execute
from engine.agent_observation import closed_observation, observation_of
from engine.agent_view.actions import Action, AskOracle, SendMessage, TabFocus, describe_validation_error, parse_action
from engine.agent_view.observation import Observation
from engine.agent_view.port import EpisodeOverError
from engine.browser_session import BrowserSession
from engine.config import EngineConfig
from engine.observation import PageSnapshot
from engine.oracle_desk import Oracle, OracleAnswer, OracleDesk, OracleUnavailableError
from engine.recorder import MediaRecorder, Recording
from engine.records import ClosedBy, EpisodeLimits, EpisodeState, EpisodeStatus, ErrorKind, FailureReason, StepRecord
from engine.snapshot import EpisodeSnapshot
from engine.step_records import (
    StepTiming,
    Verdict,
    action_record,
    fault_record,
    oracle_record,
    playwright_message,
    terminal,
    with_blocked,
)
from engine.task_session import TaskSession
from engine.termination import StepCounters, action_signature, counted, oracle_budget_exceeded, termination_reason
from engine.transcript import Transcript
from engine.worker import BrowserWorker
from tasks.registry import TaskContext, TaskSpec

logger = logging.getLogger(__name__)

class EpisodeClosedError(Exception):
    """The episode's browser context is closed: there is no page left to show."""

    def __init__(self, episode_id: str) -> None:
        super().__init__(f"episode {episode_id!r} is closed; its browser context is gone")


class BrowserGoneError(Exception):
    """The browser went away during a step; the step is recorded as a browser fault."""


class Episode:
    def __init__(
        self,
        episode_id: str,
        spec: TaskSpec,
        seed: int,
        limits: EpisodeLimits,
        config: EngineConfig,
        asset_origin: str,
        worker: BrowserWorker,
        oracle: Oracle | None = None,
        difficulty: str | None = None,
        recording: Recording | None = None,
    ) -> None:
        self.id = episode_id
        self.spec = spec
        self.seed = seed
        self.limits = limits
        self.config = config
        self.asset_origin = asset_origin
        self.worker = worker
        self.difficulty = difficulty
        self.curriculum_variant_id: str | None = None
        self.recording = recording or Recording()

        self.status = EpisodeStatus.RUNNING
        self.failure_reason = FailureReason.NONE
        self.success = False
        self.goal = ""
        self.step_index = 0
        self.counters = StepCounters()
        self.created_at = time.time()
        self.last_activity_at = self.created_at
        self.setup_ms = 0.0
        self.closed_by: ClosedBy | None = None

        self.browser = BrowserSession(config, spec.secret_selector, lambda: self.step_index + 1)
        self._recorder = MediaRecorder(self.recording)
        self._records: list[StepRecord] = []
        self.transcript = Transcript()
        self._task: TaskSession | None = None
        self._oracle = OracleDesk(oracle, limits.oracle_budget)
        # Nobody else holds the episode yet: this first snapshot is published by its maker.
        self.snapshot = self._take_snapshot()

    # -- what other threads read -------------------------------------------------------

    def publish(self) -> None:
        """Replace `snapshot` with the episode as it is now. Worker thread, at the end of a job."""
        self.snapshot = self._take_snapshot()

    def _take_snapshot(self) -> EpisodeSnapshot:
        return EpisodeSnapshot(
            state=self._state(), records=tuple(self._records), media=self._recorder.published,
            recording=self.recording,
        )

    def _state(self) -> EpisodeState:
        return EpisodeState(
            episode_id=self.id,
            task_id=self.spec.id,
            seed=self.seed,
            status=self.status,
            goal=self.goal,
            step_index=self.step_index,
            max_steps=self.limits.max_steps,
            done=self.status is not EpisodeStatus.RUNNING,
            success=self.success,
            failure_reason=self.failure_reason,
            limits=self.limits,
            invalid_actions=self.counters.invalid_actions,
            repeated_actions=self.counters.repeated_actions,
            oracle_calls=self._oracle.calls,
            difficulty=self.difficulty,
            curriculum_variant_id=self.curriculum_variant_id,
            created_at=self.created_at,
            last_activity_at=self.last_activity_at,
            setup_ms=self.setup_ms,
            closed_by=self.closed_by,
        )

    @property
    def running(self) -> bool:
        return self.status is EpisodeStatus.RUNNING

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self, observe: bool = True) -> Observation | None:
        """Open the context, run the task's setup, return the first observation.

        With `observe=False` (a trainer creating an episode over HTTP, who is not shown
        the page) the first observation is left for the agent's first call, unless the
        episode is recorded.
        """
        started = time.perf_counter()
        task = self._task = TaskSession(self.spec, TaskContext(self.seed, self.asset_origin, self.difficulty))
        self.curriculum_variant_id, self.difficulty = task.curriculum_variant_id, task.difficulty
        page = self.browser.open(
            self.worker,
            [self.asset_origin, *self.spec.extra_origins],
            preload_url=self.asset_origin + self.spec.preload_path if self.spec.preload_path else None,
            viewport=task.task.viewport,
            locale=task.task.locale,
            timezone_id=task.task.timezone_id,
        )
        self.goal = task.setup(page)
        self.browser.use_action_timeout()
        self.browser.settle()
        self.counters = StepCounters(best_progress=self._progress())
        self.setup_ms = (time.perf_counter() - started) * 1000
        if not observe and not self._recorder.active:
            return None
        observation = self._observe(error=None)
        self._record_media(0, observation.to_text())
        return observation

    def close(self, by: ClosedBy = "trainer") -> None:
        """Tear the task down and free the browser context. The record stays."""
        if self.status is EpisodeStatus.CLOSED:
            return
        self.closed_by = by
        if self.status is EpisodeStatus.RUNNING:
            self.status = EpisodeStatus.ENDED
        try:
            if self._task is not None:
                self._task.teardown()
        except Exception:  # noqa: BLE001 - teardown must not keep the context alive
            logger.exception("task teardown failed for episode %s", self.id)
        self.browser.close()
        self.status = EpisodeStatus.CLOSED

    def end(self, reason: FailureReason) -> None:
        """End the episode from outside (trainer cap, reaper); records stay."""
        if self.status is EpisodeStatus.RUNNING:
            self._finish(reason)
            self._mark_last_terminal(reason)

    def drop_media(self) -> None:
        """Forget recorded screenshots and observation texts (the step records stay), and publish."""
        self._recorder.drop()
        self.publish()

    # -- agent actions -----------------------------------------------------------------

    def observe(self, screenshot: bool = False) -> tuple[Observation, bytes | None]:
        """Read the page without acting; not a step."""
        self._require_running()
        self.last_activity_at = time.time()
        try:
            page = self.browser.settle_and_read()
            observation = self._observe(error=self._records[-1].error if self._records else None, page=page)
            image = self.browser.screenshot() if screenshot else None
        except pw.Error as error:
            if self._fault(error):
                self._mark_last_terminal(FailureReason.BROWSER_ERROR)
            return self._closed_observation(), None
        if self._records:
            # Requests that surfaced only now belong to the last action, which started them.
            late = self.browser.take_blocked()
            if late:
                self._records[-1] = with_blocked(self._records[-1], late)
        return observation, image

    def screenshot(self) -> bytes:
        """The current page as PNG, for the trainer: while running or ended, until closed.

        Not a step, and not agent activity (it does not keep an idle episode open).
        """
        if self.status is EpisodeStatus.CLOSED or not self.browser.is_open:
            raise EpisodeClosedError(self.id)
        return self.browser.screenshot()

    def step(self, tool: str, arguments: dict[str, Any]) -> tuple[Observation, StepRecord]:
        """Validate and run one action, then let the task judge the page."""
        self._require_running()
        self.last_activity_at = time.time()
        started_at, started = time.time(), time.perf_counter()
        try:
            error, error_kind = self._act(tool, arguments)
            action_ms = (time.perf_counter() - started) * 1000
            validate_started = time.perf_counter()
            verdict, page_read = self._validate()
            read_ms = page_read.ms if page_read is not None else 0.0
            validate_ms = (time.perf_counter() - validate_started) * 1000 - read_ms
        except BrowserGoneError as gone:
            self._fault(gone.__cause__ or gone)  # the fault's own record is the terminal step
            return self._closed_observation(), self._record_fault(tool, arguments, started_at, started)

        self.step_index += 1
        timing = StepTiming(started_at=started_at, action_ms=action_ms, validate_ms=validate_ms)
        record = action_record(
            self.step_index, tool, arguments, error, error_kind, self.browser.safe_url(), timing, verdict,
            self._progress(), self.browser.take_blocked(),
        )
        self.counters = counted(self.counters, record, action_signature(tool, arguments))
        reason = termination_reason(self.limits, self.counters, record, self._records, self.goal, verdict.error)
        if reason is not None:
            self._finish(reason)
            record = terminal(record, reason)

        observed = time.perf_counter()
        try:
            observation = self._observe(error=error, page=page_read.snapshot if page_read is not None else None)
        except pw.Error as browser_error:
            if self._fault(browser_error):
                record = terminal(record, FailureReason.BROWSER_ERROR)
            observation = self._closed_observation()
        observation_ms = (time.perf_counter() - observed) * 1000 + read_ms
        self._record_media(record.index, observation.to_text())
        record = with_blocked(record, self.browser.take_blocked(), observation_ms=observation_ms)
        self._records.append(record)  # complete: nothing changes it from here on
        return observation, record

    def ask_oracle(self, question: str) -> tuple[str, StepRecord]:
        """Answer with a hint from the operator's oracle; charged against the budget."""
        self._require_running()
        self.last_activity_at = time.time()
        started_at, started = time.time(), time.perf_counter()
        error_kind: ErrorKind | None = None
        try:
            AskOracle(question=question)
        except ValidationError as validation_error:
            answer = OracleAnswer("", describe_validation_error(validation_error), charged=False)
            error_kind = "invalid"
        else:
            answer = self._oracle.consult(
                question, self.goal, lambda: self._observe(error=None).to_text(), self.spec.hints)
            error_kind = "oracle_budget" if answer.refusal is not None else None
        error, told = answer.refusal, answer.text if answer.refusal is None else answer.refusal
        self.step_index += 1
        timing = StepTiming(started_at=started_at, action_ms=(time.perf_counter() - started) * 1000)
        record = oracle_record(
            self.step_index, question, error, error_kind, answer.charged, self.browser.safe_url(), timing,
            self.counters.best_progress, self.browser.take_blocked(),
        )
        self.counters = counted(self.counters, record, action_signature("ask_oracle", {"question": question}))
        self._record_media(record.index, f"Oracle answer: {told}", screenshot=False)
        if oracle_budget_exceeded(self.limits, self._oracle.calls, answer.charged):
            reason: FailureReason | None = FailureReason.ORACLE_BUDGET_EXCEEDED
        else:
            reason = termination_reason(self.limits, self.counters, record, self._records, self.goal)
        if reason is not None:
            self._finish(reason)
            record = terminal(record, reason)
        self._records.append(record)
        return told, record

    # -- internals -----------------------------------------------------------------------

    def _require_running(self) -> None:
        if self.status is not EpisodeStatus.RUNNING:
            raise EpisodeOverError()

    def _act(self, tool: str, arguments: dict[str, Any]) -> tuple[str | None, ErrorKind | None]:
        """Run the action: its error for the agent and the error's kind, or (None, None).
        BrowserGoneError if the browser went away."""
        try:
            action = parse_action(tool, arguments)
        except ValidationError as validation_error:
            return describe_validation_error(validation_error), "invalid"
        if isinstance(action, AskOracle):
            raise ValueError("ask_oracle goes through Episode.ask_oracle")
        try:
            self._run(action)
        except ActionError as action_error:
            return str(action_error), "page" if self.browser.targets_exist(action) else "invalid"
        except pw.Error as browser_error:
            if self.browser.browser_gone():
                raise BrowserGoneError() from browser_error
            return f"Could not {tool.replace('_', ' ')}: {playwright_message(browser_error)}", "page"
        return None, None

    def _validate(self) -> tuple[Verdict, PageRead | None]:
        """The task's verdict on the page the action left, and the read of that page if the
        verdict was made from it. BrowserGoneError if the browser went away."""
        assert self._task is not None
        try:
            page_read = self._read_probed()
            if page_read is None:
                self.browser.settle()
            page = self.browser.active_page()
            if page_read is None or page_read.snapshot.probed is None:
                return self._task.validate(page), page_read
            return self._task.validate_probed(page, page_read.snapshot.probed), page_read
        except pw.Error as browser_error:
            if self.browser.browser_gone():
                raise BrowserGoneError() from browser_error
            return Verdict(error=playwright_message(browser_error)), None

    def _read_probed(self) -> PageRead | None:
        """For a task with a validation probe: the page settled and read (the read the step's
        observation needs anyway), with the probe run in the same page call, so the verdict is
        made from what it returned, a page call fewer. None for other tasks (the page is settled,
        they are judged, then the page is read, as they always were), or if the read failed
        (the page settled; the task then reads it itself, and the observation reads it again)."""
        assert self._task is not None
        probe = self._task.validation_probe
        if probe is None:
            return None
        started = time.perf_counter()
        try:
            snapshot = self.browser.settle_and_read(probe)
        except pw.Error:
            self.browser.settle()
            return None
        return PageRead(snapshot, (time.perf_counter() - started) * 1000)

    def _run(self, action: Action) -> None:
        if isinstance(action, SendMessage):
            assert self._task is not None
            self._task.say(action.text)
        elif isinstance(action, TabFocus):
            self.browser.focus_tab(action.index)
        else:
            execute(self.browser.active_page(), action, self.config.action_timeout_ms)

    def _finish(self, reason: FailureReason) -> None:
        """The episode stops running, for `reason`."""
        self.status = EpisodeStatus.ENDED
        self.failure_reason = reason
        self.success = reason is FailureReason.SUCCESS

    def _mark_last_terminal(self, reason: FailureReason) -> None:
        """The episode ended after its last step: that step, if any, becomes the terminal one
        (a new record in its place; the old one may already be published)."""
        if self._records:
            self._records[-1] = terminal(self._records[-1], reason)

    def _fault(self, error: BaseException) -> bool:
        """The browser failed: a running episode ends with browser_error. True if this ended it;
        the caller then marks the step it ended on."""
        logger.warning("episode %s: browser fault: %s", self.id, error)
        if self.status is not EpisodeStatus.RUNNING:
            return False
        self._finish(FailureReason.BROWSER_ERROR)
        return True

    def _record_fault(self, tool: str, arguments: dict[str, Any], started_at: float, started: float) -> StepRecord:
        self.step_index += 1
        timing = StepTiming(started_at=started_at, action_ms=(time.perf_counter() - started) * 1000)
        record = fault_record(self.step_index, tool, arguments, timing, self.browser.take_blocked())
        self._records.append(record)
        return record

    def _record_media(self, index: int, observation_text: str, screenshot: bool = True) -> None:
        """Keep what the agent saw after step `index` (and the page's pixels) when recording."""
        browser_failed = not self.browser.is_open or (
            not self.running and self.failure_reason is FailureReason.BROWSER_ERROR)
        self._recorder.record(index, observation_text, self.browser.screenshot if screenshot else None,
                              browser_failed)

    def _observe(self, error: str | None, page: PageSnapshot | None = None) -> Observation:
        """The observation of `page` (a read of the active page made in this step), or of a new read."""
        if page is None:
            page = self.browser.read()
        return observation_of(
            page, self.browser.tabs(page.title), goal=self.goal, error=error, step_index=self.step_index,
            max_steps=self.limits.max_steps, over=not self.running, max_chars=self.config.max_observation_chars,
        )

    def _closed_observation(self) -> Observation:
        return closed_observation(self.goal, self.step_index, self.limits.max_steps)

    def _progress(self) -> float | None:
        if self._task is None or not self.browser.is_open:
            return None
        return self._task.progress(self.browser.active_page)


@dataclass(frozen=True)
class PageRead:
    """A read of the active page made while the step was judged, and how long it took."""

    snapshot: PageSnapshot
    ms: float


__all__ = ["Episode", "EpisodeClosedError", "Oracle", "OracleUnavailableError"]
