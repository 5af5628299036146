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
- per-tab state (`sessionStorage`, `window.name`, the history entry's state): cleared in
  the old document, which is then navigated away from;
- cookies and granted permissions: the context's own calls;
- the origin's storage (localStorage, IndexedDB, Cache API, service workers, file
  systems, ...): CDP `Storage.clearDataForOrigin` with every type; the HTTP cache holds
  only the asset server's plain files, the same for every episode (the egress proxy
  marks every answer to a URL with a query `no-store`, as it could carry what an
  episode typed), and is kept so the next page loads from it;
- history: `Page.resetNavigationHistory` once the browser has recorded the next page's
  commit, so `history.length` is 1 and `go_back` leads nowhere;
- focus, scroll position, timers, the old document's scripts: gone with the document
  (Playwright runs Chromium without the back-forward cache).

The reset is then verified (`verify_clean`: when the worker is next idle, or when an
episode takes the context, whichever comes first) from the new document (storage of every kind, history and
its state, `window.name`, no permission left denied: Chromium keeps a refused prompt
however permissions are cleared, and brings it back even over an override) and from
the browser (cookies a script cannot see; no target in the context but the tab,
so no worker of the last page still runs and writes). A page that wrote again while
it was being unloaded, or left a worker running, fails the check; its context is
closed instead of reused, so a failed reset costs speed, never isolation.
"""

from __future__ import annotations

from typing import Any

import playwright.sync_api as pw

from engine.egress import origin_of

# A context is closed after this many episodes: a long-lived renderer's memory stays bounded.
MAX_EPISODES_PER_CONTEXT = 50
# How often, and how far apart, a check asks whether the browser has recorded a commit (1 s in all).
_COMMIT_POLLS = 100
_COMMIT_POLL_MS = 10

_FORGET_TAB_SCRIPT = """() => {
  try { sessionStorage.clear(); } catch (e) {}
  window.name = '';
  try { history.replaceState(null, ''); } catch (e) {}
}"""

# Permissions a page can ask for; a fresh context shows none of them denied.
_PERMISSIONS = (
    "geolocation", "notifications", "camera", "microphone", "midi", "clipboard-read", "persistent-storage",
    "push", "local-fonts", "idle-detection", "window-management",
)

# Everything a page could have left behind that a script of the new document can see.
_TRACES_SCRIPT = """async (permissionNames) => {
  const count = async (iterable) => { let n = 0; for await (const _ of iterable) n += 1; return n; };
  const denied = async () => {
    const names = [];
    for (const name of permissionNames) {
      try {
        if ((await navigator.permissions.query({name, userVisibleOnly: true})).state === 'denied') names.push(name);
      } catch (e) {}
    }
    return names.join(',');
  };
  const [databases, caches_, workers, files, buckets, deniedNames] = await Promise.all([
    indexedDB.databases ? indexedDB.databases() : Promise.resolve([]),
    self.caches ? caches.keys() : Promise.resolve([]),
    navigator.serviceWorker ? navigator.serviceWorker.getRegistrations() : Promise.resolve([]),
    navigator.storage && navigator.storage.getDirectory
      ? navigator.storage.getDirectory().then((root) => count(root.keys())) : Promise.resolve(0),
    navigator.storageBuckets ? navigator.storageBuckets.keys() : Promise.resolve([]),
    denied(),
  ]);
  return {
    history: history.length, state: history.state === null, name: window.name,
    session: sessionStorage.length, local: localStorage.length, cookie: document.cookie,
    databases: databases.length, caches: caches_.length, workers: workers.length, files,
    buckets: buckets.length, denied: deniedNames,
  };
}"""

_CLEAN_TRACES: dict[str, Any] = {
    "history": 1, "state": True, "name": "", "session": 0, "local": 0, "cookie": "", "databases": 0, "caches": 0,
    "workers": 0, "files": 0, "buckets": 0, "denied": "",
}


class ResetRefusedError(Exception):
    """The context could not be shown to be clean; it must be closed, not reused."""


def reset_context(
    context: pw.BrowserContext, page: pw.Page, session: pw.CDPSession, origin: str, next_url: str, timeout_ms: float
) -> pw.Page:
    """Clear everything the last episode left in `context` and start loading `next_url` in its
    first tab; that tab, which must pass `verify_clean` before an episode is given it.
    `session` is a CDP session on `page` (the one its egress guard holds).

    The check is left to `verify_clean` because the new page's renderer is busy loading for a
    while, and every call to it waits until then: run at once, it would hold the worker's
    thread for the length of a page load.
    """
    tab = _only_tab(context, page)
    if origin_of(tab.url) == origin:
        tab.evaluate(_FORGET_TAB_SCRIPT)
    context.clear_cookies()
    context.clear_permissions()
    session.send("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    # Only until the document commits: the page loads in Chromium while the worker serves
    # other jobs; the task's setup waits for "load".
    tab.goto(next_url, wait_until="commit", timeout=timeout_ms)
    return tab


def verify_clean(
    context: pw.BrowserContext, tab: pw.Page, session: pw.CDPSession, browser_session: pw.CDPSession
) -> None:
    """Finish a reset and show it worked: the tab's history reset to its one page, nothing left
    that the new document or the browser can see. ResetRefusedError if anything is.

    `session` is a CDP session on `tab`; `browser_session` a browser-level one, which lists
    every target of the context.
    """
    wait_for_committed_entry(tab, session)
    session.send("Page.resetNavigationHistory")
    context_id: str = session.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    _verify(context, tab, context_id, browser_session)


def wait_for_committed_entry(tab: pw.Page, session: pw.CDPSession) -> None:
    """Wait until the browser's history of `tab` ends on the document the tab shows.

    Playwright learns of a commit from the renderer, a moment before the browser records the
    new history entry: a history reset made in between would keep the old entry and then gain
    the new one. ResetRefusedError if the entry never comes (the context is then closed).
    """
    for _attempt in range(_COMMIT_POLLS):
        history = session.send("Page.getNavigationHistory")
        if history["entries"][history["currentIndex"]]["url"] == tab.url:
            return
        tab.wait_for_timeout(_COMMIT_POLL_MS)
    raise ResetRefusedError(f"the browser never recorded the tab's page {tab.url} in its history")


def _only_tab(context: pw.BrowserContext, page: pw.Page) -> pw.Page:
    """The episode's first tab, alone in the context (any other tab closed)."""
    pages = context.pages
    if page.is_closed() or page not in pages:
        raise ResetRefusedError("the episode's first tab was closed")
    for other in pages:
        if other is not page:
            other.close()
    return page


def _verify(context: pw.BrowserContext, tab: pw.Page, context_id: str, browser_session: pw.CDPSession) -> None:
    traces: dict[str, Any] = tab.evaluate(_TRACES_SCRIPT, list(_PERMISSIONS))
    left = {name: value for name, value in traces.items() if _CLEAN_TRACES.get(name) != value}
    if left:
        raise ResetRefusedError(f"the page left traces behind: {left}")
    if context.cookies():
        raise ResetRefusedError("cookies survived the reset")
    targets = browser_session.send("Target.getTargets")["targetInfos"]
    others = [target["type"] for target in targets
              if target.get("browserContextId") == context_id and target["type"] != "page"]
    pages = [target for target in targets if target.get("browserContextId") == context_id and target["type"] == "page"]
    if others or len(pages) != 1 or len(context.pages) != 1:
        raise ResetRefusedError(f"the context still runs more than its tab: {others or len(pages)}")


__all__ = ["MAX_EPISODES_PER_CONTEXT", "ResetRefusedError", "reset_context", "verify_clean", "wait_for_committed_entry"]
