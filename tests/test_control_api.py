"""The control API over real HTTP: auth, the split between the two doors, errors,
the episode lifecycle with server-side rewards, metrics, and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_api.auth import OPEN_ROUTES
from control_api.body import MAX_BODY_BYTES
from control_api.routes import OPERATIONS
from control_api.schemas import LIMIT_FIELDS, CreateEpisodeRequest
from control_api.viewer import FILES as VIEWER_FILES
from engine.manager import MAX_SEED
from engine.records import EpisodeLimits
from engine.reward import TERM_NAMES, RewardWeights

EPISODE_PATH = re.compile(r"\{episode_id\}")
PROTECTED = [(op.method, re.sub(r"\{index\}", "1", EPISODE_PATH.sub("ep_0123456789abcdef", op.path)))
             for op in OPERATIONS if not op.public]
# Besides these, only the viewer's static shell is served without the token (docs/viewer.md).
NEAR_VIEWER = [("GET", "/viewer/"), ("GET", "/viewer/index.html"), ("GET", "/viewer/app.js.map"),
               ("POST", "/viewer")]
BAD_HEADERS = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "empty": {"Authorization": "Bearer"},
    "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    "no-scheme": {"Authorization": "TOKEN"},
}


@pytest.fixture(scope="module")
def http(live_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.control_url, headers=live_server.control_headers, timeout=60) as client:
        yield client


@pytest.fixture()
def episodes(http) -> Iterator[list[str]]:
    opened: list[str] = []
    yield opened
    for episode_id in opened:
        http.delete(f"/v1/episodes/{episode_id}")


def create(http: httpx.Client, episodes: list[str], **body: Any) -> dict[str, Any]:
    response = http.post("/v1/episodes", json=body)
    assert response.status_code == 201, response.text
    episodes.append(response.json()["episode_id"])
    return response.json()


def act(live_server, token: str, tool: str, arguments: dict[str, Any]):
    return live_server.run(live_server.manager.agent_session(token).act(tool, arguments))


def observe(live_server, token: str):
    return live_server.run(live_server.manager.agent_session(token).observe()).observation


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"]
    return body


# -- auth -------------------------------------------------------------------------------------


def test_health_needs_no_token(live_server):
    response = httpx.get(live_server.control_url + "/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize("headers", list(BAD_HEADERS.values()), ids=list(BAD_HEADERS))
@pytest.mark.parametrize(("method", "path"), PROTECTED + NEAR_VIEWER + [("GET", "/nope"), ("POST", "/v1/health")],
                         ids=[f"{m} {p}" for m, p in PROTECTED + NEAR_VIEWER] + ["unknown route", "POST health"])
def test_protected_routes_need_the_control_token(live_server, method, path, headers):
    response = httpx.request(method, live_server.control_url + path, headers=headers, json={"task_id": "x"})
    body = assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "episode" not in body["detail"]


def test_only_health_and_the_viewer_shell_are_open(live_server):
    expected = {("GET", "/v1/health")} | {("GET", path) for path in VIEWER_FILES}
    assert expected | {("HEAD", path) for _method, path in expected} == OPEN_ROUTES
    for path in VIEWER_FILES:
        response = httpx.get(live_server.control_url + path)
        assert response.status_code == 200 and response.headers["x-frame-options"] == "DENY"


def test_agent_token_is_not_a_control_token(live_server, http, episodes):
    created = create(http, episodes, task_id="miniwob.click-test")
    headers = {"Authorization": f"Bearer {created['agent_token']}"}
    response = httpx.get(f"{live_server.control_url}/v1/episodes/{created['episode_id']}", headers=headers)
    assert_error(response, 401, "unauthorized")


def test_each_door_serves_only_its_own_routes(live_server, http, episodes):
    created = create(http, episodes, task_id="miniwob.click-test")
    mcp_origin = live_server.mcp_url.rsplit("/mcp", 1)[0]
    for operation in OPERATIONS:
        path = EPISODE_PATH.sub(created["episode_id"], operation.path)
        for headers in (live_server.control_headers, {"Authorization": f"Bearer {created['agent_token']}"}):
            response = httpx.request(operation.method, mcp_origin + path, headers=headers)
            assert response.status_code == 404, (operation.path, response.status_code)
            assert "episode_id" not in response.text and "reward" not in response.text
    # ...and the MCP endpoint does not exist on the control port, whatever the token.
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in (live_server.control_headers, {"Authorization": f"Bearer {created['agent_token']}"}):
        response = httpx.post(live_server.control_url + "/mcp", headers=headers, json=initialize)
        assert response.status_code in (401, 404)
        assert "jsonrpc" not in response.text
    assert_error(http.post("/mcp", json=initialize), 404, "not_found")


# -- errors -----------------------------------------------------------------------------------


def test_unknown_route_and_wrong_method_are_json(http):
    assert_error(http.get("/v1/nope"), 404, "not_found")
    assert_error(http.get("/v1/tasks/"), 404, "not_found")  # no redirect for trailing slashes
    response = http.put("/v1/episodes")
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
    response = http.patch("/v1/episodes/ep_x")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "DELETE"}


def test_oversized_bodies_are_refused(live_server, http):
    big = {"task_id": "miniwob.click-test", "difficulty": "x" * (MAX_BODY_BYTES + 10)}
    assert_error(http.post("/v1/episodes", json=big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while streaming too
        yield b'{"task_id": "' + b"a" * 40_000
        yield b"a" * 40_000 + b'"}'

    assert_error(http.post("/v1/episodes", content=chunks()), 413, "body_too_large")


def test_bad_bodies(http):
    assert_error(http.post("/v1/episodes", content=b"{not json"), 400, "invalid_json")
    assert_error(http.post("/v1/episodes", content=b"[1, 2]"), 422, "validation_error")
    assert_error(http.post("/v1/episodes"), 422, "validation_error")
    body = assert_error(http.post("/v1/episodes", json={"max_steps": 0, "tool": "goto"}), 422, "validation_error")
    locations = {tuple(item["loc"]) for item in body["errors"]}
    assert {("body", "task_id"), ("body", "max_steps"), ("body", "tool")} <= locations
    body = assert_error(http.post("/v1/episodes", json={"task_id": "miniwob.click-test", "seed": True}),
                        422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "seed"]
    assert_error(http.post("/v1/episodes", json={"task_id": "miniwob.click-test",
                                                 "reward_weights": {"step_penalty": -1}}), 422, "validation_error")
    assert_error(http.get("/v1/episodes", params={"status": "sleeping"}), 422, "validation_error")
    assert_error(http.get("/v1/episodes/ep_x/trajectory", params={"screenshots": "maybe"}), 422, "validation_error")


def test_unknown_task_suggests_close_ids(http):
    body = assert_error(http.post("/v1/episodes", json={"task_id": "miniwob.click-buton"}), 404, "unknown_task")
    assert "miniwob.click-button" in body["suggestions"]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/trajectory"), ("POST", "/end"),
                                                ("DELETE", "")])
def test_unknown_episode_is_404(http, method, suffix):
    assert_error(http.request(method, f"/v1/episodes/ep_does_not_exist{suffix}"), 404, "episode_not_found")


# -- tasks and episodes -----------------------------------------------------------------------


def test_tasks(http):
    tasks = http.get("/v1/tasks").json()["tasks"]
    by_id = {task["id"]: task for task in tasks}
    assert len(by_id) == len(tasks) >= 100
    assert by_id["miniwob.click-test"]["family"] == "miniwob"
    assert set(by_id["miniwob.enter-text"]) == {"id", "family", "description", "difficulties"}


def test_episode_lifecycle_with_rewards(live_server, http, episodes):
    weights = {"success_reward": 2.0, "step_penalty": 0.1, "judge_quality_reward": 0.5}
    created = create(http, episodes, task_id="miniwob.click-test", seed=5, max_steps=7, oracle_budget=0,
                     reward_weights=weights)
    episode_id = created["episode_id"]
    assert created["mcp_url"] == live_server.mcp_url and created["seed"] == 5
    assert created["goal"] == "Click the button." and created["limits"]["max_steps"] == 7
    expected_weights = RewardWeights(**weights)
    assert RewardWeights(**created["reward_weights"]) == expected_weights

    state = http.get(f"/v1/episodes/{episode_id}").json()
    assert (state["status"], state["step_index"], state["last_reward"], state["cumulative_reward"]) == (
        "running", 0, None, 0.0)
    assert state["constraints"]["steps_left"] == 7 and state["constraints"]["oracle_budget"] == 0
    assert "agent_token" not in json.dumps(state)

    token = created["agent_token"]
    act(live_server, token, "noop", {"wait_ms": 0})
    act(live_server, token, "click", {"id": "9999999"})
    button = next(e for e in observe(live_server, token).elements if e.role == "button")
    act(live_server, token, "click", {"id": button.id})

    state = http.get(f"/v1/episodes/{episode_id}").json()
    assert (state["status"], state["done"], state["success"], state["failure_reason"]) == (
        "ended", True, True, "success")
    assert state["constraints"]["invalid_actions"] == 1 and state["constraints"]["steps_left"] == 4

    trajectory = http.get(f"/v1/episodes/{episode_id}/trajectory").json()
    steps = trajectory["steps"]
    assert [s["tool"] for s in steps] == ["noop", "click", "click"]
    assert [s["valid"] for s in steps] == [True, False, True]
    assert steps[1]["error"] and steps[1]["error_kind"] == "invalid"
    assert all(s["url"].endswith("click-test.html") and s["action_ms"] >= 0 for s in steps)
    for step in steps:
        reward = step["reward"]
        assert reward["total"] == pytest.approx(sum(reward[name] for name in TERM_NAMES), abs=1e-9)
    w = expected_weights
    quality = 1.0 * ((1 - 1 / 3) + (1 - 2 / 7) + 1.0 + 1.0) / 4
    assert [s["reward"]["total"] for s in steps] == pytest.approx([
        -w.step_penalty,
        -w.step_penalty - w.mistake_penalty,
        w.browsergym_reward_scale * 1.0 + w.success_reward - w.step_penalty + w.judge_quality_reward * quality,
    ])
    assert trajectory["cumulative_reward"] == pytest.approx(state["cumulative_reward"])
    assert state["last_reward"] == steps[-1]["reward"]

    listed = {e["episode_id"]: e for e in http.get("/v1/episodes").json()["episodes"]}
    assert listed[episode_id]["success"] is True and listed[episode_id]["step_index"] == 3
    assert episode_id in {e["episode_id"] for e in http.get("/v1/episodes?status=ended").json()["episodes"]}

    assert state["closed_by"] is None  # ended by its last step, but its context is still open
    closed = http.delete(f"/v1/episodes/{episode_id}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["closed_by"] == "trainer"
    assert http.delete(f"/v1/episodes/{episode_id}").status_code == 200  # closing twice is fine
    assert live_server.manager.agent_session(token) is None
    kept = http.get(f"/v1/episodes/{episode_id}/trajectory", params={"screenshots": "true"}).json()
    assert len(kept["steps"]) == 3 and kept["success"] is True
    assert kept["screenshot_png_base64"] is None and "closed" in kept["screenshot_error"]


def test_trajectory_screenshot_of_a_running_episode(http, episodes):
    created = create(http, episodes, task_id="miniwob.click-test")
    body = http.get(f"/v1/episodes/{created['episode_id']}/trajectory?screenshots=true").json()
    assert body["screenshot_error"] is None
    assert base64.b64decode(body["screenshot_png_base64"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert http.get(f"/v1/episodes/{created['episode_id']}").json()["step_index"] == 0  # not a step


def test_end_only_accepts_client_step_cap(http, episodes):
    created = create(http, episodes, task_id="miniwob.click-test")
    path = f"/v1/episodes/{created['episode_id']}/end"
    assert_error(http.post(path, json={"reason": "success"}), 422, "validation_error")
    assert http.get(f"/v1/episodes/{created['episode_id']}").json()["status"] == "running"
    ended = http.post(path, json={"reason": "client_step_cap"}).json()
    assert (ended["status"], ended["failure_reason"], ended["last_reward"]) == ("ended", "client_step_cap", None)


def test_metrics(live_server, http, episodes):
    created = create(http, episodes, task_id="miniwob.click-test")
    act(live_server, created["agent_token"], "noop", {"wait_ms": 0})
    act(live_server, created["agent_token"], "click", {"id": "not-an-id"})
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["safebrowse_episodes_created_total"] >= 1
    assert samples["safebrowse_episodes_open"] >= 1
    assert samples['safebrowse_steps_total{outcome="ok",tool="noop"}'] >= 1
    assert samples['safebrowse_step_errors_total{kind="invalid"}'] >= 1
    buckets = [v for k, v in samples.items() if k.startswith("safebrowse_step_duration_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == samples["safebrowse_step_duration_seconds_count"] >= 2
    assert samples['safebrowse_control_responses_total{code="201"}'] >= 1
    assert "agent_token" not in response.text and created["agent_token"] not in response.text


# -- the OpenAPI document ---------------------------------------------------------------------


def test_openapi_describes_exactly_the_routes(live_server, http):
    spec = http.get("/v1/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert documented == {(op.method, op.path) for op in OPERATIONS}
    text = json.dumps(spec)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs <= set(spec["components"]["schemas"])
    assert '"ge":' not in text and '"le":' not in text  # constraints are JSON Schema keywords
    for path, item in spec["paths"].items():
        for operation in item.values():
            public = path == "/v1/health"
            assert ("401" in operation["responses"]) is not public
            assert (operation.get("security") == []) is public
    create_schema = spec["components"]["schemas"]["CreateEpisodeRequest"]
    assert create_schema["additionalProperties"] is False
    assert set(LIMIT_FIELDS) == set(EpisodeLimits.model_fields)
    assert set(LIMIT_FIELDS) <= set(CreateEpisodeRequest.model_fields) <= set(create_schema["properties"])
    seed = next(s for s in create_schema["properties"]["seed"]["anyOf"] if s.get("type") == "integer")
    assert seed["maximum"] == MAX_SEED


# Every valid create opens a browser context, and the coverage phase builds dozens of
# valid bodies from the document's examples; on create it sends only invalid ones.
# The examples and fuzzing phases still create real episodes. A generated `difficulty` is a
# free string, so a body of a valid shape may name a level its task does not have: that is
# the documented 422 `invalid_difficulty`, added to the statuses a valid body may get.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-operation-id = "create_episode"
phases.coverage.generation.mode = "negative"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failures(live_server, http, tmp_path: Path):
    """Property-based run over every operation with every check: no 5xx, and every response
    (status, content type, headers, body) matches the document."""
    before = {e["episode_id"] for e in http.get("/v1/episodes").json()["episodes"]}
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev dependency"
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG, encoding="utf-8")
    try:
        result = subprocess.run(
            [cli, "--config-file", str(config), "run", f"{live_server.control_url}/v1/openapi.json",
             "--header", f"Authorization: Bearer {live_server.control_token}",
             "--checks", "all", "--max-examples", "5", "--workers", "1", "--request-timeout", "60",
             # The stateful phase chains create -> read -> end -> close through the document's
             # links, opening many browser contexts; test_episode_lifecycle_with_rewards covers that chain.
             "--phases", "examples,coverage,fuzzing",
             # Creating an episode starts a browser context: seconds on a loaded machine, not a bug.
             "--max-response-time", "60",
             "--generation-database", "none", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=540,
        )
    finally:
        for summary in http.get("/v1/episodes").json()["episodes"]:
            if summary["episode_id"] not in before and summary["status"] != "closed":
                http.delete(f"/v1/episodes/{summary['episode_id']}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    selected = re.search(r"(\d+) selected / (\d+) total", result.stdout)
    # Every operation but the document itself, which schemathesis leaves out.
    assert selected and selected.group(1) == selected.group(2) == str(len(OPERATIONS) - 1)
    # Exit code 0 is schemathesis' own verdict: no failed check. Warnings (which it may print
    # instead of "No issues found", e.g. when a generated case only met 4xx answers) are not failures.
    assert "FAILURES" not in result.stdout.upper().replace("NO FAILURES", ""), result.stdout[-3000:]
