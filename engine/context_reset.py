"""Reset a closed episode's browser context in place, so the next episode can start in it.

Opening a context costs a renderer start (~170 ms on two cores) and its task page's
first load (~100 ms), both on reset's path when a trainer creates its next episode
right after closing the last one. Resetting the old context costs a handful of
browser round trips instead, and its tab starts loading the next page at once.

Only contexts that nothing but the page has touched are reset: their task declares a
preload page (its setup only scripts that page; it adds no init scripts or bindings),
they allow only the asset server's origin, and they keep their locale, time zone and
viewport. What a page can leave behind, and how each is cleared:

- tabs: every tab but the episode's first is closed;
- per-tab state (`sessionStorage`, `window.name`): cleared in the old document, which
  is then navigated away from;
- cookies and permissions: the context's own calls;
- the origin's storage (localStorage, IndexedDB, Cache API, service workers, file
  systems, ...): CDP `Storage.clearDataForOrigin` with every type;
- history: `Page.resetNavigationHistory` once the next page has committed, so
  `history.length` is 1 and `go_back` leads nowhere;
- focus, scroll position, timers, the old document's scripts: gone with the document
  (Playwright runs Chromium without the back-forward cache).

The reset is then verified from the new document, and from the browser for cookies a
script cannot see. A page that wrote again while it was being unloaded fails the
check; its context is closed instead of reused, so a failed reset costs speed, never
isolation.
"""

from __future__ import annotations

from typing import Any

import playwright.sync_api as pw

from engine.egress import origin_of

# A context is closed after this many episodes: a long-lived renderer's memory stays bounded.
MAX_EPISODES_PER_CONTEXT = 50

_FORGET_TAB_SCRIPT = "() => { try { sessionStorage.clear(); } catch (e) {} window.name = ''; }"

# Everything a page could have left behind that a script of the new document can see.
_TRACES_SCRIPT = """async () => {
  const [databases, caches_, workers] = await Promise.all([
    indexedDB.databases ? indexedDB.databases() : Promise.resolve([]),
    self.caches ? caches.keys() : Promise.resolve([]),
    navigator.serviceWorker ? navigator.serviceWorker.getRegistrations() : Promise.resolve([]),
  ]);
  return {
    history: history.length, name: window.name, session: sessionStorage.length,
    local: localStorage.length, cookie: document.cookie, databases: databases.length,
    caches: caches_.length, workers: workers.length,
  };
}"""

_CLEAN_TRACES: dict[str, Any] = {
    "history": 1, "name": "", "session": 0, "local": 0, "cookie": "", "databases": 0, "caches": 0, "workers": 0,
}


class ResetRefusedError(Exception):
    """The context could not be shown to be clean; it must be closed, not reused."""


def reset_context(context: pw.BrowserContext, page: pw.Page, origin: str, next_url: str, timeout_ms: float) -> pw.Page:
    """Clear everything the last episode left in `context` and start loading `next_url` in its
    first tab; that tab, verified clean. ResetRefusedError if it is not."""
    tab = _only_tab(context, page)
    if origin_of(tab.url) == origin:
        tab.evaluate(_FORGET_TAB_SCRIPT)
    context.clear_cookies()
    context.clear_permissions()
    session = context.new_cdp_session(tab)
    try:
        session.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
        # Only until the document commits: the page loads in Chromium while the worker serves
        # other jobs; the task's setup waits for "load".
        tab.goto(next_url, wait_until="commit", timeout=timeout_ms)
        session.send("Page.resetNavigationHistory")
    finally:
        session.detach()
    _verify(context, tab)
    return tab


def _only_tab(context: pw.BrowserContext, page: pw.Page) -> pw.Page:
    """The episode's first tab, alone in the context (any other tab closed)."""
    pages = context.pages
    if page.is_closed() or page not in pages:
        raise ResetRefusedError("the episode's first tab was closed")
    for other in pages:
        if other is not page:
            other.close()
    return page


def _verify(context: pw.BrowserContext, tab: pw.Page) -> None:
    traces: dict[str, Any] = tab.evaluate(_TRACES_SCRIPT)
    left = {name: value for name, value in traces.items() if _CLEAN_TRACES.get(name) != value}
    if left:
        raise ResetRefusedError(f"the page left traces behind: {left}")
    if context.cookies():
        raise ResetRefusedError("cookies survived the reset")
    if len(context.pages) != 1:
        raise ResetRefusedError("a tab was opened during the reset")


__all__ = ["MAX_EPISODES_PER_CONTEXT", "ResetRefusedError", "reset_context"]
