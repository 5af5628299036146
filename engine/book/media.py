"""Recorded media as files next to the book: screenshots and observation texts of each step.

They stay out of SQLite because they are large and read rarely (the viewer, one
step at a time): `<data dir>/media/<episode id>/<step index>.png` and `.txt`. The
book's `media` table says which files a step has (and why a screenshot was
skipped), and is written in the same transaction as the step, after the files are
whole: a file cut short by a crash has no row, so it is never read (the next write
of its step replaces it; otherwise it goes with its episode), and a row never points
at a missing file.

Readers get `StoredMedia`, a read-only mapping that opens a file only when a step's
media is asked for, so a restored episode costs no memory until it is viewed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.recorder import StepMedia

EPISODE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True)
class MediaRow:
    """What the book's `media` table says about one step."""

    has_text: bool
    has_png: bool
    screenshot_skipped: str | None


class MediaFiles:
    """The folder of every episode's media files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, episode_id: str) -> Path:
        if not EPISODE_ID.fullmatch(episode_id):
            raise ValueError(f"not an episode id: {episode_id[:100]!r}")
        return self.root / episode_id

    def write(self, episode_id: str, index: int, media: StepMedia) -> MediaRow:
        """Write one step's files and return its row (to be committed once the files are written)."""
        folder = self.folder(episode_id)
        folder.mkdir(parents=True, exist_ok=True)
        if media.observation_text is not None:
            (folder / f"{index}.txt").write_bytes(media.observation_text.encode("utf-8"))
        if media.screenshot_png is not None:
            (folder / f"{index}.png").write_bytes(media.screenshot_png)
        return MediaRow(media.observation_text is not None, media.screenshot_png is not None,
                        media.screenshot_skipped)

    def read(self, episode_id: str, index: int, row: MediaRow) -> StepMedia:
        """One step's media; a file gone missing reads as not kept."""
        folder = self.folder(episode_id)
        text = _read(folder / f"{index}.txt") if row.has_text else None
        image = _read(folder / f"{index}.png") if row.has_png else None
        skipped = row.screenshot_skipped
        if row.has_png and image is None:
            skipped = "the screenshot file is missing from the data dir"
        return StepMedia(observation_text=text.decode("utf-8") if text is not None else None,
                         screenshot_png=image, screenshot_skipped=skipped)

    def remove(self, episode_id: str) -> None:
        shutil.rmtree(self.folder(episode_id), ignore_errors=True)

    def episode_ids(self) -> set[str]:
        """The episodes that have a media folder."""
        if not self.root.is_dir():
            return set()
        return {entry.name for entry in self.root.iterdir() if entry.is_dir() and EPISODE_ID.fullmatch(entry.name)}


class StoredMedia(Mapping[int, StepMedia]):
    """One episode's recorded media, read from its files on access."""

    def __init__(self, files: MediaFiles, episode_id: str, rows: Mapping[int, MediaRow]) -> None:
        self._files = files
        self._episode_id = episode_id
        self._rows = dict(rows)

    def __getitem__(self, index: int) -> StepMedia:
        return self._files.read(self._episode_id, index, self._rows[index])

    def __contains__(self, index: object) -> bool:
        return index in self._rows

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


__all__ = ["MediaFiles", "MediaRow", "StoredMedia"]
