"""What the agent is shown after a step: a read of the page, the episode's counters, a size cap.

`engine.observation` reads the page; this module puts that read together with
the goal, the open tabs and the step budget, and cuts the result to the size the
operator allows, the accessibility tree first, then the element list.
"""

from __future__ import annotations

from engine.agent_view.observation import Observation, Tab
from engine.observation import PageSnapshot


def observation_of(
    page: PageSnapshot,
    tabs: list[Tab],
    *,
    goal: str,
    error: str | None,
    step_index: int,
    max_steps: int,
    over: bool,
    max_chars: int,
) -> Observation:
    """The observation of a page read, within `max_chars` of JSON."""
    observation = Observation(
        goal=goal,
        url=page.url,
        title=page.title,
        tabs=tabs,
        focused_id=page.focused_id,
        elements=page.elements,
        axtree=page.axtree,
        last_action_error=error,
        step_index=step_index,
        steps_left=max(0, max_steps - step_index),
        episode_over=over,
        truncated=page.truncated,
    )
    return fit(observation, max_chars)


def closed_observation(goal: str, step_index: int, max_steps: int) -> Observation:
    """What an agent is shown once the browser is gone: the goal, the counters, no page."""
    return Observation(
        goal=goal, url="", step_index=step_index, steps_left=max(0, max_steps - step_index), episode_over=True,
    )


def fit(observation: Observation, max_chars: int) -> Observation:
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


__all__ = ["closed_observation", "fit", "observation_of"]
