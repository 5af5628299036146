"""Named suites: the task lists an operator can evaluate an agent on by name.

A suite is only a list of task ids; how many episodes of each, and their seeds, are
chosen when the suite is run (`safebrowse stdio --suite NAME --episodes N`, or
`POST /v1/suites`). They live with the tasks because they say what an agent is
measured on, never how: the judging stays in each task.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedSuite:
    name: str
    description: str
    task_ids: tuple[str, ...]


SMOKE = NamedSuite(
    "smoke", "Three quick tasks to check an agent and a setup end to end (about a minute).",
    ("miniwob.click-test", "miniwob.click-button", "miniwob.enter-text"),
)

MINIWOB_SCRIPTED = NamedSuite(
    "miniwob-scripted", "The MiniWoB++ tasks that safebrowse.scripted solves, so a baseline is known.",
    (
        "miniwob.click-test", "miniwob.click-test-2", "miniwob.click-button", "miniwob.click-link",
        "miniwob.click-dialog", "miniwob.click-tab", "miniwob.focus-text", "miniwob.enter-text",
        "miniwob.enter-password", "miniwob.login-user", "miniwob.choose-list", "miniwob.click-checkboxes",
        "miniwob.drag-items",
    ),
)

CUSTOM = NamedSuite(
    "custom", "The built-in custom tasks: multi-page sites, tabs, tables and a prompt-injection trap.",
    ("custom.checkout", "custom.copy-between-tabs", "custom.injection-trap", "custom.login-form",
     "custom.settings-toggles", "custom.table-search"),
)

NAMED_SUITES: dict[str, NamedSuite] = {suite.name: suite for suite in (SMOKE, MINIWOB_SCRIPTED, CUSTOM)}

__all__ = ["CUSTOM", "MINIWOB_SCRIPTED", "NAMED_SUITES", "SMOKE", "NamedSuite"]
