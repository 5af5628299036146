"""The episode viewer and the per-step recording it replays.

Episodes are played on the whole server with record_screenshots; the recording is
read over the JSON API, then the viewer page is opened in a separate Chromium (driven
from the test thread while the server runs on its own loop thread), given the control
token, and stepped through: action, observation text, reward and screenshot of every
step, and the success-rate plot. Episode-derived markup must show up as text."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from control_api.viewer import FILES
from engine.config import CHROMIUM_FLAGS, find_chromium
from engine.episode import EpisodeClosedError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
XSS = "<script>alert(2)</script><img src=x onerror=alert(1)>"


def _create(live, **body: Any) -> dict[str, Any]:
    response = httpx.post(live.control_url + "/v1/episodes", json=body, headers=live.control_headers, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def _act(live, token: str, tool: str, arguments: dict[str, Any]):
    return live.run(live.manager.agent_session(token).act(tool, arguments))


@pytest.fixture(scope="module")
def http(live_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def played(live_server, http) -> Iterator[dict[str, Any]]:
    """A recorded enter-text episode solved after a fill with markup in it, a recorded
    click-test episode the trainer ends, and an unrecorded one; all ended, none closed."""
    solved = _create(live_server, task_id="miniwob.enter-text", seed=3, record_screenshots=True)
    token = solved["agent_token"]
    observation = live_server.run(live_server.manager.agent_session(token).observe()).observation
    box = next(e for e in observation.elements if e.role == "textbox")
    button = next(e for e in observation.elements if e.role == "button")
    _act(live_server, token, "fill", {"id": box.id, "text": XSS})
    _act(live_server, token, "fill", {"id": box.id, "text": solved["goal"].split('"')[1]})
    _act(live_server, token, "click", {"id": button.id})
    capped = _create(live_server, task_id="miniwob.click-test", seed=4, record_observations=True)
    _act(live_server, capped["agent_token"], "noop", {"wait_ms": 0})
    assert http.post(f"/v1/episodes/{capped['episode_id']}/end").status_code == 200
    plain = _create(live_server, task_id="miniwob.click-test", seed=5)
    _act(live_server, plain["agent_token"], "noop", {"wait_ms": 0})
    episodes = {"solved": solved, "capped": capped, "plain": plain}
    yield episodes
    for episode in episodes.values():
        http.delete(f"/v1/episodes/{episode['episode_id']}")


# -- the recording over the JSON API -------------------------------------------------------------


def test_recorded_steps_have_screenshots_and_observation_texts(http, played):
    episode_id = played["solved"]["episode_id"]
    state = http.get(f"/v1/episodes/{episode_id}").json()
    assert state["success"] is True and state["recording"] == {"screenshots": True, "observations": True}
    trajectory = http.get(f"/v1/episodes/{episode_id}/trajectory", params={"observations": "true"}).json()
    steps = trajectory["steps"]
    assert [s["tool"] for s in steps] == ["fill", "fill", "click"]
    assert trajectory["start_screenshot_recorded"] and all(s["screenshot_recorded"] for s in steps)
    assert trajectory["start_observation_text"].startswith("Goal: " + state["goal"])
    assert "value=''" in trajectory["start_observation_text"]
    assert repr(XSS) in steps[0]["observation_text"] and "Step: 1 " in steps[0]["observation_text"]
    assert "Episode over" in steps[-1]["observation_text"]
    images = [http.get(f"/v1/episodes/{episode_id}/steps/{index}/screenshot.png") for index in range(4)]
    for image in images:
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(PNG_MAGIC) and len(image.content) > 1_000
    assert images[0].content != images[1].content  # the field filled in shows
    for index in ("4", "-1", "1.0", "x", "0" * 7):
        response = http.get(f"/v1/episodes/{episode_id}/steps/{index}/screenshot.png")
        assert response.status_code == 404 and response.json()["error"] == "step_not_found"
    # Without ?observations=true the texts stay out, so trajectories stay small.
    lean = http.get(f"/v1/episodes/{episode_id}/trajectory").json()
    assert lean["start_observation_text"] is None and all(s["observation_text"] is None for s in lean["steps"])
    assert lean["steps"][0]["screenshot_recorded"] is True


def test_recording_is_opt_in(http, played):
    capped = http.get(f"/v1/episodes/{played['capped']['episode_id']}/trajectory?observations=true").json()
    assert capped["recording"] == {"screenshots": False, "observations": True}
    assert capped["steps"][0]["observation_text"].startswith("Goal: ")
    assert not capped["start_screenshot_recorded"] and not capped["steps"][0]["screenshot_recorded"]
    plain = http.get(f"/v1/episodes/{played['plain']['episode_id']}/trajectory?observations=true").json()
    assert plain["recording"] == {"screenshots": False, "observations": False}
    assert plain["start_observation_text"] is None and plain["steps"][0]["observation_text"] is None
    response = http.get(f"/v1/episodes/{played['plain']['episode_id']}/steps/1/screenshot.png")
    assert response.status_code == 404 and response.json()["error"] == "screenshot_not_found"
    assert "record_screenshots" in response.json()["detail"]
    bad = http.post("/v1/episodes", json={"task_id": "miniwob.click-test", "record_screenshots": "yes"})
    assert bad.status_code == 422


def test_an_ended_episode_has_a_screenshot_until_it_is_closed(live_server, http):
    created = _create(live_server, task_id="miniwob.click-test", seed=6)
    episode_id = created["episode_id"]
    assert http.post(f"/v1/episodes/{episode_id}/end").json()["status"] == "ended"
    ended = http.get(f"/v1/episodes/{episode_id}/trajectory", params={"screenshots": "true"}).json()
    assert ended["screenshot_error"] is None
    assert base64.b64decode(ended["screenshot_png_base64"]).startswith(PNG_MAGIC)
    assert live_server.run(live_server.manager.screenshot(episode_id)).startswith(PNG_MAGIC)
    http.delete(f"/v1/episodes/{episode_id}")
    closed = http.get(f"/v1/episodes/{episode_id}/trajectory", params={"screenshots": "true"}).json()
    assert closed["screenshot_png_base64"] is None and "closed" in closed["screenshot_error"]
    with pytest.raises(EpisodeClosedError, match="closed"):
        live_server.run(live_server.manager.screenshot(episode_id))


# -- the shell and auth ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FILES))
def test_the_shell_is_public_static_and_locked_down(live_server, played, path):
    for method in ("GET", "HEAD"):
        response = httpx.request(method, live_server.control_url + path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == FILES[path][1]
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp and "script-src" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    body = httpx.get(live_server.control_url + path).text
    for episode in played.values():  # no episode data in the shell
        assert episode["episode_id"] not in body and episode["agent_token"] not in body
    assert live_server.control_token not in body
    foreign = body.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace name, not a fetch
    assert "http://" not in foreign and "https://" not in foreign and "//" + "cdn" not in foreign
    for near in (path + "/", path + "x", path.upper()):
        response = httpx.get(live_server.control_url + near)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert httpx.post(live_server.control_url + path).status_code == 401


def test_the_data_behind_the_viewer_needs_the_token(live_server, played):
    episode_id = played["solved"]["episode_id"]
    agent_token = played["solved"]["agent_token"]
    for path in ("/v1/episodes", f"/v1/episodes/{episode_id}", f"/v1/episodes/{episode_id}/trajectory",
                 f"/v1/episodes/{episode_id}/steps/1/screenshot.png", "/v1/curriculum"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {agent_token}"}):
            response = httpx.get(live_server.control_url + path, headers=headers)
            assert response.status_code == 401, (path, response.status_code)
            assert episode_id not in response.text
        assert httpx.get(live_server.control_url + path, headers=live_server.control_headers).status_code == 200


# -- the page in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_FLAGS))
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            yield context.new_page()
        finally:
            browser.close()


def _wait_text(page: Page, selector: str, expected: str, timeout: float = 10_000) -> str:
    page.wait_for_function(
        "([selector, expected]) => (document.querySelector(selector)?.textContent ?? '').includes(expected)",
        arg=[selector, expected], timeout=timeout,
    )
    return page.text_content(selector) or ""


def test_viewer_replays_an_episode_step_by_step(live_server, http, played, browser_page, tmp_path: Path):
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    solved = played["solved"]
    episode_id = solved["episode_id"]
    trajectory = http.get(f"/v1/episodes/{episode_id}/trajectory", params={"observations": "true"}).json()
    steps = trajectory["steps"]

    response = page.goto(live_server.control_url + "/viewer")
    assert response is not None and response.status == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert page.is_visible("#token-form") and page.is_hidden("#main")

    # A wrong token is refused and not kept; the right one opens the list.
    page.fill("#token", "not-the-token")
    page.click("#open")
    _wait_text(page, "#token-error", "refused")
    assert page.evaluate("sessionStorage.length") == 0 and page.is_hidden("#main")
    page.fill("#token", live_server.control_token)
    page.click("#open")
    row = page.locator(f'#episodes tbody tr[data-episode-id="{episode_id}"]')
    row.wait_for(timeout=15_000)
    assert page.is_hidden("#token-form") and page.is_visible("#forget-token")
    assert "miniwob.enter-text" in row.inner_text() and "success" in row.inner_text()
    assert live_server.control_token not in page.url

    # The success-rate plot has a series for each task that has ended episodes.
    for task_id in ("miniwob.enter-text", "miniwob.click-test"):
        series = page.locator(f'#plot svg g.series[data-task="{task_id}"]')
        assert series.locator("polyline").count() == 1 and series.locator("circle").count() >= 1
        # Exactly this task's entry (miniwob.click-test-2 also starts with miniwob.click-test).
        named = re.compile(rf"^\s*{re.escape(task_id)}(?![\w-])")
        assert page.locator("#legend li", has_text=named).count() == 1
    click_test = page.locator('#plot svg g.series[data-task="miniwob.click-test"] circle title').all_text_contents()
    assert any(played["capped"]["episode_id"] in title for title in click_test)

    row.get_by_role("button").click()
    page.locator("#replay").wait_for(state="visible")
    _wait_text(page, "#r-episode", episode_id)
    assert solved["goal"] in (page.text_content("#r-summary") or "")

    def check_step(index: int) -> None:
        step = steps[index - 1] if index else None
        _wait_text(page, "#r-position", f"Step {index} of 3" if index else "Start (0 of 3)")
        action = page.text_content("#r-action") or ""
        observation = page.text_content("#r-observation") or ""
        total = page.text_content("#r-reward-total") or ""
        if step is None:
            assert "setup" in action and total == "—"
            assert observation == trajectory["start_observation_text"]
        else:
            assert action.startswith(step["tool"] + " ")
            for value in step["arguments"].values():
                assert str(value) in action
            assert observation == step["observation_text"]
            assert float(total) == pytest.approx(step["reward"]["total"], abs=1e-3)
        page.wait_for_function(
            "() => { const i = document.getElementById('r-screenshot');"
            " return !i.hidden && i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png'); }",
            timeout=15_000,
        )
        assert page.is_disabled("#prev") is (index == 0)
        assert page.is_disabled("#next") is (index == len(steps))

    for index in range(len(steps) + 1):
        check_step(index)
        if index < len(steps):
            page.click("#next")
    assert "ended: success" in (page.text_content("#r-verdict") or "")
    page.click("#prev")
    check_step(len(steps) - 1)
    page.keyboard.press("ArrowLeft")
    check_step(len(steps) - 2)

    # The markup typed into the field is shown as text, in the action and the observation.
    assert XSS in (page.text_content("#r-action") or "") and repr(XSS) in (page.text_content("#r-observation") or "")
    assert page.locator("img[src='x']").count() == 0 and page.locator("main script").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == [] and page_errors == []

    image = page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
    assert image.startswith(PNG_MAGIC) and len(image) > 20_000
    assert (tmp_path / "viewer.png").read_bytes() == image

    # Forgetting the token empties the page's storage and hides the data.
    page.click("#forget-token")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.is_hidden("#main") and page.is_visible("#token-form")
