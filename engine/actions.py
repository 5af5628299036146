"""Carrying out agent actions on a page.

The actions themselves, and their validation, are agent-visible and live in
`engine.agent_view.actions`; this module maps each parsed action onto a fixed
Playwright call, on the browser worker's thread.
"""

from __future__ import annotations

import re
from typing import Any

import playwright.sync_api as pw

from engine.agent_view.actions import (
    ELEMENT_ID_PATTERN,
    Action,
    Clear,
    Click,
    DragAndDrop,
    Fill,
    Focus,
    GoBack,
    Hover,
    Noop,
    Press,
    Scroll,
    SelectOption,
)

BID_ATTRIBUTE = "bid"

__all__ = ["BID_ATTRIBUTE", "ActionError", "execute", "fill_field", "locate", "point_of"]


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
            fill_field(page, element_id, text, timeout_ms)
        case Clear(id=element_id):
            fill_field(page, element_id, "", timeout_ms)
        case Press(key=key, id=None):
            page.keyboard.press(key)
        case Press(key=key, id=str() as element_id):
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
        case Scroll(id=str() as element_id, delta_x=dx, delta_y=dy):
            page.mouse.move(*point_of(page, element_id))
            page.mouse.wheel(dx, dy)
        case DragAndDrop(from_id=from_id, to_id=to_id):
            start_x, start_y = point_of(page, from_id)
            page.mouse.move(start_x, start_y)
            page.mouse.down()
            try:
                drop = _find_point(page, to_id)
                # Like a hand, carry the item a little past the target's centre in the
                # direction of travel: sortable lists swap only past the midpoint.
                x = drop["x"] + _overshoot(drop["x"] - start_x, drop["width"])
                y = drop["y"] + _overshoot(drop["y"] - start_y, drop["height"])
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
    const inHost = el.getRootNode().host && el.getRootNode().host.contains(hit);
    if (hit !== el && !el.contains(hit) && !labelled && !inHost) {
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
    found: dict[str, Any] = page.evaluate(_POINT_SCRIPT, [BID_ATTRIBUTE, element_id])
    if found.get("missing"):
        raise ActionError(
            f"Element [{element_id}] is not on the current page (it may have changed). "
            "Call observe for fresh element ids."
        )
    if found.get("problem"):
        raise ActionError(f"Element [{element_id}] {found['problem']}; pick another element or scroll first.")
    return {key: float(found[key]) for key in ("x", "y", "width", "height")}


def _overshoot(distance: float, size: float) -> float:
    if abs(distance) < 1:
        return 0.0
    return (size / 4) * (1 if distance > 0 else -1)


# Playwright's `fill` makes nine browser calls for one text field (find the element, describe
# it, check it is visible, enabled and editable, select its text, type, then a barrier), where a
# plain field needs two: one script pass that finds it, makes the same checks by Playwright's
# rules and selects its text as Playwright does, then the same typing (`insertText`, or Delete
# for an empty text). A plain field is an <input> of a typed kind, or a <textarea>, of the
# document itself, the only element with its id, rendered and visible, enabled (no :disabled,
# no aria-disabled above it) and writable. Anything else (labels, contenteditable, date and
# number inputs, shadow roots, hidden or covered states Playwright would wait out, duplicated
# ids) is left to Playwright's own `fill`, as before.
_PLAIN_FIELD_SCRIPT = """
([attr, id]) => {
    const hits = [];
    const find = (root) => {
        for (const el of root.querySelectorAll(`[${attr}="${id}"]`)) hits.push(el);
        for (const host of root.querySelectorAll("*")) if (host.shadowRoot) find(host.shadowRoot);
    };
    find(document);
    if (hits.length !== 1) return false;
    const el = hits[0];
    const typed = el.tagName === "TEXTAREA" || (el.tagName === "INPUT" &&
        ["", "email", "password", "search", "tel", "text", "url"].includes(el.type.toLowerCase()));
    if (!typed || el.getRootNode() !== document || el.matches(":disabled") || el.hasAttribute("readonly") ||
        el.closest("[aria-disabled]") !== null) return false;
    const style = window.getComputedStyle(el);
    if (style.display === "contents" || style.visibility !== "visible") return false;
    if (!el.checkVisibility({checkOpacity: false, checkVisibilityCSS: false})) return false;
    const rect = el.getBoundingClientRect();
    if (!(rect.width > 0 && rect.height > 0)) return false;
    if (el.tagName === "INPUT") {
        el.select();
    } else {
        el.selectionStart = 0;
        el.selectionEnd = el.value.length;
    }
    el.focus();
    return true;
}
"""


def fill_field(page: pw.Page, element_id: str, text: str, timeout_ms: int) -> None:
    """Replace the text of the field with this id, as Playwright's `fill` does; an ActionError if
    it is missing or not editable. An empty `text` clears it (Playwright's `clear`)."""
    if not re.match(ELEMENT_ID_PATTERN, element_id):
        raise ActionError(f"'{element_id}' is not an element id")
    if page.evaluate(_PLAIN_FIELD_SCRIPT, [BID_ATTRIBUTE, element_id]) is True:
        if text:
            page.keyboard.insert_text(text)
        else:
            page.keyboard.press("Delete")
        return
    target = locate(page, element_id)
    _require_editable(target, element_id)
    target.fill(text, timeout=timeout_ms)


def _require_editable(target: pw.Locator, element_id: str) -> None:
    if not target.is_editable():
        raise ActionError(
            f"Element [{element_id}] is not an editable text field; pick an input, textarea "
            "or contenteditable element from the observation."
        )
