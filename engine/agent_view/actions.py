"""The agent-safe action set: each tool's arguments, validated before anything runs.

Every action names its target by element id (the `bid` attribute the observation
pass writes), never by selector, script, URL or path. These models are the single
source of truth for the tools' names, types and bounds: the MCP door advertises
their JSON schemas, and the engine parses every call with them before touching the
browser (`engine.actions` carries them out).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

ELEMENT_ID_PATTERN = r"^[0-9]{1,7}$"
MAX_TEXT_CHARS = 10_000
MAX_MESSAGE_CHARS = 4_000
MAX_SCROLL_DELTA = 5_000
MAX_WAIT_MS = 3_000

def _id_as_text(value: object) -> object:
    """Ids are strings, but many clients send 12 for '12'; accept that, nothing looser."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The validator comes last: placed before the Field, it would hide the pattern from the JSON schema.
ElementId = Annotated[
    str,
    Field(pattern=ELEMENT_ID_PATTERN, description="Element id from the latest observation, e.g. '12'."),
    BeforeValidator(_id_as_text),
]

NAMED_KEYS = frozenset({
    "Enter", "Tab", "Escape", "Backspace", "Delete", "Space", "Insert",
    "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight",
    "Home", "End", "PageUp", "PageDown",
    *(f"F{n}" for n in range(1, 13)),
})
MODIFIERS = frozenset({"Shift", "Control", "Alt", "Meta", "ControlOrMeta"})
KEY_PATTERN = re.compile(r"^[\x21-\x7e]$")  # one printable ASCII character


def check_key_combo(value: str) -> str:
    """Accept 'Enter', 'a', 'Shift+Tab', 'Control+a'; refuse anything else."""
    parts = value.split("+") if value != "+" else ["+"]
    if value.endswith("++"):
        parts = value[:-2].split("+") + ["+"] if value[:-2] else ["+"]
    *modifiers, key = parts
    if len(modifiers) > 3 or len(set(modifiers)) != len(modifiers):
        raise ValueError("at most three distinct modifiers")
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise ValueError(f"modifier {modifier!r} is not allowed; use one of {sorted(MODIFIERS)}")
    if key not in NAMED_KEYS and not KEY_PATTERN.match(key):
        raise ValueError(
            f"key {key!r} is not allowed; use one printable character or one of {sorted(NAMED_KEYS)}"
        )
    return value


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Click(_Action):
    name: Literal["click"] = "click"
    id: ElementId
    button: Literal["left", "right", "middle"] = "left"
    double: bool = Field(default=False, description="Double-click instead of a single click.")


class Fill(_Action):
    name: Literal["fill"] = "fill"
    id: ElementId
    text: str = Field(max_length=MAX_TEXT_CHARS, description="Text that replaces the field's content.")


class Clear(_Action):
    name: Literal["clear"] = "clear"
    id: ElementId


class Press(_Action):
    name: Literal["press"] = "press"
    key: str = Field(max_length=40, description="A key or combo: 'Enter', 'a', 'Shift+Tab', 'Control+a'.")
    id: ElementId | None = Field(default=None, description="Element to press on; the focused element when omitted.")

    _check_key = field_validator("key")(lambda cls, v: check_key_combo(v))


class SelectOption(_Action):
    name: Literal["select_option"] = "select_option"
    id: ElementId
    options: list[Annotated[str, Field(max_length=500)]] = Field(
        min_length=1, max_length=50, description="Option labels or values to select."
    )


class Hover(_Action):
    name: Literal["hover"] = "hover"
    id: ElementId


class Scroll(_Action):
    name: Literal["scroll"] = "scroll"
    delta_x: int = Field(default=0, ge=-MAX_SCROLL_DELTA, le=MAX_SCROLL_DELTA)
    delta_y: int = Field(default=0, ge=-MAX_SCROLL_DELTA, le=MAX_SCROLL_DELTA)
    id: ElementId | None = Field(default=None, description="Element to scroll inside; the page when omitted.")


class DragAndDrop(_Action):
    name: Literal["drag_and_drop"] = "drag_and_drop"
    from_id: ElementId
    to_id: ElementId


class Focus(_Action):
    name: Literal["focus"] = "focus"
    id: ElementId


class Noop(_Action):
    name: Literal["noop"] = "noop"
    wait_ms: int = Field(default=200, ge=0, le=MAX_WAIT_MS)


class SendMessage(_Action):
    name: Literal["send_message"] = "send_message"
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class TabFocus(_Action):
    name: Literal["tab_focus"] = "tab_focus"
    index: int = Field(ge=0, le=63)


class GoBack(_Action):
    name: Literal["go_back"] = "go_back"


class AskOracle(_Action):
    name: Literal["ask_oracle"] = "ask_oracle"
    question: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


Action = Annotated[
    Click | Fill | Clear | Press | SelectOption | Hover | Scroll | DragAndDrop | Focus | Noop
    | SendMessage | TabFocus | GoBack | AskOracle,
    Field(discriminator="name"),
]
ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)
ACTION_NAMES: tuple[str, ...] = (
    "click", "fill", "clear", "press", "select_option", "hover", "scroll", "drag_and_drop",
    "focus", "noop", "send_message", "tab_focus", "go_back", "ask_oracle",
)


def parse_action(name: str, arguments: dict[str, object]) -> Action:
    """Validate raw arguments into an action; raises pydantic.ValidationError.

    A `name` among the arguments is refused like any other unknown argument: the
    tool's name alone says which action this is.
    """
    if "name" in arguments:
        raise ValidationError.from_exception_data(
            name, [{"type": "extra_forbidden", "loc": (name, "name"), "input": arguments["name"]}]
        )
    return ACTION_ADAPTER.validate_python({**arguments, "name": name})


MAX_PROBLEMS_SHOWN = 10
MAX_LOCATION_CHARS = 80


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the argument and what is allowed.

    Argument names come from the caller, so they are cut short and only the first few
    problems are listed: an agent cannot make the answer (or the recorded step) huge.
    """
    problems = []
    items = error.errors(include_url=False, include_input=False)
    for item in items[:MAX_PROBLEMS_SHOWN]:
        location = ".".join(str(part) for part in item["loc"]) or "arguments"
        if len(location) > MAX_LOCATION_CHARS:
            location = location[:MAX_LOCATION_CHARS] + "..."
        problems.append(f"{location}: {item['msg']}")
    if len(items) > MAX_PROBLEMS_SHOWN:
        problems.append(f"and {len(items) - MAX_PROBLEMS_SHOWN} more")
    return "Invalid arguments: " + "; ".join(problems)
