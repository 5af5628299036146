"""A small typed way to write a browser task on BrowserGym's task interface.

A task is a subclass of `CustomTask` that declares what it is (`name`,
`description`, `difficulties`, `variants`, `hints`, `secret_selector`) and
implements four hooks:

- `build(rng)`: draw this episode's variant from a seeded `random.Random` and
  keep the truth (expected answer, credentials, ...) on `self`, in Python;
- `goal()`: the instruction the agent reads;
- `page_data()`: the JSON the page needs to render (as `window.TASK`);
- `judge(page, chat_messages)`: the verdict, from server-side state;
- optionally `partial_progress(page)`: how far along the agent is, 0..1.

Pages are static files served from the task's own `assets/` folder under
`/tasks/<name>/` on the engine's loopback asset server, so links between pages
are plain relative links over HTTP. There is no web back-end: a page asks the
task through one function, `await window.safebrowseCall(call, data)`, that
Playwright routes into `handle(call, data)` here, on the server. What the page
submits is therefore recorded by Python (`self.calls`), and `judge` compares it
with the truth drawn in `build`; the page's own opinion of success is never
trusted, and the truth need never be sent to the page.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask

from tasks.registry import TaskContext

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ID_PREFIX = "custom."
BINDING = "safebrowseCall"
MAX_CALL_NAME = 64
MAX_CALL_BYTES = 20_000
MAX_CALLS = 1_000


@dataclass(frozen=True)
class Verdict:
    """What `judge` returns: BrowserGym's (reward, done, message) without the info dict."""

    reward: float = 0.0
    done: bool = False
    message: str = ""

    @classmethod
    def pending(cls, message: str = "") -> Verdict:
        """Not finished yet; the episode goes on."""
        return cls(0.0, False, message)

    @classmethod
    def success(cls, message: str = "task completed") -> Verdict:
        return cls(1.0, True, message)

    @classmethod
    def failure(cls, message: str) -> Verdict:
        """Finished without success: the episode ends as `task_failed`."""
        return cls(0.0, True, message)


@dataclass(frozen=True)
class Call:
    """One call a task page made to its task through `window.safebrowseCall`."""

    name: str
    data: dict[str, Any]
    url: str
    at: float = field(default_factory=time.time)


class CustomTask(AbstractBrowserTask):  # type: ignore[misc]  # BrowserGym ships no types
    """Base class of every custom task. Subclasses declare the class attributes
    below and implement `build`, `goal`, `judge` (and usually `page_data`,
    `handle` and `progress`)."""

    # -- declarations -------------------------------------------------------------
    name: ClassVar[str]
    """Short name: the id is `custom.<name>` and pages are served under `/tasks/<name>/`."""
    description: ClassVar[str]
    """One line for task listings."""
    difficulties: ClassVar[tuple[str, ...]] = ("easy", "medium", "hard")
    default_difficulty: ClassVar[str] = "medium"
    variants: ClassVar[tuple[str, ...]] = ("default",)
    """Named structural variants; one is drawn per seed and becomes part of `curriculum_variant_id`."""
    hints: ClassVar[tuple[str, ...]] = ()
    """Advice the hints oracle may give; never the answer itself."""
    secret_selector: ClassVar[str | None] = None
    """CSS selector of fields whose values observations mask (password inputs always are)."""
    extra_origins: ClassVar[tuple[str, ...]] = ()
    """Origins besides the asset server the pages may load from; usually none."""
    start_page: ClassVar[str] = "index.html"
    assets_dir: ClassVar[str] = "assets"
    """Folder next to task.py that is served under `/tasks/<name>/`."""

    def __init__(self, context: TaskContext) -> None:
        super().__init__(seed=context.seed)
        difficulty = context.difficulty or self.default_difficulty
        if difficulty not in self.difficulties:
            raise ValueError(f"{self.get_task_id()} has difficulties {list(self.difficulties)}, not {difficulty!r}")
        self.seed = context.seed
        self.difficulty = difficulty
        self.asset_origin = context.asset_origin.rstrip("/")
        self.base_url = f"{self.asset_origin}/tasks/{self.name}/"
        self.calls: list[Call] = []
        self.foreign_requests: list[str] = []
        self.rng = random.Random(f"{self.get_task_id()}|{self.difficulty}|{self.seed}")
        self.variant = self.rng.choice(self.variants)
        self.build(self.rng)
        self.curriculum_variant_id = f"{self.get_task_id()}/{self.difficulty}/{self.variant}"
        self._verdict: Verdict | None = None
        self._page: pw.Page | None = None

    @classmethod
    def get_task_id(cls) -> str:
        return ID_PREFIX + cls.name

    # -- hooks for subclasses ---------------------------------------------------------

    def build(self, rng: random.Random) -> None:
        """Draw this episode's variant. `self.difficulty` and `self.variant` are set."""

    def goal(self) -> str:
        raise NotImplementedError

    def page_data(self) -> dict[str, Any]:
        """JSON-safe data the pages render from, set as `window.TASK` before any page script runs.

        Put here only what the page shows; keep the expected answer in Python.
        """
        return {}

    def handle(self, call: str, data: dict[str, Any]) -> Any:
        """Answer a page's `safebrowseCall(call, data)`; the call is already in `self.calls`."""
        return None

    def judge(self, page: pw.Page, chat_messages: list[dict[str, Any]]) -> Verdict:
        raise NotImplementedError

    def partial_progress(self, page: pw.Page) -> float:
        """How far along the agent is before the verdict, 0..1 (advisory, for progress rewards)."""
        return 0.0

    # -- helpers for subclasses -------------------------------------------------------

    def url(self, path: str = "") -> str:
        return self.base_url + path.lstrip("/")

    def calls_named(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    @staticmethod
    def agent_messages(chat_messages: list[dict[str, Any]]) -> list[str]:
        """What the agent sent with send_message after the user's last message (the goal)."""
        last_user = max((i for i, m in enumerate(chat_messages) if m.get("role") == "user"), default=-1)
        return [str(m.get("message", "")) for m in chat_messages[last_user + 1:] if m.get("role") == "assistant"]

    def left_origin(self) -> bool:
        """True if any page of the episode tried to load something off the allowed origins."""
        return bool(self.foreign_requests)

    # -- BrowserGym interface -----------------------------------------------------------

    def setup(self, page: pw.Page) -> tuple[str, dict[str, Any]]:
        self._page = page
        context = page.context
        context.on("request", self._watch_request)
        context.expose_binding(BINDING, self._on_call)
        data = json.dumps(self.page_data(), ensure_ascii=False).replace("</", "<\\/")
        context.add_init_script(script=f"window.TASK = Object.freeze({data});")
        page.goto(self.url(self.start_page), wait_until="load")
        return self.goal(), {}

    def validate(self, page: pw.Page, chat_messages: list[Any]) -> tuple[float, bool, str, dict[str, Any]]:
        if self._verdict is None or not self._verdict.done:
            verdict = self.judge(page, chat_messages)
            self._verdict = verdict
        verdict = self._verdict
        return verdict.reward, verdict.done, verdict.message, {}

    def progress(self, page: pw.Page) -> float:
        """What the engine reads after each step: 1 on success, 0 on failure, else `partial_progress`."""
        if self._verdict is not None and self._verdict.done:
            return 1.0 if self._verdict.reward > 0 else 0.0
        return min(1.0, max(0.0, float(self.partial_progress(page))))

    def teardown(self) -> None:
        self._page = None

    # -- internals ------------------------------------------------------------------------

    def _watch_request(self, request: pw.Request) -> None:
        """Seen before the egress guard aborts it: the attempt counts even though nothing leaves."""
        url = request.url
        if not url.startswith(("http://", "https://", "ws://", "wss://")):
            return
        allowed = {_origin(self.asset_origin), *(_origin(o) for o in self.extra_origins)}
        if _origin(url) not in allowed and len(self.foreign_requests) < MAX_CALLS:
            self.foreign_requests.append(url[:500])

    def _on_call(self, source: dict[str, Any], call: object, data: object = None) -> Any:
        """The binding behind `window.safebrowseCall`: only this task's pages may call it."""
        frame = source.get("frame")
        url = frame.url if frame is not None else ""
        if not url.startswith(self.base_url):
            return {"error": "not allowed from this page"}
        if not isinstance(call, str) or not call or len(call) > MAX_CALL_NAME:
            return {"error": "call must be a short string"}
        if data is None:
            data = {}
        if not isinstance(data, dict) or len(json.dumps(data, default=str)) > MAX_CALL_BYTES:
            return {"error": "data must be a small object"}
        if len(self.calls) >= MAX_CALLS:
            return {"error": "too many calls"}
        self.calls.append(Call(call, data, url))
        try:
            return self.handle(call, data)
        except Exception:  # noqa: BLE001 - a task bug must not break the browser dispatcher
            logger.exception("%s: handling call %r failed", self.get_task_id(), call)
            return {"error": "the task could not handle this call"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or default}"


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace and drop surrounding punctuation: for comparing answers."""
    return re.sub(r"\s+", " ", str(text)).strip().strip(".,;:!?\"'`").strip().lower()
