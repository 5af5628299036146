"""How the engine starts Chromium and opens contexts: every flag and option, in one place.

The network boundary is the egress proxy (`engine.egress_proxy`). Chromium is launched with
`--proxy-server` pointing at the proxy's launch-level gate, which refuses everything, and
`--proxy-bypass-list=<-loopback>` (Playwright adds it), so even loopback addresses, which
Chromium otherwise reaches directly, are proxied. Each context then overrides the proxy with
its own gate (Playwright's per-context `proxy`, which Playwright 1.44 gives Chromium with
`<-loopback>` as well), judged by the episode's `EgressGuard`.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import ProxySettings, ViewportSize

from engine.config import CHROMIUM_FLAGS, EngineConfig

# Defence in depth behind the proxy: no host name but the loopback ones resolves, should any
# connection ever skip the proxy.
HOST_RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
# Loopback is proxied too (Chromium bypasses the proxy for it unless told otherwise).
PROXY_BYPASS = "<-loopback>"


def chromium_args(config: EngineConfig) -> list[str]:
    """The command line: the engine's flags, the resolver rules, then the operator's own
    switches (the settings refuse those that would undo the guarantees above)."""
    return [*CHROMIUM_FLAGS, HOST_RESOLVER_RULES, *config.chromium_args]


def launch_options(config: EngineConfig, executable: str, deny_proxy: str) -> dict[str, Any]:
    """Keyword arguments of `chromium.launch`; `deny_proxy` is the gate that allows nothing."""
    return {
        "executable_path": executable,
        "headless": config.headless,
        "args": chromium_args(config),
        "proxy": ProxySettings(server=deny_proxy, bypass=PROXY_BYPASS),
    }


def context_options(
    proxy: str,
    viewport: ViewportSize | None,
    locale: str | None,
    timezone_id: str | None,
) -> dict[str, Any]:
    """Keyword arguments of `browser.new_context` for an episode's context behind gate `proxy`.

    Downloads are refused (they are reported and cancelled); service workers are blocked, as
    they would outlive the page and serve it from a cache the proxy never sees again.
    """
    return {
        "accept_downloads": False,
        "service_workers": "block",
        "viewport": viewport,
        "locale": locale or None,
        "timezone_id": timezone_id or None,
        "proxy": ProxySettings(server=proxy, bypass=PROXY_BYPASS),
    }


__all__ = ["HOST_RESOLVER_RULES", "PROXY_BYPASS", "chromium_args", "context_options", "launch_options"]
