"""The manager's periodic housekeeping: close idle episodes, then keep the book.

An agent that stops calling leaves its episode's browser context open; after the
server's idle timeout the episode is closed (`closed_by: idle_timeout`). Each pass
then retries book writes that failed and applies the book's retention limits
(`EpisodeManager.keep_the_book`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from engine.book import BookWriteError
from engine.records import EpisodeStatus

if TYPE_CHECKING:
    from engine.manager import EpisodeManager

logger = logging.getLogger(__name__)

LONGEST_PAUSE_S = 30.0


async def reap_idle(manager: EpisodeManager, idle_timeout_s: float) -> None:
    """Run until cancelled: every half idle timeout (at most 30 s), one pass."""
    interval = min(LONGEST_PAUSE_S, idle_timeout_s / 2)
    while True:
        await asyncio.sleep(interval)
        now = time.time()
        for episode in manager.episodes():
            state = episode.snapshot.state
            if state.status is not EpisodeStatus.CLOSED and now - state.last_activity_at > idle_timeout_s:
                logger.info("closing idle episode %s", episode.id)
                try:
                    await manager.close(episode.id, by="idle_timeout")
                except BookWriteError as error:
                    logger.warning("%s", error)
                except Exception:  # noqa: BLE001 - one episode's failure must not stop the reaper
                    logger.exception("reaping episode %s failed", episode.id)
        await manager.keep_the_book()
