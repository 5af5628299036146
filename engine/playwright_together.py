"""Several Playwright calls in flight at once, from the synchronous API.

The sync API sends one message to the driver and waits for its answer before the next
can go. Two calls that do not depend on each other (the page read and the accessibility
tree, say) then cost two full trips through the driver, the browser and the renderer,
and wake each process twice. Sent together they share one trip: on two cores a `fill`
step measured about 1 ms of CPU and 0.6 ms of latency less (docs/performance.md).

`together` runs the calls' coroutines (Playwright's own async implementation, which its
sync API wraps) as tasks of the sync API's event loop, so each is exactly the call the
sync method would make: the same messages, the same errors.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any, Protocol

# What the sync API's `_sync` attaches to the task of each call: the caller's stack, which
# Playwright reads to name the API in errors and to show where a failed call came from.
_CALL_SITE_ATTRIBUTES = ("__pw_stack__", "__pw_stack_trace__")


class SyncOwner(Protocol):
    """Any object of Playwright's sync API (a page, a CDP session): each runs coroutines on
    the loop of the Playwright instance it belongs to."""

    def _sync(self, coro: Coroutine[Any, Any, Any]) -> Any: ...


def together(owner: SyncOwner, *calls: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run `calls` concurrently on `owner`'s Playwright loop; their results, in order.

    Every call runs to its end before anything is raised, so no answer arrives for a call
    nobody waits on. If any failed, the error of the first failed call (in argument order)
    is raised: callers handle errors as they would for the same calls made one by one.
    """

    async def run_all() -> list[Any]:
        parent = asyncio.current_task()
        tasks = []
        for call in calls:
            task = asyncio.ensure_future(call)
            for name in _CALL_SITE_ATTRIBUTES:  # the caller's site, as `_sync` gave the parent task
                if hasattr(parent, name):
                    setattr(task, name, getattr(parent, name))
            tasks.append(task)
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    try:
        results: list[Any] = owner._sync(run_all())
    except BaseException:
        for call in calls:  # those the loop never started (it was closed, say): no "never awaited"
            if inspect.getcoroutinestate(call) == inspect.CORO_CREATED:
                call.close()
        raise
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


__all__ = ["together"]
