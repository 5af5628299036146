"""One episode: a task in its own browser context, driven one action at a time.

All methods here run on the owning worker's thread (see `engine.worker`); the
async `EpisodeManager` is the only caller. The task's `validate` runs here,
server-side, after every action, and its verdict goes into the step record,
never into the observation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask
from pydantic import ValidationError

from engine.actions import BID_ATTRIBUTE, ActionError, execute
from engine.agent_view.actions import Action, AskOracle, SendMessage, TabFocus, describe_validation_error, parse_action
from engine.agent_view.observation import Observation, Tab
from engine.agent_view.port import EpisodeOverError
from engine.config import EngineConfig
from engine.egress import EgressGuard
from engine.observation import BidIndex, PageSnapshot, snapshot_page
from engine.records import (
    BlockedRequest,
    ClosedBy,
    EpisodeLimits,
    EpisodeState,
    EpisodeStatus,
    ErrorKind,
    FailureReason,
    StepRecord,
)
from engine.termination import classify_task_failure
from engine.worker import BrowserWorker
from tasks.registry import TaskContext, TaskSpec

logger = logging.getLogger(__name__)

GREETING = "Hi! I am your UI assistant, I can perform web tasks for you. What can I help you with?"

# An oracle answers (question, goal, observation text, hints) with a hint.
Oracle = Callable[[str, str, str, tuple[str, ...]], str]


class OracleUnavailableError(Exception):
    """The oracle back-end failed; the call is not charged."""


class EpisodeClosedError(Exception):
    """The episode's browser context is closed: there is no page left to show."""

    def __init__(self, episode_id: str) -> None:
        super().__init__(f"episode {episode_id!r} is closed; its browser context is gone")


# Per-step recording (opt-in per episode): bounded so a long or busy episode cannot
# fill the server's memory. A screenshot over the size cap, or past the count cap,
# is skipped; the step still happens and says it has no image.
MAX_RECORDED_SCREENSHOT_BYTES = 300_000
MAX_RECORDED_SCREENSHOTS = 200
MAX_RECORDED_OBSERVATION_CHARS = 20_000


@dataclass(frozen=True)
class Recording:
    """What an episode keeps per step besides its StepRecord, for replay."""

    screenshots: bool = False
    observations: bool = False


@dataclass
class StepMedia:
    """What was recorded after one step (index 0: after setup), kept out of StepRecord
    so trajectories stay small."""

    observation_text: str | None = None
    screenshot_png: bytes | None = None
    screenshot_skipped: str | None = None


def playwright_message(error: pw.Error) -> str:
    """The first line of a Playwright error, without its call log or selector internals."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    first = first.replace("Error: ", "").replace("Locator.", "")
    return first[:300]


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
        self.oracle = oracle
        self.difficulty = difficulty
        self.curriculum_variant_id: str | None = None
        self.recording = recording or Recording()
        self.media: dict[int, StepMedia] = {}

        self.status = EpisodeStatus.RUNNING
        self.failure_reason = FailureReason.NONE
        self.success = False
        self.goal = ""
        self.step_index = 0
        self.records: list[StepRecord] = []
        self.chat_messages: list[dict[str, Any]] = []
        self.invalid_actions = 0
        self.repeated_actions = 0
        self.oracle_calls = 0
        self.created_at = time.time()
        self.last_activity_at = self.created_at
        self.setup_ms = 0.0
        self.closed_by: ClosedBy | None = None

        self._task: AbstractBrowserTask | None = None
        self._context: pw.BrowserContext | None = None
        self._page: pw.Page | None = None
        self._cdp: dict[pw.Page, pw.CDPSession] = {}
        self._bid_indexes: dict[pw.Page, BidIndex] = {}
        self._guard: EgressGuard | None = None  # installed with the context, in setup
        self._blocked: list[BlockedRequest] = []
        self._new_pages: list[pw.Page] = []
        self._pages_sent_away: set[pw.Page] = set()
        self._next_bid = 0
        self._last_signature: tuple[str, str] | None = None
        self._last_progress: float | None = None
        self._steps_since_progress = 0

    # -- lifecycle ---------------------------------------------------------------------

    def setup(self, observe: bool = True) -> Observation | None:
        """Open the context, run the task's setup, return the first observation.

        With `observe=False` (a trainer creating an episode over HTTP, who is not shown
        the page) the first observation is left for the agent's first call, unless the
        episode is recorded.
        """
        started = time.perf_counter()
        task = self.spec.factory(TaskContext(self.seed, self.asset_origin, self.difficulty))
        self._task = task
        self.curriculum_variant_id = getattr(task, "curriculum_variant_id", None)
        self.difficulty = getattr(task, "difficulty", None) or self.difficulty  # the task's default, if none was asked
        lease = self.worker.take_context(
            [self.asset_origin, *self.spec.extra_origins],
            self._on_blocked,
            preload_url=self.asset_origin + self.spec.preload_path if self.spec.preload_path else None,
            viewport=task.viewport,
            locale=task.locale,
            timezone_id=task.timezone_id,
        )
        context, page = lease.context, lease.page
        self._context = context
        self._guard = lease.guard
        self.worker.episode_count += 1
        context.set_default_timeout(self.config.setup_timeout_s * 1000)
        context.on("page", self._on_new_page)
        self._page = page
        goal, _info = task.setup(page=self._page)
        self.goal = _goal_text(goal)
        self.chat_messages = [
            {"role": "assistant", "timestamp": time.time(), "message": GREETING},
            {"role": "user", "timestamp": time.time(), "message": self.goal},
        ]
        context.set_default_timeout(self.config.action_timeout_ms)
        self._settle()
        self._last_progress = self._progress()
        self.setup_ms = (time.perf_counter() - started) * 1000
        if not observe and not (self.recording.screenshots or self.recording.observations):
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
        if self._context is not None:
            try:
                self._context.close()
            except pw.Error:
                pass
            self.worker.episode_count -= 1
        self._context = None
        self._page = None
        self._cdp.clear()
        self._bid_indexes.clear()
        self.status = EpisodeStatus.CLOSED

    # -- agent actions -----------------------------------------------------------------

    def observe(self, screenshot: bool = False) -> tuple[Observation, bytes | None]:
        """Read the page without acting; not a step."""
        self._require_running()
        self.last_activity_at = time.time()
        try:
            self._settle()
            observation = self._observe(error=self.records[-1].error if self.records else None)
            image = self._screenshot() if screenshot else None
        except pw.Error as error:
            self._fault(error)
            return self._closed_observation(), None
        if self.records:
            # Requests that surfaced only now belong to the last action, which started them.
            self.records[-1].blocked.extend(self._take_blocked())
        return observation, image

    def _screenshot(self) -> bytes:
        """The viewport as PNG, with the task's secret fields painted over: observations mask
        their values, and pixels must not show them either."""
        page = self._active_page()
        secret = self.spec.secret_selector
        return page.screenshot(type="png", mask=[page.locator(secret)] if secret else [])

    def screenshot(self) -> bytes:
        """The current page as PNG, for the trainer: while running or ended, until closed.

        Not a step, and not agent activity (it does not keep an idle episode open).
        """
        if self.status is EpisodeStatus.CLOSED or self._context is None:
            raise EpisodeClosedError(self.id)
        return self._screenshot()

    def _record_media(self, index: int, observation_text: str, screenshot: bool = True) -> None:
        """Keep what the agent saw after step `index` (and the page's pixels) when recording."""
        if not (self.recording.screenshots or self.recording.observations):
            return
        media = StepMedia(observation_text=_capped(observation_text, MAX_RECORDED_OBSERVATION_CHARS))
        if self.recording.screenshots and screenshot:
            taken = sum(1 for m in self.media.values() if m.screenshot_png is not None)
            if taken >= MAX_RECORDED_SCREENSHOTS:
                media.screenshot_skipped = f"the episode already has {MAX_RECORDED_SCREENSHOTS} screenshots"
            elif self._context is None or not self.running and self.failure_reason is FailureReason.BROWSER_ERROR:
                media.screenshot_skipped = "the browser failed"
            else:
                try:
                    image = self._screenshot()
                except (pw.Error, AssertionError) as error:
                    media.screenshot_skipped = f"the browser failed: {type(error).__name__}"
                else:
                    if len(image) > MAX_RECORDED_SCREENSHOT_BYTES:
                        media.screenshot_skipped = f"the PNG is larger than {MAX_RECORDED_SCREENSHOT_BYTES} bytes"
                    else:
                        media.screenshot_png = image
        self.media[index] = media

    def drop_media(self) -> None:
        """Forget recorded screenshots and observation texts (the step records stay)."""
        self.media.clear()

    def step(self, tool: str, arguments: dict[str, Any]) -> tuple[Observation, StepRecord]:
        """Validate and run one action, then let the task judge the page."""
        self._require_running()
        self.last_activity_at = time.time()
        started_at = time.time()
        started = time.perf_counter()
        error: str | None = None
        error_kind: ErrorKind | None = None
        action: Action | None = None
        try:
            action = parse_action(tool, arguments)
        except ValidationError as validation_error:
            error, error_kind = describe_validation_error(validation_error), "invalid"
        if action is not None and isinstance(action, AskOracle):
            raise ValueError("ask_oracle goes through Episode.ask_oracle")

        if action is not None:
            try:
                self._run(action)
            except ActionError as action_error:
                error = str(action_error)
                error_kind = "page" if self._targets_exist(action) else "invalid"
            except pw.Error as browser_error:
                if self._browser_gone():
                    self._fault(browser_error)
                    return self._closed_observation(), self._record_fault(tool, arguments, started_at, started)
                error = f"Could not {tool.replace('_', ' ')}: {playwright_message(browser_error)}"
                error_kind = "page"
        action_ms = (time.perf_counter() - started) * 1000

        validate_started = time.perf_counter()
        reward, done, message, validation_error_text = 0.0, False, "", None
        info: object = {}
        try:
            self._settle()
            reward, done, message, info = self._task.validate(self._active_page(), self.chat_messages)  # type: ignore[union-attr]
        except pw.Error as browser_error:
            if self._browser_gone():
                self._fault(browser_error)
                return self._closed_observation(), self._record_fault(tool, arguments, started_at, started)
            validation_error_text = playwright_message(browser_error)
        except Exception as task_error:  # noqa: BLE001 - a task bug ends the episode cleanly
            validation_error_text = f"{type(task_error).__name__}: {task_error}"
        validate_ms = (time.perf_counter() - validate_started) * 1000

        self.step_index += 1
        record = StepRecord(
            index=self.step_index,
            tool=tool,
            arguments=_jsonable(arguments),
            valid=error is None,
            error=error,
            error_kind=error_kind,
            url=self._safe_url(),
            started_at=started_at,
            action_ms=action_ms,
            observation_ms=0.0,
            validate_ms=validate_ms,
            task_reward=float(reward),
            task_done=bool(done),
            task_message=str(message or validation_error_text or ""),
            task_info=_scalar_info(info),
            progress=self._progress(),
            blocked=self._take_blocked(),
        )
        self._count(record, tool, arguments)
        self._decide_termination(record, validation_error_text)
        self.records.append(record)

        observed = time.perf_counter()
        try:
            observation = self._observe(error=error)
        except pw.Error as browser_error:
            self._fault(browser_error)
            observation = self._closed_observation()
        record.observation_ms = (time.perf_counter() - observed) * 1000
        self._record_media(record.index, observation.to_text())
        record.blocked.extend(self._take_blocked())
        return observation, record

    def ask_oracle(self, question: str) -> tuple[str, StepRecord]:
        """Answer with a hint from the operator's oracle; charged against the budget."""
        self._require_running()
        self.last_activity_at = time.time()
        started_at, started = time.time(), time.perf_counter()
        arguments = {"question": question}
        error_kind: ErrorKind | None = None
        try:
            AskOracle(question=question)
        except ValidationError as validation_error:
            answer, error, charged = "", describe_validation_error(validation_error), False
            error_kind = "invalid"
        else:
            answer, error, charged = self._consult_oracle(question)
            error_kind = "oracle_budget" if error is not None else None
        self.step_index += 1
        record = StepRecord(
            index=self.step_index, tool="ask_oracle", arguments=_jsonable(arguments), valid=error is None,
            error=error, error_kind=error_kind, url=self._safe_url(), started_at=started_at,
            action_ms=(time.perf_counter() - started) * 1000, observation_ms=0.0, validate_ms=0.0,
            oracle_call=charged, progress=self._last_progress, blocked=self._take_blocked(),
        )
        self._count(record, "ask_oracle", arguments)
        self._record_media(record.index, f"Oracle answer: {answer if error is None else error}", screenshot=False)
        if charged and self.oracle_calls > self.limits.oracle_budget and self.limits.end_on_oracle_budget:
            self._end(record, FailureReason.ORACLE_BUDGET_EXCEEDED)
        else:
            self._decide_termination(record, None)
        self.records.append(record)
        return (answer if error is None else error), record

    # -- state ---------------------------------------------------------------------------

    def state(self) -> EpisodeState:
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
            invalid_actions=self.invalid_actions,
            repeated_actions=self.repeated_actions,
            oracle_calls=self.oracle_calls,
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

    # -- internals -----------------------------------------------------------------------

    def _require_running(self) -> None:
        if self.status is not EpisodeStatus.RUNNING:
            raise EpisodeOverError()

    def _run(self, action: Action) -> None:
        if isinstance(action, SendMessage):
            self.chat_messages.append({"role": "assistant", "timestamp": time.time(), "message": action.text})
        elif isinstance(action, TabFocus):
            pages = self._context.pages  # type: ignore[union-attr]
            if action.index >= len(pages):
                raise ActionError(f"There is no tab {action.index}; open tabs are 0 to {len(pages) - 1}.")
            self._page = pages[action.index]
            self._page.bring_to_front()
        else:
            execute(self._active_page(), action, self.config.action_timeout_ms)

    def _consult_oracle(self, question: str) -> tuple[str, str | None, bool]:
        if self.oracle is None:
            return "No oracle is configured for this episode; continue from the observation.", None, False
        if self.oracle_calls >= self.limits.oracle_budget:
            self.oracle_calls += 1
            return "", "The oracle budget for this episode is used up; continue without hints.", True
        try:
            snapshot_text = self._observe(error=None).to_text()
            answer = self.oracle(question, self.goal, snapshot_text, self.spec.hints)
        except OracleUnavailableError:
            return "The oracle is unavailable right now; this call was not charged.", None, False
        self.oracle_calls += 1
        return answer, None, True

    def _count(self, record: StepRecord, tool: str, arguments: dict[str, Any]) -> None:
        if not record.valid and not record.oracle_call:
            self.invalid_actions += 1
        signature = (tool, repr(sorted(arguments.items())))
        if signature == self._last_signature:
            self.repeated_actions += 1
        else:
            self.repeated_actions = 0
        self._last_signature = signature
        if record.progress is not None and (self._last_progress is None or record.progress > self._last_progress):
            self._steps_since_progress = 0
            self._last_progress = record.progress
        else:
            self._steps_since_progress += 1

    def _decide_termination(self, record: StepRecord, validation_error: str | None) -> None:
        """End the episode if this step finished it; the first matching rule names the reason."""
        limits = self.limits
        if validation_error is not None:
            self._end(record, FailureReason.TASK_VALIDATION_FAILED)
        elif record.task_done and record.task_reward > 0:
            self._end(record, FailureReason.SUCCESS)
        elif record.task_done:
            self._end(record, classify_task_failure([*self.records, record], self.goal))
        elif record.error_kind == "invalid" and limits.end_on_invalid_action:
            self._end(record, FailureReason.INVALID_ACTION)
        elif record.error_kind == "page" and limits.end_on_action_error:
            self._end(record, FailureReason.BROWSERGYM_ACTION_ERROR)
        elif self.invalid_actions >= limits.max_invalid_actions:
            self._end(record, FailureReason.TOO_MANY_INVALID_ACTIONS)
        elif self.repeated_actions + 1 >= limits.max_repeated_actions:
            self._end(record, FailureReason.REPEATED_ACTION_LOOP)
        elif limits.low_progress_window is not None and self._steps_since_progress >= limits.low_progress_window:
            self._end(record, FailureReason.LOW_PROGRESS_ABORT)
        elif self.step_index >= limits.max_steps:
            self._end(record, FailureReason.MAX_STEPS_EXCEEDED)

    def _end(self, record: StepRecord | None, reason: FailureReason) -> None:
        self.status = EpisodeStatus.ENDED
        self.failure_reason = reason
        self.success = reason is FailureReason.SUCCESS
        if record is not None:
            record.terminated = True
            record.failure_reason = reason

    def end(self, reason: FailureReason) -> None:
        """End the episode from outside (trainer cap, reaper); records stay."""
        if self.status is EpisodeStatus.RUNNING:
            self._end(self.records[-1] if self.records else None, reason)

    def _fault(self, error: BaseException) -> None:
        logger.warning("episode %s: browser fault: %s", self.id, error)
        if self.status is EpisodeStatus.RUNNING:
            self._end(self.records[-1] if self.records else None, FailureReason.BROWSER_ERROR)

    def _record_fault(self, tool: str, arguments: dict[str, Any], started_at: float, started: float) -> StepRecord:
        self.step_index += 1
        record = StepRecord(
            index=self.step_index, tool=tool, arguments=_jsonable(arguments), valid=False,
            error="browser error", error_kind="browser", url="", started_at=started_at,
            action_ms=(time.perf_counter() - started) * 1000, observation_ms=0.0, validate_ms=0.0,
            terminated=True, failure_reason=FailureReason.BROWSER_ERROR, blocked=self._take_blocked(),
        )
        self.records.append(record)
        return record

    def _targets_exist(self, action: Action) -> bool:
        """Whether the action names elements and all are on the page: then the page refused it
        (disabled, hidden, covered, not editable...), rather than the agent naming a wrong id."""
        ids = [getattr(action, name, None) for name in ("id", "from_id", "to_id")]
        ids = [element_id for element_id in ids if element_id is not None]
        if not ids:
            return False
        try:
            page = self._active_page()
            return all(page.locator(f'[{BID_ATTRIBUTE}="{element_id}"]').count() > 0 for element_id in ids)
        except pw.Error:
            return False

    def _browser_gone(self) -> bool:
        try:
            return self._context is None or not self._context.browser.is_connected() or self._active_page().is_closed()  # type: ignore[union-attr]
        except pw.Error:
            return True

    def _active_page(self) -> pw.Page:
        assert self._page is not None and self._context is not None
        if self._page.is_closed():
            pages = self._context.pages
            self._page = pages[-1] if pages else self._context.new_page()
        return self._page

    def _settle(self) -> None:
        """Wait for navigations the action started, then keep every tab on allowed origins."""
        assert self._context is not None and self._guard is not None
        try:
            # One round trip through the renderer: by the time it returns, a navigation
            # or popup the action started has reached the egress guard.
            self._active_page().evaluate("0")
        except pw.Error:
            pass  # the document was replaced mid-call: a navigation, waited for below
        # Then one through the browser process, where a popup the page opened becomes a
        # target: its "page" event is delivered before this returns.
        self._context.cookies()
        for page in list(self._new_pages):
            self._new_pages.remove(page)
            if page.is_closed():
                continue
            try:
                page.wait_for_load_state("domcontentloaded", timeout=self.config.action_timeout_ms)
                page.evaluate("0")  # lets the popup's first navigation reach the guard
            except pw.Error:
                pass
            if page in self._pages_sent_away and page.url == "about:blank" and len(self._context.pages) > 1:
                page.close()  # a popup whose only purpose was to leave
                continue
            self._page = page  # a new tab takes the focus, as in a browser
        self._pages_sent_away.clear()
        page = self._active_page()
        try:
            page.wait_for_load_state("domcontentloaded", timeout=self.config.action_timeout_ms)
        except pw.TimeoutError:
            pass
        for candidate in list(self._context.pages):
            if self._guard.allows_page(candidate.url):
                continue
            self._on_blocked(candidate.url, "page")
            if len(self._context.pages) > 1:
                candidate.close()
            else:
                candidate.go_back(wait_until="domcontentloaded")
                if not self._guard.allows_page(candidate.url):
                    candidate.goto("about:blank")
        self._active_page()

    def _observe(self, error: str | None) -> Observation:
        page = self._active_page()
        cdp = self._cdp.get(page)
        if cdp is None:
            cdp = self._cdp[page] = self._context.new_cdp_session(page)  # type: ignore[union-attr]
        snapshot: PageSnapshot | None = None
        for attempt in range(6):
            # A mouse click on a link returns before the navigation it starts: the
            # old document can vanish mid-read, or the new one still be parsing.
            try:
                snapshot = snapshot_page(
                    page, cdp, self.config.max_elements, self.spec.secret_selector, self._next_bid,
                    self._bid_indexes.get(page),
                )
            except pw.Error as read_error:
                if "context was destroyed" not in str(read_error):
                    raise
            if snapshot is not None:
                break
            page.wait_for_timeout(25 * (attempt + 1))
        if snapshot is None:
            snapshot = snapshot_page(
                page, cdp, self.config.max_elements, self.spec.secret_selector, self._next_bid,
                read_while_loading=True,
            )
        assert snapshot is not None
        self._next_bid = max(self._next_bid, snapshot.next_bid)
        if snapshot.bid_index is not None:
            self._bid_indexes[page] = snapshot.bid_index
        return self._wrap(snapshot, error)

    def _wrap(self, snapshot: PageSnapshot, error: str | None) -> Observation:
        pages = self._context.pages if self._context is not None else []
        tabs = [
            Tab(index=i, url=p.url, title=snapshot.title if p is self._page else _safe_title(p), active=p is self._page)
            for i, p in enumerate(pages)
        ]
        observation = Observation(
            goal=self.goal,
            url=snapshot.url,
            title=snapshot.title,
            tabs=tabs,
            focused_id=snapshot.focused_id,
            elements=snapshot.elements,
            axtree=snapshot.axtree,
            last_action_error=error,
            step_index=self.step_index,
            steps_left=max(0, self.limits.max_steps - self.step_index),
            episode_over=not self.running,
            truncated=snapshot.truncated,
        )
        return _fit(observation, self.config.max_observation_chars)

    def _closed_observation(self) -> Observation:
        return Observation(
            goal=self.goal, url="", step_index=self.step_index,
            steps_left=max(0, self.limits.max_steps - self.step_index), episode_over=True,
        )

    def _progress(self) -> float | None:
        progress = getattr(self._task, "progress", None)
        if progress is None or self._page is None:
            return None
        try:
            return float(progress(self._active_page()))
        except Exception:  # noqa: BLE001 - progress is advisory
            return None

    def _on_new_page(self, page: pw.Page) -> None:
        self._new_pages.append(page)

    def _on_blocked(self, url: str, kind: str, page: pw.Page | None = None) -> None:
        self._blocked.append(BlockedRequest(url=url[:500], kind=kind, step_index=self.step_index + 1))
        if page is not None and kind == "navigation":
            self._pages_sent_away.add(page)

    def _take_blocked(self) -> list[BlockedRequest]:
        taken, self._blocked = self._blocked, []
        return taken

    def _safe_url(self) -> str:
        try:
            return self._active_page().url
        except (pw.Error, AssertionError):
            return ""


def _goal_text(goal: object) -> str:
    if goal is None:
        return ""
    if isinstance(goal, str):
        return goal
    if isinstance(goal, list):
        return "\n".join(part.get("text", "") for part in goal if isinstance(part, dict) and part.get("type") == "text")
    return str(goal)


def _scalar_info(info: object) -> dict[str, str | int | float | bool | None]:
    """The task's info dict reduced to short scalars a trainer can read (and JSON can hold)."""
    if not isinstance(info, dict):
        return {}
    result: dict[str, str | int | float | bool | None] = {}
    for key, value in list(info.items())[:20]:
        if isinstance(value, bool) or value is None:
            result[str(key)[:100]] = value
        elif isinstance(value, (int, float)):
            result[str(key)[:100]] = value if value == value and abs(value) != float("inf") else str(value)
        elif isinstance(value, str):
            result[str(key)[:100]] = value[:500]
    return result


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... (+{len(text) - limit} chars)"


def _safe_title(page: pw.Page) -> str:
    try:
        return page.title()
    except pw.Error:
        return ""


def _jsonable(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as recorded: JSON-safe, with very long strings cut."""
    result: dict[str, Any] = {}
    for key, value in list(arguments.items())[:20]:
        key = str(key)[:100]
        if isinstance(value, str):
            result[key] = value if len(value) <= 2_000 else value[:2_000] + f"...(+{len(value) - 2_000} chars)"
        elif isinstance(value, (int, float, bool)) or value is None:
            result[key] = value
        elif isinstance(value, list):
            result[key] = [v if isinstance(v, (int, float, bool)) or v is None else str(v)[:500] for v in value[:50]]
        else:
            result[key] = str(value)[:500]
    return result


def _fit(observation: Observation, max_chars: int) -> Observation:
    """Shrink the observation to the size cap: the tree first, then the element list."""
    size = len(observation.model_dump_json())
    if size <= max_chars:
        return observation
    excess = size - max_chars
    axtree = observation.axtree
    if axtree:
        keep = max(0, len(axtree) - excess - 40)
        axtree = axtree[:keep] + ("\n... (truncated)" if keep < len(observation.axtree) else "")
    elements = list(observation.elements)
    fitted = observation.model_copy(update={"axtree": axtree, "truncated": True})
    while elements and len(fitted.model_dump_json()) > max_chars:
        elements = elements[: max(0, len(elements) * 3 // 4)]
        fitted = fitted.model_copy(update={"elements": elements})
    return fitted
