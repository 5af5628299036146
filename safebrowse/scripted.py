"""Scripted MiniWoB++ policies that read only what an agent sees.

Each policy maps the agent-visible observation (the structured content of an
MCP tool result, i.e. `Observation.model_dump()`) to the next `(tool, arguments)`,
or None when it has nothing left to do. They stand in for a model in tests,
benchmarks and the trainer examples, so rewards and speed can be checked end to
end without an LLM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

Observation = dict[str, Any]
Action = tuple[str, dict[str, Any]]
Policy = Callable[[Observation], Action | None]


def _quoted(goal: str) -> list[str]:
    return re.findall(r'"([^"]*)"', goal)


def _elements(observation: Observation) -> list[dict[str, Any]]:
    return list(observation.get("elements", []))


def _first(observation: Observation, **match: Any) -> dict[str, Any] | None:
    for element in _elements(observation):
        if all(_matches(element, key, value) for key, value in match.items()):
            return element
    return None


def _matches(element: dict[str, Any], key: str, value: Any) -> bool:
    if key.startswith("attr_"):
        return bool(element.get("attributes", {}).get(key[5:]) == value)
    if key == "text_ci":
        return bool(element.get("text", "").strip().lower() == str(value).lower())
    return bool(element.get(key) == value)


def _click(element: dict[str, Any] | None) -> Action | None:
    return ("click", {"id": element["id"]}) if element else None


def _submit(observation: Observation, label: str = "submit") -> Action | None:
    return _click(_first(observation, role="button", text_ci=label))


def click_test(observation: Observation) -> Action | None:
    return _click(_first(observation, role="button"))


def click_test_2(observation: Observation) -> Action | None:
    match = re.search(r"Click button (\w+)", observation["goal"])
    return _click(_first(observation, role="button", text=match.group(1))) if match else None


def click_button(observation: Observation) -> Action | None:
    (label,) = _quoted(observation["goal"])[:1] or [""]
    return _click(_first(observation, role="button", text=label))


def click_link(observation: Observation) -> Action | None:
    (label,) = _quoted(observation["goal"])[:1] or [""]
    return _click(_first(observation, text=label))


def click_dialog(observation: Observation) -> Action | None:
    return _click(_first(observation, role="button", attr_title="Close"))


def click_tab(observation: Observation) -> Action | None:
    match = re.search(r"Tab #(\d+)", observation["goal"])
    return _click(_first(observation, text=f"Tab #{match.group(1)}")) if match else None


def focus_text(observation: Observation) -> Action | None:
    box = _first(observation, role="textbox")
    if box is None or observation.get("focused_id") == box["id"]:
        return None
    return ("focus", {"id": box["id"]})


def _fill_then(observation: Observation, wanted: list[tuple[dict[str, Any] | None, str]], submit: str) -> Action | None:
    for field, text in wanted:
        if field is not None and field.get("attributes", {}).get("value") not in (text, "********"):
            return ("fill", {"id": field["id"], "text": text})
    return _submit(observation, submit)


def enter_text(observation: Observation) -> Action | None:
    (text,) = _quoted(observation["goal"])[:1] or [""]
    return _fill_then(observation, [(_first(observation, role="textbox"), text)], "submit")


def enter_password(observation: Observation) -> Action | None:
    (text,) = _quoted(observation["goal"])[:1] or [""]
    return _fill_then(
        observation,
        [(_first(observation, attr_id="password"), text), (_first(observation, attr_id="verify"), text)],
        "submit",
    )


def login_user(observation: Observation) -> Action | None:
    username, password = (_quoted(observation["goal"]) + ["", ""])[:2]
    return _fill_then(
        observation,
        [(_first(observation, attr_id="username"), username), (_first(observation, attr_id="password"), password)],
        "login",
    )


def choose_list(observation: Observation) -> Action | None:
    match = re.search(r"Select (.+) from the list", observation["goal"])
    combo = _first(observation, role="combobox")
    if not match or combo is None:
        return None
    if combo.get("attributes", {}).get("value") != match.group(1):
        return ("select_option", {"id": combo["id"], "options": [match.group(1)]})
    return _submit(observation)


def click_checkboxes(observation: Observation) -> Action | None:
    match = re.search(r"Select (.*) and click Submit", observation["goal"])
    if not match:
        return None
    wanted = set() if match.group(1) == "nothing" else {w.strip() for w in match.group(1).split(",")}
    label = None
    for element in _elements(observation):
        if element["role"] == "label":
            label = element["text"]
        elif element["role"] == "checkbox":
            checked = element.get("attributes", {}).get("checked") == "true"
            if (label in wanted) != checked:
                return ("click", {"id": element["id"]})
            label = None
    return _submit(observation)


_POSITIONS = {"top": 1, "bottom": 5}


def drag_items(observation: Observation) -> Action | None:
    goal = observation["goal"]
    match = re.match(r"Drag (.+?) (to the|up by|down by) (.+)\.", goal)
    items = [e for e in _elements(observation) if e["role"] == "generic" and e["text"]]
    if not match or len(items) < 2:
        return None
    name, how, where = match.groups()
    index = next((i for i, e in enumerate(items) if e["text"] == name), None)
    if index is None:
        return None
    if how == "up by":
        target = index - 1
    elif how == "down by":
        target = index + 1
    elif where in _POSITIONS:
        target = _POSITIONS[where] - 1 if where == "top" else len(items) - 1
    else:
        target = int(re.match(r"(\d+)", where).group(1)) - 1  # type: ignore[union-attr]
    return ("drag_and_drop", {"from_id": items[index]["id"], "to_id": items[target]["id"]})


POLICIES: dict[str, Policy] = {
    "miniwob.click-test": click_test,
    "miniwob.click-test-2": click_test_2,
    "miniwob.click-button": click_button,
    "miniwob.click-link": click_link,
    "miniwob.click-dialog": click_dialog,
    "miniwob.click-tab": click_tab,
    "miniwob.focus-text": focus_text,
    "miniwob.enter-text": enter_text,
    "miniwob.enter-password": enter_password,
    "miniwob.login-user": login_user,
    "miniwob.choose-list": choose_list,
    "miniwob.click-checkboxes": click_checkboxes,
    "miniwob.drag-items": drag_items,
}


def by_page(observation: Observation) -> Action | None:
    """One policy for every task above: picks the task's policy from the page's URL.

    Handy where one policy callable serves a batch of different tasks (a rollout).
    """
    match = re.search(r"/miniwob/([a-z0-9-]+)\.html", observation.get("url", ""))
    policy = POLICIES.get(f"miniwob.{match.group(1)}") if match else None
    return policy(observation) if policy else None


def wrong_click(observation: Observation) -> Action | None:
    """A policy that clicks a button the goal did not ask for (for failure tests)."""
    goal = observation["goal"]
    for element in _elements(observation):
        if element["role"] == "button" and element["text"] and element["text"] not in goal:
            return ("click", {"id": element["id"]})
    return None


def actions(policy: Policy, observations: Iterator[Observation]) -> Iterator[Action]:
    """Drive a policy over a stream of observations until it has nothing to do."""
    for observation in observations:
        action = policy(observation)
        if action is None or observation.get("episode_over"):
            return
        yield action
