"""Turn the episode's active page into an agent-visible `Observation`.

One script pass in the page marks elements with ids and describes the rendered
ones; one CDP call reads the accessibility tree, whose nodes are mapped back to
ids through a DOM snapshot (taken again only when the page has changed in a way
that could change the mapping). Hidden elements, scripts, styles and attributes
outside the allow-list never reach the agent, and secret fields are masked in
the page before their values leave it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import playwright.sync_api as pw

from engine.actions import BID_ATTRIBUTE
from engine.agent_view import Element
from engine.playwright_together import together

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
class BidIndex:
    """Which id each DOM node of one document carries, as one DOM snapshot saw it.

    The accessibility tree names DOM nodes by backend id; finding their ids takes
    a DOM snapshot, a browser round trip with the whole document in it. An index
    is reused only while the page's state key is the same (the same document, and
    the same ids in the same document order: any id given, removed, changed or
    moved changes it) and every node the accessibility tree shows is known to it.
    """

    state: str
    bids: dict[int, str | None]

    def covers(self, state: str, nodes: list[dict[str, Any]]) -> bool:
        if state != self.state:
            return False
        return all(node["backendDOMNodeId"] in self.bids for node in nodes if "backendDOMNodeId" in node)


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
    bid_index: BidIndex | None = None
    secret_ids: set[str] = field(default_factory=set)
    probed: Any = None  # what the task's probe returned, read before marking; None if not asked or it threw


def snapshot_page(
    page: pw.Page,
    cdp: pw.CDPSession,
    max_elements: int,
    secret_selector: str | None,
    first_bid: int = 0,
    bid_index: BidIndex | None = None,
    read_while_loading: bool = False,
    probe: str | None = None,
) -> PageSnapshot | None:
    """Mark and describe the page, then render its accessibility tree.

    `first_bid` is where a document seen for the first time starts numbering;
    `bid_index` is the index the previous snapshot of this page returned. None
    means the document is still loading (and `read_while_loading` was not set).
    `probe` is a page function (a task's validation probe) run in the same call,
    before the page is marked.
    """
    args = [BID_ATTRIBUTE, max_elements, list(ATTRIBUTE_ALLOW_LIST), secret_selector or "", first_bid,
            read_while_loading]
    # The read and the accessibility tree go out together (engine.playwright_together). The
    # marking script only sets the id attribute, which the tree does not show, so the tree is
    # the same whichever of the two the renderer runs first. Ids are matched to the tree's
    # nodes by the `BidIndex`: the last one while it covers this state, else a DOM snapshot
    # taken below, after both.
    read: dict[str, Any]
    tree: dict[str, Any]
    read, tree = together(
        page,
        page._impl_obj.evaluate(_mark_script(probe, as_json=True), args),
        cdp._impl_obj.send(method="Accessibility.getFullAXTree", params={}),
    )
    probed = read.get("probed")
    marked = _marked(read)
    if marked is None:
        # The page's own JSON.stringify answered something else: read it the plain way (the probe,
        # already read before anything was marked, is not run again on a marked page).
        marked = page.evaluate(_mark_script(None, as_json=False), args)["marked"]
    if marked.get("loading"):
        return None
    secret_ids = {raw["id"] for raw in marked["elements"] if raw.pop("secret")} | set(marked.get("secretIds", []))
    elements = [Element.model_validate(raw) for raw in marked["elements"]]
    next_bid = int(marked.get("nextBid") or first_bid)
    nodes: list[dict[str, Any]] = tree["nodes"]
    state = str(marked.get("state", ""))
    if bid_index is None or not bid_index.covers(state, nodes):
        bid_index = BidIndex(state, _bids_by_backend_node(cdp))
        _know_field_internals(bid_index.bids, nodes)
    return PageSnapshot(
        url=page.url,
        title=marked.get("title") or "",
        elements=elements,
        focused_id=marked.get("focused"),
        axtree=render_axtree(nodes, bid_index.bids, secret_ids),
        truncated=bool(marked.get("truncated")),
        next_bid=next_bid,
        bid_index=bid_index,
        secret_ids=secret_ids,
        probed=probed["value"] if isinstance(probed, dict) else None,
    )


@cache
def _mark_script(probe: str | None, as_json: bool) -> str:
    """The marking script, preceded by `probe` when there is one: a task's probe and the page read
    then cost one page call. The probe runs first (nothing is marked yet), and its failure is
    kept from the read: the task then reads the page the ordinary way, and sees the error itself.

    `as_json`: what the marking script found leaves the page as one JSON string (`json`). It
    holds only strings, numbers, booleans and nulls, and as a string it crosses the renderer,
    the driver and Playwright's client without each walking every element and attribute to
    convert it, which cost more of the step than the read itself. Strings are made well formed
    first (a lone surrogate, or half an emoji cut at a length cap, becomes U+FFFD), as
    Playwright's conversion makes them. A page that gave objects or arrays a `toJSON` (old
    libraries did) gets the plain conversion instead (`marked`), and so does one whose
    `JSON.stringify` returned anything but the read's JSON (see `_marked`). The probe's value
    (`probed`) always takes Playwright's conversion, which keeps what JSON would not
    (undefined, NaN, -0) as BrowserGym reads them.
    """
    lines = ["(args) => {", "    let probed = null;"]
    if probe is not None:
        lines.append(f"    try {{ probed = {{value: ({probe})()}}; }} catch (error) {{ probed = null; }}")
    lines.append(f"    const marked = ({_MARK_SCRIPT.strip()})(args);")
    if as_json:
        lines += [
            "    const plain = !('toJSON' in Object.prototype || 'toJSON' in Array.prototype);",
            "    const wellFormed = (key, value) =>",
            "        typeof value === 'string' && !value.isWellFormed() ? value.toWellFormed() : value;",
            "    let text = null;",
            "    try { text = plain ? JSON.stringify(marked, wellFormed) : null; } catch (error) { text = null; }",
            "    if (typeof text === 'string') return {json: text, probed: probed};",
        ]
    lines += ["    return {marked: marked, probed: probed};", "}"]
    return "\n".join(lines)


def _marked(read: dict[str, Any]) -> dict[str, Any] | None:
    """What the marking script found, from a read made `as_json`; None if the page's JSON is not
    the shape the script returns (its `JSON.stringify` is not the browser's), so that the page
    is read again plainly."""
    text = read.get("json")
    if text is None:
        found = read.get("marked")
    else:
        try:
            found = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
    if not isinstance(found, dict):
        return None
    return found if isinstance(found.get("elements"), list) or found.get("loading") is True else None


def _send(cdp: pw.CDPSession, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """`cdp.send(method, params)`, as the JSON the browser answered.

    The sync API's `send` walks every dict, list and value of a result (keeping a map of those
    it has seen) to swap Playwright's own objects for their API wrappers; a CDP result holds
    none. For the accessibility tree, read on every step, that walk cost more of the worker's
    time than the rest of the call, so the result is taken as it came. The call is the same, and
    so are its errors, but for their prefix ("CDPSession._sync: ...").
    """
    result: dict[str, Any] = cdp._sync(cdp._impl_obj.send(method=method, params=params or {}))
    return result


# Roles of form fields whose built-in shadow tree (the editor inside an <input>) shows up
# in the accessibility tree but never in a DOM snapshot.
_FIELD_ROLES = frozenset({"textbox", "searchbox", "combobox", "spinbutton", "slider"})


def _know_field_internals(bids: dict[int, str | None], nodes: list[dict[str, Any]]) -> None:
    """Record the nodes inside form fields that the snapshot cannot show, as carrying no id.

    Any other node missing from the snapshot (one a script removed between the two
    reads, say) stays unknown, so the next observation takes a new snapshot rather
    than trusting this one about it.
    """
    parents = {child: node["nodeId"] for node in nodes for child in node.get("childIds", [])}
    by_id = {node["nodeId"]: node for node in nodes}
    for node in nodes:
        backend_id = node.get("backendDOMNodeId")
        if backend_id is None or backend_id in bids:
            continue
        ancestor = parents.get(node["nodeId"])
        for _ in range(3):  # the editor and its text sit one or two levels below the field
            parent = by_id.get(ancestor) if ancestor is not None else None
            if parent is None:
                break
            if parent.get("role", {}).get("value") in _FIELD_ROLES:
                bids[backend_id] = None
                break
            ancestor = parents.get(ancestor)


def _bids_by_backend_node(cdp: pw.CDPSession) -> dict[int, str | None]:
    """Every node of the snapshot (so unknown nodes can be told from unmarked ones), with its id."""
    snapshot = _send(cdp, "DOMSnapshot.captureSnapshot", {"computedStyles": []})
    strings: list[str] = snapshot["strings"]
    result: dict[int, str | None] = {}
    for index, document in enumerate(snapshot["documents"]):
        nodes = document["nodes"]
        if index > 0:  # frames are not marked: their nodes are known, without ids
            result.update(dict.fromkeys(nodes["backendNodeId"]))
            continue
        for backend_id, attributes in zip(nodes["backendNodeId"], nodes["attributes"]):
            bid = None
            for i in range(0, len(attributes) - 1, 2):
                if strings[attributes[i]] == BID_ATTRIBUTE:
                    bid = strings[attributes[i + 1]]
                    break
            result[backend_id] = bid
    return result


def render_axtree(nodes: list[dict[str, Any]], bids: dict[int, str | None], secret_ids: set[str]) -> str:
    """Indented accessibility tree, with `[id]` markers on nodes the agent can target."""
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
