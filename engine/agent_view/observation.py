"""The page as an agent sees it. Nothing here can hold a reward, a verdict or trainer data.

These types are the only ones the agent door returns. They are deliberately a
separate family from `engine.records` (the trainer's view), so a reward field
cannot ride along by accident: there is no field to put it in.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Element(BaseModel):
    """One rendered element the agent can act on or read."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Element id to pass to actions (BrowserGym bid).")
    role: str
    tag: str
    type: str | None = None
    text: str = ""
    bbox: tuple[int, int, int, int] = Field(description="x, y, width, height in CSS pixels of the viewport.")
    visible: bool = Field(description="Inside the viewport now; scroll to reach elements that are not.")
    enabled: bool
    attributes: dict[str, str] = Field(default_factory=dict)


class Tab(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    url: str
    title: str
    active: bool


class Observation(BaseModel):
    """The page as the agent sees it after an action."""

    model_config = ConfigDict(extra="forbid")

    goal: str
    url: str
    title: str = ""
    tabs: list[Tab] = Field(default_factory=list)
    focused_id: str | None = None
    elements: list[Element] = Field(default_factory=list)
    axtree: str = Field(default="", description="Accessibility tree with [id] markers.")
    last_action_error: str | None = None
    step_index: int = Field(description="Actions taken so far in this episode.")
    steps_left: int
    episode_over: bool = Field(default=False, description="True once no further actions are accepted.")
    truncated: bool = Field(default=False, description="True when the page was larger than the size cap.")

    def to_text(self) -> str:
        """A compact rendering for the model's context window."""
        lines = [f"Goal: {self.goal}", f"URL: {self.url}"]
        if self.title:
            lines.append(f"Title: {self.title}")
        if len(self.tabs) > 1:
            lines.append("Tabs: " + "; ".join(
                f"{t.index}{'*' if t.active else ''} {t.title or t.url}" for t in self.tabs
            ))
        lines.append(f"Step: {self.step_index} (steps left: {self.steps_left})")
        if self.focused_id:
            lines.append(f"Focused: [{self.focused_id}]")
        if self.last_action_error:
            lines.append(f"Last action error: {self.last_action_error}")
        if self.episode_over:
            lines.append("Episode over: no further actions are accepted.")
        lines.append("")
        lines.append("Elements:")
        for element in self.elements:
            parts = [f"[{element.id}]", element.role]
            if element.type and element.type != element.role:
                parts.append(f"type={element.type}")
            if element.text:
                parts.append(repr(element.text))
            for key, value in element.attributes.items():
                parts.append(f"{key}={value!r}")
            if not element.visible:
                parts.append("(offscreen)")
            if not element.enabled:
                parts.append("(disabled)")
            lines.append("  " + " ".join(parts))
        if self.truncated:
            lines.append("  ... (page truncated to the size cap)")
        return "\n".join(lines)


def page_text(observation: Observation, error: str | None = None) -> str:
    """A page-returning tool's text result, exactly as the agent reads it.

    The door puts this in the tool result and the engine keeps the same text in the
    episode's transcript (the agent's side of the episode, for training data), so the
    two can never disagree.
    """
    text = observation.to_text()
    return text if error is None else f"Error: {error}\n\n{text}"
