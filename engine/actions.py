"""The agent-safe action set.

Every action names its target by element id (the `bid` attribute the
observation pass writes), never by selector, script, URL or path. Arguments
are validated here, before anything touches the browser; `execute` then maps
each action onto a fixed Playwright call.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

import playwright.sync_api as pw
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

BID_ATTRIBUTE = "bid"
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

    @property
    def uses_browser(self) -> bool:
        return True


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

    @property
    def uses_browser(self) -> bool:
        return False


class TabFocus(_Action):
    name: Literal["tab_focus"] = "tab_focus"
    index: int = Field(ge=0, le=63)


class GoBack(_Action):
    name: Literal["go_back"] = "go_back"


class AskOracle(_Action):
    name: Literal["ask_oracle"] = "ask_oracle"
    question: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @property
    def uses_browser(self) -> bool:
        return False


Action = Annotated[
    Union[Click, Fill, Clear, Press, SelectOption, Hover, Scroll, DragAndDrop, Focus, Noop,
          SendMessage, TabFocus, GoBack, AskOracle],
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


class ActionError(Exception):
    """The action was well-formed but cannot be carried out on this page.

    The message is written for the agent: it says what went wrong and what to do.
    """


def locate(page: pw.Page, element_id: str) -> pw.Locator:
    """The element with this id on the active page, or an ActionError."""
    if not re.match(ELEMENT_ID_PATTERN, element_id):
        raise ActionError(f"'{element_id}' is not an element id")
    locator = page.locator(f'[{BID_ATTRIBUTE}="{element_id}"]')
    if locator.count() == 0:
        raise ActionError(
            f"Element [{element_id}] is not on the current page (it may have changed). "
            "Call observe for fresh element ids."
        )
    return locator.first


def execute(page: pw.Page, action: Action, timeout_ms: int) -> None:
    """Carry out a browser action on `page`. Tab and chat actions are handled by the episode."""
    match action:
        case Click(id=element_id, button=button, double=double):
            x, y = point_of(page, element_id)
            if double:
                page.mouse.dblclick(x, y, button=button)
            else:
                page.mouse.click(x, y, button=button)
        case Fill(id=element_id, text=text):
            target = locate(page, element_id)
            _require_editable(target, element_id)
            target.fill(text, timeout=timeout_ms)
        case Clear(id=element_id):
            target = locate(page, element_id)
            _require_editable(target, element_id)
            target.clear(timeout=timeout_ms)
        case Press(key=key, id=None):
            page.keyboard.press(key)
        case Press(key=key, id=element_id):
            locate(page, element_id).press(key, timeout=timeout_ms)
        case SelectOption(id=element_id, options=options):
            target = locate(page, element_id)
            if target.evaluate("e => e.tagName") != "SELECT":
                raise ActionError(f"Element [{element_id}] is not a <select>; click its options instead.")
            try:
                target.select_option(options if len(options) > 1 else options[0], timeout=timeout_ms)
            except pw.TimeoutError:
                raise ActionError(
                    f"Element [{element_id}] has no option matching {options!r}; "
                    "use an option's label or value from the observation."
                ) from None
        case Hover(id=element_id):
            page.mouse.move(*point_of(page, element_id))
        case Scroll(id=None, delta_x=dx, delta_y=dy):
            viewport = page.viewport_size or {"width": 800, "height": 600}
            page.mouse.move(viewport["width"] / 2, viewport["height"] / 2)
            page.mouse.wheel(dx, dy)
        case Scroll(id=element_id, delta_x=dx, delta_y=dy):
            page.mouse.move(*point_of(page, element_id))
            page.mouse.wheel(dx, dy)
        case DragAndDrop(from_id=from_id, to_id=to_id):
            start_x, start_y = point_of(page, from_id)
            page.mouse.move(start_x, start_y)
            page.mouse.down()
            try:
                target = _find_point(page, to_id)
                # Like a hand, carry the item a little past the target's centre in the
                # direction of travel: sortable lists swap only past the midpoint.
                x = target["x"] + _overshoot(target["x"] - start_x, target["width"])
                y = target["y"] + _overshoot(target["y"] - start_y, target["height"])
                page.mouse.move(x, y, steps=8)
            finally:
                page.mouse.up()
        case Focus(id=element_id):
            locate(page, element_id).focus(timeout=timeout_ms)
        case Noop(wait_ms=wait_ms):
            page.wait_for_timeout(wait_ms)
        case GoBack():
            page.go_back(timeout=timeout_ms, wait_until="domcontentloaded")
        case _:
            raise ActionError(f"{action.name} is not a page action")


# Playwright's own actionability wait polls for two animation frames of a stable
# box before every click (~50 ms). One script pass instead finds the element,
# makes the checks that matter to an agent (rendered, enabled, not covered),
# scrolls it into view and returns its centre; real mouse events follow.
_POINT_SCRIPT = """
([attr, id]) => {
    const find = (root) => {
        const hit = root.querySelector(`[${attr}="${id}"]`);
        if (hit) return hit;
        for (const host of root.querySelectorAll("*")) {
            if (host.shadowRoot) {
                const inner = find(host.shadowRoot);
                if (inner) return inner;
            }
        }
        return null;
    };
    const el = find(document);
    if (el === null) return {missing: true};
    const style = window.getComputedStyle(el);
    if (style.display === "none" || style.visibility !== "visible") return {problem: "is not visible"};
    if (el.disabled === true || el.getAttribute("aria-disabled") === "true") return {problem: "is disabled"};
    let rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return {problem: "is not visible"};
    if (rect.top < 0 || rect.left < 0 || rect.bottom > window.innerHeight || rect.right > window.innerWidth) {
        el.scrollIntoView({block: "center", inline: "center", behavior: "instant"});
        rect = el.getBoundingClientRect();
    }
    const x = Math.min(Math.max(rect.left + rect.width / 2, 0), window.innerWidth - 1);
    const y = Math.min(Math.max(rect.top + rect.height / 2, 0), window.innerHeight - 1);
    let hit = document.elementFromPoint(x, y);
    while (hit && hit.shadowRoot) {
        const inner = hit.shadowRoot.elementFromPoint(x, y);
        if (!inner || inner === hit) break;
        hit = inner;
    }
    if (hit === null) return {problem: "is outside the page"};
    const labelled = hit.tagName === "LABEL" && hit.control === el;
    if (hit !== el && !el.contains(hit) && !labelled && !(el.getRootNode().host && el.getRootNode().host.contains(hit))) {
        const by = hit.getAttribute(attr);
        return {problem: "is covered by another element" + (by ? ` ([${by}])` : "")};
    }
    return {x: x, y: y, width: rect.width, height: rect.height};
}
"""


def point_of(page: pw.Page, element_id: str) -> tuple[float, float]:
    """The viewport point to press for this element, after checking it can take a click."""
    found = _find_point(page, element_id)
    return float(found["x"]), float(found["y"])


def _find_point(page: pw.Page, element_id: str) -> dict[str, float]:
    if not re.match(ELEMENT_ID_PATTERN, element_id):
        raise ActionError(f"'{element_id}' is not an element id")
    found = page.evaluate(_POINT_SCRIPT, [BID_ATTRIBUTE, element_id])
    if found.get("missing"):
        raise ActionError(
            f"Element [{element_id}] is not on the current page (it may have changed). "
            "Call observe for fresh element ids."
        )
    if found.get("problem"):
        raise ActionError(f"Element [{element_id}] {found['problem']}; pick another element or scroll first.")
    return found


def _overshoot(distance: float, size: float) -> float:
    if abs(distance) < 1:
        return 0.0
    return (size / 4) * (1 if distance > 0 else -1)


def _require_editable(target: pw.Locator, element_id: str) -> None:
    if not target.is_editable():
        raise ActionError(
            f"Element [{element_id}] is not an editable text field; pick an input, textarea "
            "or contenteditable element from the observation."
        )
