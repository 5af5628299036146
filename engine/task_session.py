"""The BrowserGym task of one episode: made, set up on a page, judged, torn down.

As in BrowserGym, the task is kept apart from the environment around it: it sets
a page up, judges a page (`validate`) and may report progress, and nothing else.
The episode owns the browser and decides what a verdict means. The chat the task
judges against (the greeting, the goal, the agent's messages) is kept here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import playwright.sync_api as pw
from browsergym.core.task import AbstractBrowserTask

from engine.step_records import Verdict
from tasks.registry import TaskContext, TaskSpec

GREETING = "Hi! I am your UI assistant, I can perform web tasks for you. What can I help you with?"


class TaskSession:
    """One task object and its chat, on the episode's worker thread."""

    def __init__(self, spec: TaskSpec, context: TaskContext) -> None:
        self.task: AbstractBrowserTask = spec.factory(context)
        self.curriculum_variant_id: str | None = getattr(self.task, "curriculum_variant_id", None)
        # The task's default difficulty, if none was asked.
        self.difficulty: str | None = getattr(self.task, "difficulty", None) or context.difficulty
        self.goal = ""
        self.chat_messages: list[dict[str, Any]] = []

    def setup(self, page: pw.Page) -> str:
        """Set the task up on `page`; its goal, as text."""
        goal, _info = self.task.setup(page=page)
        self.goal = goal_text(goal)
        self.chat_messages = [
            {"role": "assistant", "timestamp": time.time(), "message": GREETING},
            {"role": "user", "timestamp": time.time(), "message": self.goal},
        ]
        return self.goal

    def say(self, text: str) -> None:
        """The agent's message to the user (`send_message`); tasks may judge it."""
        self.chat_messages.append({"role": "assistant", "timestamp": time.time(), "message": text})

    def validate(self, page: pw.Page) -> Verdict:
        """The task's verdict on `page`. A Playwright error is raised (the episode tells a dead
        browser from a page one); any other error of the task's code is the verdict's `error`."""
        try:
            reward, done, message, info = self.task.validate(page, self.chat_messages)
        except pw.Error:
            raise
        except Exception as task_error:  # noqa: BLE001 - a task bug ends the episode cleanly
            return Verdict(error=f"{type(task_error).__name__}: {task_error}")
        return Verdict(reward=reward, done=done, message=message, info=info)

    @property
    def validation_probe(self) -> str | None:
        """The page function the task offers to have run along with the page read, if it also
        judges from its result (`validate_probed`); MiniWoB's tasks do (`tasks.miniwob`), so
        their verdict costs no page call of its own."""
        probe = getattr(self.task, "validation_probe", None)
        if isinstance(probe, str) and callable(getattr(self.task, "validate_probed", None)):
            return probe
        return None

    def validate_probed(self, page: pw.Page, probed: Any) -> Verdict:
        """The task's verdict from what its `validation_probe` returned, with `validate`'s
        handling of errors."""
        try:
            reward, done, message, info = self.task.validate_probed(page, self.chat_messages, probed)
        except pw.Error:
            raise
        except Exception as task_error:  # noqa: BLE001 - a task bug ends the episode cleanly
            return Verdict(error=f"{type(task_error).__name__}: {task_error}")
        return Verdict(reward=reward, done=done, message=message, info=info)

    def progress(self, active_page: Callable[[], pw.Page]) -> float | None:
        """How far the task is (0..1), for tasks that say; the page is looked up only for
        them. Advisory, so never an error."""
        progress = getattr(self.task, "progress", None)
        if progress is None:
            return None
        try:
            return float(progress(active_page()))
        except Exception:  # noqa: BLE001 - progress is advisory
            return None

    def teardown(self) -> None:
        self.task.teardown()


def goal_text(goal: object) -> str:
    """A BrowserGym goal (text, or a list of chat-style parts) as plain text."""
    if goal is None:
        return ""
    if isinstance(goal, str):
        return goal
    if isinstance(goal, list):
        return "\n".join(part.get("text", "") for part in goal if isinstance(part, dict) and part.get("type") == "text")
    return str(goal)


__all__ = ["GREETING", "TaskSession", "goal_text"]
