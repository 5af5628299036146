"""Engine settings, with embedded defaults that work on a single Debian machine.

`EngineConfig` is a plain validated model: it never reads the environment or a file.
`safebrowse.settings` fills it from flags, `SAFEBROWSE_*` variables and the TOML file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# Chromium's command-line flags, each with its reason. `engine.launch` adds the proxy and the
# host resolver rules, and builds the launch and context options from these.
CHROMIUM_FLAGS = (
    # No traffic of Chromium's own (safe browsing lists, variations, component and extension
    # updates, sync): on a closed network it only times out, and it would meet the proxy's
    # launch-level gate, which refuses everything.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-component-extensions-with-background-pages",
    # One --disable-features wins over Playwright's own, so this list carries:
    # - every feature that would talk to the network on its own: cast discovery (MediaRouter,
    #   Dial...), certificate transparency lists, translation, autofill's server, optimisation
    #   hints, network time, preconnecting to the search engine, https upgrades of http
    #   navigations;
    # - the rest of Playwright's own list, which its driver counts on (paint holding off,
    #   no lazy frames, ...);
    # - RenderDocument: without it a navigation within a site keeps the tab's frame host
    #   instead of building a new one for each document. A task page's load (every reset)
    #   then costs about 30% less CPU across the browser and renderer processes (measured
    #   on click-test: 55-78 against 80-97 ms). Each document still gets a new global object
    #   and script state; nothing of the last document is reachable from the new one.
    "--disable-features=OverlayScrollbars,ExtendedOverlayScrollbars,MediaRouter,DialMediaRouteProvider,"
    "CertificateTransparencyComponentUpdater,Translate,AutofillServerCommunication,OptimizationHints,"
    "OptimizationHintsFetching,OptimizationGuideModelDownloading,NetworkTimeServiceQuerying,PreconnectToSearch,"
    "HttpsUpgrades,"
    "ImprovedCookieControls,LazyFrameLoading,GlobalMediaControls,DestroyProfileOnBrowserClose,AcceptCHFrame,"
    "AutoExpandDetailsElement,AvoidUnnecessaryBeforeUnloadCheckSync,PaintHolding,"
    "RenderDocument",
    # <a ping> (hyperlink auditing) is switched off: a page could report clicks elsewhere.
    "--no-pings",
    "--disable-dev-shm-usage",
    "--metrics-recording-only",
    "--mute-audio",
    "--no-default-browser-check",
    "--password-store=basic",
    # WebRTC's UDP (STUN, ICE candidates) cannot be proxied: allow none of it. ICE over TCP
    # would go through the proxy and meet the context's gate. (The `--force-` spelling of
    # this flag has no effect.)
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Nor does WebRTC enumerate local addresses to offer as candidates.
    "--enforce-webrtc-ip-permission-check",
    # DNS prefetch would resolve host names outside the proxy; no name resolves anyway
    # (the host resolver rules), this keeps the resolver out of a page's reach altogether.
    "--dns-prefetch-disable",
)

# Operator arguments that would undo a guarantee of docs/security.md: the host resolver rules
# the worker adds (no host name but loopback resolves), the egress proxy every connection goes
# through, WebRTC's UDP kept off, and "no remote debugging port".
REFUSED_CHROMIUM_ARGS = (
    "--host-resolver-rules", "--remote-debugging-port", "--remote-debugging-address",
    "--proxy-server", "--proxy-bypass-list", "--proxy-pac-url", "--no-proxy-server", "--proxy-auto-detect",
    "--webrtc-ip-handling-policy", "--force-webrtc-ip-handling-policy",
)


def find_chromium(explicit: str | None = None) -> str:
    """Return the Chromium executable to launch.

    An explicit path (`EngineConfig.chromium_path`, which the settings fill from
    `--chromium` or `SAFEBROWSE_CHROMIUM`) wins; otherwise Debian's package
    locations, then whatever `chromium` is on PATH. The environment is not read
    here: the settings are the one place that does.
    """
    if explicit:
        if not Path(explicit).exists():
            raise FileNotFoundError(f"Chromium not found at {explicit!r}")
        return explicit
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
    """Everything the room needs to run; both doors share one instance.

    Unknown fields are refused, so a misspelt key in the `[engine]` table of the
    TOML file is an error rather than a setting silently left at its default.
    """

    model_config = ConfigDict(extra="forbid")

    chromium_path: str | None = Field(default=None, description="Chromium executable; found automatically when unset.")
    headless: bool = Field(default=True, description="False shows the browser windows (needs a display).")
    chromium_args: list[str] = Field(
        default_factory=list,
        description="Extra Chromium command-line arguments, appended after the engine's own flags.")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
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
    extra_tasks_dir: str | None = Field(
        default=None, description="Operator folder of custom tasks (SAFEBROWSE_TASKS_DIR).")

    @field_validator("chromium_args")
    @classmethod
    def _chromium_args_are_flags(cls, args: list[str]) -> list[str]:
        """A bare word would be opened as a URL; some flags would undo the network defence."""
        for arg in args:
            if not arg.startswith("--"):
                raise ValueError(f"each Chromium argument must start with '--', got {arg!r}")
            flag = arg.split("=", 1)[0]
            if flag in REFUSED_CHROMIUM_ARGS:
                raise ValueError(f"{flag} is not allowed: the engine keeps its own host resolver rules, "
                                 "egress proxy and WebRTC policy, and opens no remote debugging port")
        return args
