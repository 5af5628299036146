"""The ways out of `test_escape`, pressed in a task judged from a probe run with the page read.

MiniWoB's tasks offer the engine a validation probe, and their steps then read the page before
the barrier that lets the egress guard see what the action started (`BrowserSession.
settle_and_read`): the read stands only if the barrier showed nothing `settle` would act on.
The escape task with a probe takes that path for every click, so each way out (navigations,
new tabs, hops within the origin, subresources) must still be refused, recorded on the step
that caused it, and leave the agent on the task's origins.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tasks.registry import TaskContext

from security.harness import EscapeTask
from security.test_escape import ESCAPE_TASK, assert_family_blocked_on_its_steps

PROBED_ESCAPE_TASK = ESCAPE_TASK + "-probed"
# What the probe returned, each time a verdict was made from it (the server runs in this process).
PROBED: list[Any] = []


def _with_probe(task: EscapeTask) -> EscapeTask:
    """The escape task, judged from a probe's result (which it ignores: its verdict is the tabs)."""
    task.validation_probe = "() => document.readyState"  # type: ignore[attr-defined]

    def validate_probed(page: Any, chat_messages: list[Any], probed: Any) -> tuple[float, bool, str, dict[str, Any]]:
        PROBED.append(probed)
        return task.validate(page, chat_messages)  # type: ignore[no-any-return]

    task.validate_probed = validate_probed  # type: ignore[attr-defined]
    return task


@pytest.fixture(scope="module")
def probed_task(sec: Any) -> str:
    spec = sec.live.manager.registry.get(ESCAPE_TASK)
    build = spec.factory

    def factory(context: TaskContext) -> EscapeTask:
        return _with_probe(build(context))

    sec.live.add_task(dataclasses.replace(spec, id=PROBED_ESCAPE_TASK, factory=factory))
    return PROBED_ESCAPE_TASK


@pytest.mark.parametrize("family", ["navigations", "new-tabs", "same-origin-hops", "subresources", "downloads"])
def test_ways_out_are_blocked_and_recorded_on_their_step(sec: Any, episodes: Any, probed_task: str,
                                                          family: str) -> None:
    episode = episodes(probed_task)
    probed_before = len(PROBED)
    assert_family_blocked_on_its_steps(sec, episode, family)
    assert len(PROBED) > probed_before and set(PROBED) <= {"interactive", "complete"}, PROBED[probed_before:]
