"""Per-step media of a recorded episode: what the agent saw, and the page's pixels.

Recording is opt-in per episode, for replay in the viewer. It is kept out of the
step records so trajectories stay small, and bounded so a long or busy episode
cannot fill the server's memory: a screenshot over the size cap, or past the
count cap, is skipped, and the step still happens and says it has no image.

The recorder lives on the episode's worker thread. Readers elsewhere get
`published`, a read-only mapping that is replaced, never changed, when a step's
media is added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import playwright.sync_api as pw

MAX_RECORDED_SCREENSHOT_BYTES = 300_000
MAX_RECORDED_SCREENSHOTS = 200
MAX_RECORDED_OBSERVATION_CHARS = 20_000


@dataclass(frozen=True)
class Recording:
    """What an episode keeps per step besides its StepRecord, for replay."""

    screenshots: bool = False
    observations: bool = False


@dataclass(frozen=True)
class StepMedia:
    """What was recorded after one step (index 0: after setup)."""

    observation_text: str | None = None
    screenshot_png: bytes | None = None
    screenshot_skipped: str | None = None


NO_MEDIA: Mapping[int, StepMedia] = MappingProxyType({})


class MediaRecorder:
    """Keeps one episode's per-step media within the caps above."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._media: dict[int, StepMedia] = {}
        self._screenshots = 0
        self.published: Mapping[int, StepMedia] = NO_MEDIA

    @property
    def active(self) -> bool:
        return self.recording.screenshots or self.recording.observations

    def record(
        self,
        index: int,
        observation_text: str,
        take_screenshot: Callable[[], bytes] | None,
        browser_failed: bool = False,
    ) -> None:
        """Keep what the agent saw after step `index` and, when screenshots are recorded and
        `take_screenshot` is given, the page's pixels (unless the browser already failed)."""
        if not self.active:
            return
        text = _capped(observation_text, MAX_RECORDED_OBSERVATION_CHARS)
        image: bytes | None = None
        skipped: str | None = None
        if self.recording.screenshots and take_screenshot is not None:
            image, skipped = self._screenshot(take_screenshot, browser_failed)
        self._media[index] = StepMedia(observation_text=text, screenshot_png=image, screenshot_skipped=skipped)
        self._screenshots += image is not None
        self.published = MappingProxyType(dict(self._media))

    def drop(self) -> None:
        """Forget every recorded screenshot and observation text."""
        self._media.clear()
        self._screenshots = 0
        self.published = NO_MEDIA

    def _screenshot(self, take: Callable[[], bytes], browser_failed: bool) -> tuple[bytes | None, str | None]:
        """The PNG to keep, or why there is none."""
        if self._screenshots >= MAX_RECORDED_SCREENSHOTS:
            return None, f"the episode already has {MAX_RECORDED_SCREENSHOTS} screenshots"
        if browser_failed:
            return None, "the browser failed"
        try:
            image = take()
        except (pw.Error, AssertionError) as error:
            return None, f"the browser failed: {type(error).__name__}"
        if len(image) > MAX_RECORDED_SCREENSHOT_BYTES:
            return None, f"the PNG is larger than {MAX_RECORDED_SCREENSHOT_BYTES} bytes"
        return image, None


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... (+{len(text) - limit} chars)"


__all__ = [
    "MAX_RECORDED_OBSERVATION_CHARS",
    "MAX_RECORDED_SCREENSHOTS",
    "MAX_RECORDED_SCREENSHOT_BYTES",
    "MediaRecorder",
    "Recording",
    "StepMedia",
]
