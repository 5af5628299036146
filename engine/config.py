"""Engine settings, with embedded defaults that work on a single Debian machine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel, Field

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# Flags that keep Chromium quiet on a closed network and out of the way of the host.
CHROMIUM_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=OverlayScrollbars,ExtendedOverlayScrollbars,MediaRouter",
    "--disable-dev-shm-usage",
    "--metrics-recording-only",
    "--mute-audio",
    "--no-default-browser-check",
    "--password-store=basic",
)


def find_chromium(explicit: str | None = None) -> str:
    """Return the Chromium executable to launch.

    An explicit path (flag or `SAFEBROWSE_CHROMIUM`) wins; otherwise Debian's
    package locations, then whatever `chromium` is on PATH.
    """
    candidate = explicit or os.environ.get("SAFEBROWSE_CHROMIUM")
    if candidate:
        if not Path(candidate).exists():
            raise FileNotFoundError(f"Chromium not found at {candidate!r}")
        return candidate
    for path in CHROMIUM_CANDIDATES:
        if Path(path).exists():
            return path
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise FileNotFoundError(
        "Chromium not found. Install Debian's package with `apt-get install -y chromium` "
        "or set SAFEBROWSE_CHROMIUM to its path."
    )


class EngineConfig(BaseModel):
    """Everything the room needs to run; both doors share one instance."""

    chromium_path: str | None = Field(default=None, description="Chromium executable; found automatically when unset.")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    headless: bool = True
    asset_host: str = "127.0.0.1"
    asset_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    max_observation_chars: int = Field(default=20_000, ge=1_000, le=1_000_000)
    max_elements: int = Field(default=400, ge=10, le=10_000)
    action_timeout_ms: int = Field(default=1_500, ge=100, le=30_000)
    setup_timeout_s: float = Field(default=20.0, gt=0, le=300)
    default_max_steps: int = Field(default=50, ge=1, le=10_000)
    max_open_episodes: int = Field(default=64, ge=1, le=10_000)
    max_warm_contexts: int = Field(
        default=4, ge=0, le=64,
        description="Warm browser contexts a worker keeps ready at most (as many as its largest recent "
                    "burst of resets); 0 turns warming off.")
    idle_timeout_s: float = Field(default=900.0, gt=0, description="Idle episodes are closed after this long.")
    extra_tasks_dir: str | None = Field(default=None, description="Operator folder of custom tasks (SAFEBROWSE_TASKS_DIR).")
