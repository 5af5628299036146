"""Episodes through BrowserGym's `BrowserEnv`, called in-process as its users do.

`gymnasium.make("browsergym/miniwob.<task>")` after `import browsergym.miniwob`,
with MiniWoB++ served from a loopback HTTP server (the `miniwob` package's html
folder, as safebrowse serves it). Reset is `env.reset(seed=...)`; a step is
`env.step(action)` with one of BrowserGym's high-level action strings, on
BrowserGym's own element ids (bids).

The scripted policies read safebrowse's observation shape, so BrowserGym's
observation is converted to it (`observation_dict`); that conversion is timed
on the policy side, never inside a step.

Two things are patched, in this module only, and `docs/performance.md` says so:

* `BrowserEnv.reset` launches Chromium with its own `args=` list, so extra flags
  cannot go through `pw_chromium_kwargs` (Playwright raises "multiple values for
  keyword argument 'args'"). Its chat window (`browsergym.core.chat.Chat`) launches
  a second Chromium with no way to pass options at all, and Playwright's bundled
  browser is not installed on a machine that uses Debian's Chromium. Both modules
  get the global Playwright object through `_get_global_playwright`; the patch
  hands them a thin wrapper whose `chromium.launch` adds `executable_path` and the
  same `CHROMIUM_FLAGS` safebrowse launches with, after BrowserGym's own args.
  Nothing else about BrowserGym changes. A thread that runs its own BrowserEnvs
  (`thread_playwright`) gets its own Playwright from the same wrapper, since
  Playwright's sync API objects belong to the thread that started them.
* Nothing else. In the "default" variant every BrowserEnv and MiniWoB setting is
  as shipped (the task's `slow_mo=100` ms, `pre_observation_delay=0.5` s). The
  "tuned" variant sets both to 0 through BrowserEnv's own constructor arguments,
  to show how much of the difference is those two waits.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.episodes import MAX_STEPS, EpisodeResult
from engine.config import CHROMIUM_FLAGS, find_chromium
from safebrowse.scripted import Policy

SIDE = "browsergym"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "tuned": {"slow_mo": 0, "pre_observation_delay": 0.0},
}

# The same element description rules as safebrowse's observe.js, applied to BrowserGym's
# DOM snapshot, so a policy sees the same kind of element list on both sides.
ATTRIBUTE_ALLOW_LIST = ("id", "name", "placeholder", "href", "title", "alt", "aria-label", "for")
INTERACTIVE_TAGS = frozenset({"a", "button", "input", "select", "textarea", "option", "label",
                              "summary", "details", "canvas", "svg", "img"})
SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "meta", "link", "head", "title", "base",
                       "html", "body"})
IMPLICIT_ROLES = {
    "a": "link", "button": "button", "select": "combobox", "textarea": "textbox", "option": "option",
    "ul": "list", "ol": "list", "li": "listitem", "table": "table", "tr": "row", "td": "cell",
    "th": "columnheader", "h1": "heading", "h2": "heading", "h3": "heading", "h4": "heading",
    "h5": "heading", "h6": "heading", "img": "img", "form": "form", "nav": "navigation",
    "dialog": "dialog", "label": "label", "p": "paragraph", "summary": "button",
}
INPUT_ROLES = {"checkbox": "checkbox", "radio": "radio", "button": "button", "submit": "button",
               "reset": "button", "range": "slider", "number": "spinbutton", "search": "searchbox"}
TEXT_FROM_DESCENDANTS = frozenset({"a", "button", "label", "summary", "option"})
_SPACES = re.compile(r"\s+")

TEXT_NODE = 3
ELEMENT_NODE = 1


# -- launching Debian's Chromium ---------------------------------------------------------


class _LaunchOptions:
    """A Playwright `BrowserType` whose `launch` adds our executable and flags."""

    def __init__(self, browser_type: Any, executable: str, flags: Sequence[str]) -> None:
        self._browser_type = browser_type
        self._executable = executable
        self._flags = list(flags)

    def launch(self, **kwargs: Any) -> Any:
        kwargs.setdefault("executable_path", self._executable)
        kwargs["args"] = [*kwargs.get("args", []), *self._flags]
        return self._browser_type.launch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser_type, name)


class _PlaywrightWithLaunchOptions:
    """The global Playwright object, with `chromium` wrapped by `_LaunchOptions`."""

    def __init__(self, playwright: Any, executable: str, flags: Sequence[str]) -> None:
        self._playwright = playwright
        self.chromium = _LaunchOptions(playwright.chromium, executable, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._playwright, name)


_THREAD = threading.local()


@contextmanager
def thread_playwright() -> Iterator[None]:
    """Give the calling thread a Playwright of its own for BrowserEnv, stopped on leaving.

    BrowserGym keeps one global Playwright, started by whichever thread asks first,
    and Playwright's sync API objects only work on that thread. Several BrowserEnvs
    on threads of their own (parallel resets, parallel agents) each need their own.
    Leaving also stops the Playwright driver, so no idle process outlives the block.
    """
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    _THREAD.playwright = playwright
    try:
        yield
    finally:
        _THREAD.playwright = None
        playwright.stop()


def _current_playwright() -> Any:
    import browsergym.core as core

    own = getattr(_THREAD, "playwright", None)
    return own if own is not None else core._get_global_playwright()


def patch_chromium_launches(executable: str, flags: Sequence[str] = CHROMIUM_FLAGS) -> None:
    """Make BrowserEnv's and its chat's Chromium launches use `executable` and `flags`."""
    import browsergym.core.chat as chat_module
    import browsergym.core.env as env_module

    def wrapped() -> _PlaywrightWithLaunchOptions:
        return _PlaywrightWithLaunchOptions(_current_playwright(), executable, flags)

    env_module._get_global_playwright = wrapped  # type: ignore[attr-defined]
    chat_module._get_global_playwright = wrapped  # type: ignore[attr-defined]


def prepare_browsergym(miniwob_url: str, chromium: str | None = None) -> None:
    """Point MiniWoB at `miniwob_url`, patch the launches and register the MiniWoB envs."""
    os.environ["MINIWOB_URL"] = miniwob_url
    patch_chromium_launches(find_chromium(chromium))
    import browsergym.miniwob  # noqa: F401 - registers the browsergym/miniwob.* environments


def make_env(task_id: str, variant: str = "default") -> Any:
    """`gymnasium.make("browsergym/<task_id>")` as a user makes it, with the variant's settings.

    It launches nothing yet: BrowserEnv starts its browsers on the first `reset`.
    """
    import gymnasium

    return gymnasium.make(
        f"browsergym/{task_id}",
        headless=True,
        pw_chromium_kwargs={"executable_path": find_chromium()},
        **VARIANTS[variant],
    )


# -- observations and actions -------------------------------------------------------------


def observation_dict(obs: dict[str, Any]) -> dict[str, Any]:
    """BrowserGym's observation in the shape the scripted policies read.

    Elements come from BrowserGym's DOM snapshot (`dom_object`), in document order,
    with BrowserGym's bids as ids: rendered ones only (a layout box in
    `extra_element_properties`), interactive or carrying text of their own. Roles
    follow the same tag rules as safebrowse's observation script. Values and
    checked states are read from the attributes BrowserGym writes into the DOM
    before each snapshot.
    """
    dom = obs["dom_object"]
    strings: list[str] = dom["strings"]
    nodes = dom["documents"][0]["nodes"]
    parents: list[int] = nodes["parentIndex"]
    kinds: list[int] = nodes["nodeType"]
    names: list[int] = nodes["nodeName"]
    values: list[int] = nodes["nodeValue"]
    attribute_lists: list[list[int]] = nodes["attributes"]
    extra: dict[str, dict[str, Any]] = obs.get("extra_element_properties") or {}
    count = len(parents)

    def string(index: int) -> str:
        return strings[index] if index >= 0 else ""

    tags = [string(names[i]).lower() for i in range(count)]
    own_text = [""] * count
    subtree_end = list(range(count))
    for i in range(count - 1, -1, -1):
        parent = parents[i]
        if parent >= 0:
            subtree_end[parent] = max(subtree_end[parent], subtree_end[i])
    for i in range(count):
        if kinds[i] == TEXT_NODE and parents[i] >= 0:
            own_text[parents[i]] += string(values[i])

    def descendant_text(i: int) -> str:
        parts = [string(values[j]) for j in range(i + 1, subtree_end[i] + 1)
                 if kinds[j] == TEXT_NODE and tags[parents[j]] not in SKIP_TAGS]
        return "".join(parts)

    elements: list[dict[str, Any]] = []
    for i in range(count):
        if kinds[i] != ELEMENT_NODE or tags[i] in SKIP_TAGS:
            continue
        flat = attribute_lists[i]
        attributes = {string(flat[k]): string(flat[k + 1]) for k in range(0, len(flat) - 1, 2)}
        bid = attributes.get("bid")
        if bid is None:
            continue
        tag = tags[i]
        properties = extra.get(bid, {})
        if properties.get("bbox") is None and tag != "option":
            continue  # not rendered
        input_type = (attributes.get("type") or "text").lower() if tag == "input" else None
        if input_type == "hidden":
            continue
        text = _SPACES.sub(" ", own_text[i]).strip()
        interactive = (tag in INTERACTIVE_TAGS or "onclick" in attributes or "role" in attributes
                       or "tabindex" in attributes or "contenteditable" in attributes)
        if not interactive and not text:
            continue
        if not text and tag in TEXT_FROM_DESCENDANTS:
            text = _SPACES.sub(" ", descendant_text(i)).strip()
        role = attributes.get("role") or (
            INPUT_ROLES.get(input_type or "", "textbox") if tag == "input" else IMPLICIT_ROLES.get(tag, "generic")
        )
        shown = {name: attributes[name] for name in ATTRIBUTE_ALLOW_LIST if attributes.get(name)}
        if tag in ("input", "textarea", "select"):
            shown["value"] = attributes.get("value", "")
        if input_type in ("checkbox", "radio"):
            shown["checked"] = "true" if "checked" in attributes else "false"
        elements.append({
            "id": bid,
            "role": role,
            "tag": tag,
            "type": input_type,
            "text": text[:200],
            "visible": float(properties.get("visibility") or 0) > 0,
            "attributes": shown,
        })
    return {
        "goal": obs.get("goal") or "",
        "url": obs.get("url") or "",
        "elements": elements,
        "focused_id": obs.get("focused_element_bid") or None,
    }


def action_string(tool: str, arguments: dict[str, Any]) -> str:
    """A safebrowse tool call as BrowserGym's high-level action string."""
    if tool == "click":
        return f"click({arguments['id']!r})"
    if tool == "fill":
        return f"fill({arguments['id']!r}, {arguments['text']!r})"
    if tool == "select_option":
        options = list(arguments["options"])
        value: str | list[str] = options[0] if len(options) == 1 else options
        return f"select_option({arguments['id']!r}, {value!r})"
    if tool == "focus":
        return f"focus({arguments['id']!r})"
    if tool == "drag_and_drop":
        return f"drag_and_drop({arguments['from_id']!r}, {arguments['to_id']!r})"
    if tool == "noop":
        return f"noop({int(arguments.get('wait_ms', 1000))})"
    raise ValueError(f"no BrowserGym action for tool {tool!r}")


# -- episodes ------------------------------------------------------------------------------


class BrowserGymSide:
    """Owns one `BrowserEnv` per task, reused across that task's episodes as a trainer would."""

    def __init__(self, miniwob_url: str, variant: str = "default", max_steps: int = MAX_STEPS,
                 chromium: str | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown BrowserGym variant {variant!r}; choose from {sorted(VARIANTS)}")
        prepare_browsergym(miniwob_url, chromium)
        self.variant = variant
        self.side = SIDE if variant == "default" else f"{SIDE}-{variant}"
        self.max_steps = max_steps
        self._envs: dict[str, Any] = {}

    def _env(self, task_id: str) -> Any:
        env = self._envs.get(task_id)
        if env is None:
            env = make_env(task_id, self.variant)
            self._envs[task_id] = env
        return env

    def close_task(self, task_id: str) -> float:
        """Close the task's env (both Chromiums); returns how long that took."""
        env = self._envs.pop(task_id, None)
        if env is None:
            return 0.0
        started = time.perf_counter()
        env.close()
        return time.perf_counter() - started

    def close(self) -> None:
        for task_id in list(self._envs):
            self.close_task(task_id)

    def episode(self, task_id: str, seed: int, policy: Policy) -> EpisodeResult:
        result = EpisodeResult(self.side, task_id, seed)
        started = time.perf_counter()
        try:
            env = self._env(task_id)
            t0 = time.perf_counter()
            obs, _info = env.reset(seed=seed)
            result.reset_s = time.perf_counter() - t0
            result.goal = obs.get("goal") or ""
            while len(result.actions) < self.max_steps:
                p0 = time.perf_counter()
                view = observation_dict(obs)
                p1 = time.perf_counter()
                decision = policy(view)
                result.policy_s.append(time.perf_counter() - p0)
                result.add_step_part("obs_conversion", p1 - p0)
                if decision is None:
                    break
                tool, arguments = decision
                action = action_string(tool, arguments)
                result.actions.append(action)
                s0 = time.perf_counter()
                obs, reward, terminated, truncated, info = env.step(action)
                result.step_s.append(time.perf_counter() - s0)
                _record_step_parts(result, info)
                if terminated or truncated:
                    result.success = float(reward) > 0
                    break
        except Exception as error:  # noqa: BLE001 - reported in the summary, the run goes on
            result.error = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"
            self.close_task(task_id)
        result.wall_s = time.perf_counter() - started
        return result


def _record_step_parts(result: EpisodeResult, info: dict[str, Any]) -> None:
    """BrowserEnv's own timestamps of a step's phases."""
    for name, start, stop in (
        ("action", "action_exec_start", "action_exec_stop"),
        ("wait_page_and_delay", "wait_for_page_loading_start", "wait_for_page_loading_stop"),
        ("validate", "validation_start", "validation_stop"),
        ("observe", "get_observation_start", "get_observation_stop"),
    ):
        if start in info and stop in info:
            result.add_step_part(name, float(info[stop]) - float(info[start]))


class _QuietOverrides(logging.Filter):
    """BrowserEnv warns on every reset that a setting overrides the task's; once is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Overriding the task's")


def quiet_browsergym_warnings() -> None:
    """Keep BrowserEnv's per-reset warning about overridden task settings out of the output."""
    logging.getLogger("browsergym.core.env").addFilter(_QuietOverrides())

