"""The operator's Chromium switches (`chromium_args` in the engine settings) reach the browser.

Settings refuse the switches that would undo the engine's own guards (tests/test_settings.py);
this checks that the ones they accept are really passed to Chromium at launch.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.config import EngineConfig
from engine.worker import BrowserWorker

from support.engine import EngineHarness

USER_AGENT = "safebrowse-chromium-args-probe/1.0"


def test_chromium_args_from_the_settings_are_given_to_chromium() -> None:
    harness = EngineHarness("chromium-args", chromium_args=[f"--user-agent={USER_AGENT}"], max_warm_contexts=0)
    try:
        created, _session = harness.open("miniwob.click-test")
        episode = harness.manager.get(created.episode_id)

        def user_agent(_worker: BrowserWorker) -> str:
            agent: str = episode.browser.active_page().evaluate("navigator.userAgent")
            return agent

        assert harness.run(episode.worker.run(user_agent)) == USER_AGENT
        harness.run(harness.manager.close(created.episode_id))
    finally:
        harness.stop()


@pytest.mark.parametrize("flag", [
    "--proxy-server=http://127.0.0.1:1", "--no-proxy-server", "--proxy-bypass-list=*",
    "--proxy-pac-url=http://127.0.0.1:1/p.pac", "--webrtc-ip-handling-policy=default",
])
def test_switches_that_would_route_around_the_egress_proxy_are_refused(flag: str) -> None:
    with pytest.raises(ValidationError, match="is not allowed"):
        EngineConfig(chromium_args=[flag])


def test_each_context_has_its_own_gate_on_the_proxy_until_it_closes() -> None:
    """Two episodes on one Chromium: besides the launch-level gate that allows nothing, each
    context has its own gate (so the proxy knows whose request it judges), and a gate closes
    with its context."""
    harness = EngineHarness("egress-gates", workers=1, max_warm_contexts=0)
    try:
        worker = harness.manager.pool.workers[0]
        deny = worker._deny_gate.port
        assert worker.proxy.open_ports == (deny,)
        first, _ = harness.open("miniwob.click-test")
        second, _ = harness.open("miniwob.click-test", seed=2)
        ports = worker.proxy.open_ports
        assert len(ports) == 3 and deny in ports, ports
        harness.run(harness.manager.close(first.episode_id))
        harness.run(worker.run(lambda w: w.proxy.sync()))
        assert len(worker.proxy.open_ports) == 2
        harness.run(harness.manager.close(second.episode_id))
        harness.run(worker.run(lambda w: w.proxy.sync()))
        assert worker.proxy.open_ports == (deny,)
    finally:
        harness.stop()
