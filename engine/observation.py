"""Turn the episode's active page into an agent-visible `Observation`.

One script pass in the page marks elements with ids and describes the rendered
ones; one CDP call reads the accessibility tree, whose nodes are mapped back to
ids through a DOM snapshot. Hidden elements, scripts, styles and attributes
outside the allow-list never reach the agent, and secret fields are masked in
the page before their values leave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import playwright.sync_api as pw

from engine.actions import BID_ATTRIBUTE
from engine.agent_view import Element

ATTRIBUTE_ALLOW_LIST: tuple[str, ...] = (
    "id", "name", "value", "placeholder", "href", "title", "alt", "aria-label", "for",
    "min", "max", "step", "maxlength", "readonly", "required", "multiple", "aria-expanded",
    "aria-checked", "aria-selected", "aria-pressed",
)
SECRET_MASK = "********"
_MARK_SCRIPT = resources.files("engine").joinpath("observe.js").read_text(encoding="utf-8")
_SKIPPED_ROLES = frozenset({"generic", "none", "presentation", "LineBreak", "InlineTextBox"})
_SHOWN_PROPERTIES = ("checked", "selected", "expanded", "disabled", "pressed", "required", "focused")


@dataclass
class PageSnapshot:
    """Raw material of an observation, before it is sized and wrapped."""

    url: str
    title: str
    elements: list[Element]
    focused_id: str | None
    axtree: str
    truncated: bool
    next_bid: int
    secret_ids: set[str] = field(default_factory=set)


def snapshot_page(
    page: pw.Page,
    cdp: pw.CDPSession,
    max_elements: int,
    secret_selector: str | None,
    first_bid: int = 0,
) -> PageSnapshot:
    """Mark and describe the page, then render its accessibility tree.

    `first_bid` is where a document seen for the first time starts numbering.
    """
    marked: dict[str, Any] = page.evaluate(
        _MARK_SCRIPT,
        [BID_ATTRIBUTE, max_elements, list(ATTRIBUTE_ALLOW_LIST), secret_selector or "", first_bid],
    )
    secret_ids = {raw["id"] for raw in marked["elements"] if raw.pop("secret")}
    elements = [Element.model_validate(raw) for raw in marked["elements"]]
    axtree = render_axtree(cdp, secret_ids)
    return PageSnapshot(
        url=page.url,
        title=marked.get("title") or "",
        elements=elements,
        focused_id=marked.get("focused"),
        axtree=axtree,
        truncated=bool(marked.get("truncated")),
        next_bid=int(marked.get("nextBid") or first_bid),
        secret_ids=secret_ids,
    )


def _bids_by_backend_node(cdp: pw.CDPSession) -> dict[int, str]:
    snapshot = cdp.send("DOMSnapshot.captureSnapshot", {"computedStyles": []})
    strings: list[str] = snapshot["strings"]
    result: dict[int, str] = {}
    if not snapshot["documents"]:
        return result
    nodes = snapshot["documents"][0]["nodes"]
    for backend_id, attributes in zip(nodes["backendNodeId"], nodes["attributes"]):
        for i in range(0, len(attributes) - 1, 2):
            if strings[attributes[i]] == BID_ATTRIBUTE:
                result[backend_id] = strings[attributes[i + 1]]
                break
    return result


def render_axtree(cdp: pw.CDPSession, secret_ids: set[str]) -> str:
    """Indented accessibility tree, with `[id]` markers on nodes the agent can target."""
    bids = _bids_by_backend_node(cdp)
    nodes: list[dict[str, Any]] = cdp.send("Accessibility.getFullAXTree", {})["nodes"]
    if not nodes:
        return ""
    by_id = {node["nodeId"]: node for node in nodes}
    lines: list[str] = []

    def text_of(node: dict[str, Any], key: str) -> str:
        value = node.get(key, {}).get("value", "")
        return str(value).strip() if value is not None else ""

    def visit(node: dict[str, Any], depth: int, parent_name: str) -> None:
        role = text_of(node, "role")
        name = text_of(node, "name")
        if role == "InlineTextBox":
            return
        skip = node.get("ignored", False) or (role in _SKIPPED_ROLES and not name)
        if role == "StaticText" and name and name == parent_name:
            skip = True
        child_depth = depth
        if not skip:
            bid = bids.get(node.get("backendDOMNodeId", -1))
            parts = []
            if bid is not None:
                parts.append(f"[{bid}]")
            parts.append(role)
            if name:
                parts.append(repr(name[:200]))
            value = text_of(node, "value")
            if value:
                parts.append("value=" + repr(SECRET_MASK if bid in secret_ids else value[:200]))
            for prop in node.get("properties", []):
                if prop["name"] in _SHOWN_PROPERTIES:
                    prop_value = prop.get("value", {}).get("value")
                    if prop_value not in (False, "false", None, ""):
                        parts.append(prop["name"] if prop_value in (True, "true") else f"{prop['name']}={prop_value}")
            lines.append("  " * depth + " ".join(parts))
            child_depth = depth + 1
            if bid in secret_ids:
                return  # a secret field's inner text nodes would repeat its value
        for child_id in node.get("childIds", []):
            child = by_id.get(child_id)
            if child is not None:
                visit(child, child_depth, name or parent_name)

    visit(nodes[0], 0, "")
    return "\n".join(lines)
