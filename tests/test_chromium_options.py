"""The operator's Chromium switches (`chromium_args` in the engine settings) reach the browser.

Settings refuse the switches that would undo the engine's own guards (tests/test_settings.py);
this checks that the ones they accept are really passed to Chromium at launch.
"""

from __future__ import annotations

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
