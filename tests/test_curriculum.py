"""`difficulty: "auto"`: the curriculum's thresholds, then a whole server whose picks
follow a scripted agent's results on a built-in custom task, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from test_custom_tasks import FAILERS, SOLVERS, EnginePlayer, Player

from control_api.curriculum import Curriculum
from control_api.schemas import CurriculumPolicy

from support.control import PrivateControlServer

TASK = "custom.table-search"
LEVELS = ("easy", "medium", "hard")
WINDOW = 3  # small, so that a level changes after three episodes


# -- the policy alone -------------------------------------------------------------------------


def feed(curriculum: Curriculum, results: str, difficulty: str | None = None, task: str = "t") -> list[str]:
    """Record results ('1' success, '0' failure) at the current level (or `difficulty`);
    return the level picked after each."""
    picked = []
    for result in results:
        level = difficulty or curriculum.pick(task, LEVELS)
        curriculum.record(task, LEVELS, level, result == "1")
        picked.append(curriculum.pick(task, LEVELS))
    return picked


def test_defaults_are_the_documented_ones():
    assert CurriculumPolicy().model_dump() == {"window": 10, "promote_at": 0.8, "demote_at": 0.3}
    with pytest.raises(ValueError):
        CurriculumPolicy(promote_at=0.3, demote_at=0.5)


def test_a_full_window_at_or_over_promote_at_moves_up():
    curriculum = Curriculum()
    assert curriculum.pick("t", LEVELS) == "easy"  # the first declared level
    assert feed(curriculum, "11111111") == ["easy"] * 8  # not a full window yet
    assert feed(curriculum, "00") == ["easy", "medium"]  # full: 8 of 10 is exactly promote_at
    levels = {level.difficulty: level.results for level in curriculum.snapshot().tasks[0].levels}
    assert levels == {"easy": 0, "medium": 0, "hard": 0}  # the level left starts over
    curriculum = Curriculum()
    assert feed(curriculum, "1111111000") == ["easy"] * 10  # 0.7 stays
    assert feed(curriculum, "1" * 8) == ["easy"] * 7 + ["medium"]  # the window slides to 8 of the last 10


def test_a_full_window_at_or_under_demote_at_moves_down_and_the_ends_stay_put():
    curriculum = Curriculum()
    feed(curriculum, "1" * 20)
    assert curriculum.pick("t", LEVELS) == "hard"
    assert feed(curriculum, "1" * 10) == ["hard"] * 10  # nothing above the hardest level
    assert feed(curriculum, "0" * 7) == ["hard"] * 6 + ["medium"]  # 3 of the last 10 is exactly demote_at
    assert feed(curriculum, "1111000000") == ["medium"] * 10  # 0.4 stays
    assert feed(curriculum, "0") == ["easy"]  # 1110000000
    assert feed(curriculum, "0" * 20) == ["easy"] * 20  # nothing below the easiest level


def test_only_results_at_the_current_level_move_it():
    curriculum = Curriculum(CurriculumPolicy(window=3))
    assert feed(curriculum, "000", difficulty="hard") == ["easy"] * 3
    assert feed(curriculum, "111", difficulty="medium") == ["easy"] * 3
    assert feed(curriculum, "111") == ["easy", "easy", "medium"]
    # medium's window already holds three successes from explicit episodes: one more promotes
    assert feed(curriculum, "1") == ["hard"]
    # hard holds three failures: one more at hard demotes, and hard's window is cleared
    assert feed(curriculum, "0") == ["medium"]
    levels = {level.difficulty: level.results for level in curriculum.snapshot().tasks[0].levels}
    assert levels == {"easy": 0, "medium": 0, "hard": 0}


def test_tasks_are_independent_and_undeclared_levels_are_ignored():
    curriculum = Curriculum(CurriculumPolicy(window=1))
    feed(curriculum, "1", task="a")
    assert (curriculum.pick("a", LEVELS), curriculum.pick("b", LEVELS)) == ("medium", "easy")
    curriculum.record("b", LEVELS, "impossible", True)
    curriculum.record("b", LEVELS, None, True)
    assert curriculum.pick("b", LEVELS) == "easy"
    assert curriculum.pick("c", ()) is None


# -- a whole server -------------------------------------------------------------------------------


class CurriculumServer(PrivateControlServer):
    """The control API with a three-result window, over one engine worker."""

    def __init__(self) -> None:
        super().__init__("curriculum-tests", curriculum=CurriculumPolicy(window=WINDOW))

    def play(self, created: dict[str, Any], policy: Callable[[Player], None]) -> dict[str, Any]:
        """Run a scripted agent through the agent session (as the MCP door does); return the state."""
        observation = self.run(self.session(created["agent_token"]).observe()).observation
        player = EnginePlayer(self, SimpleNamespace(observation=observation, agent_token=created["agent_token"]))
        policy(player)
        assert player.over, player.text()
        return self.control.state(created["episode_id"])

    def levels(self, task_id: str) -> tuple[str, dict[str, tuple[int, int]]]:
        """The task's current level and, per level, (results, successes) in its window."""
        body = self.control.http.get("/v1/curriculum").json()
        assert body["policy"]["window"] == WINDOW
        task = next(t for t in body["tasks"] if t["task_id"] == task_id)
        levels = {lv["difficulty"]: (lv["results"], lv["successes"]) for lv in task["levels"]}
        return task["current_difficulty"], levels


@pytest.fixture(scope="module")
def server() -> Iterator[CurriculumServer]:
    running = CurriculumServer()
    try:
        yield running
    finally:
        running.stop()


def test_auto_difficulty_follows_the_agents_results(server):
    seed = 100
    # easy -> medium -> hard on successes; back to medium on failures at hard.
    for level, policy, success, next_level in (("easy", SOLVERS[TASK], True, "medium"),
                                               ("medium", SOLVERS[TASK], True, "hard"),
                                               ("hard", FAILERS[TASK], False, "medium")):
        for played in range(1, WINDOW + 1):
            seed += 1
            created = server.control.create(TASK, difficulty="auto", seed=seed)
            assert created["current_difficulty"] == level
            assert created["curriculum_variant_id"].startswith(f"{TASK}/{level}/")
            state = server.control.state(created["episode_id"])
            assert (state["current_difficulty"], state["difficulty_auto"]) == (level, True)
            assert state["curriculum_variant_id"] == created["curriculum_variant_id"]
            assert state["constraints"]["difficulty"] == level
            final = server.play(created, policy)
            assert final["success"] is success, final
            server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
            current, levels = server.levels(TASK)
            if played < WINDOW:
                assert current == level and levels[level] == (played, played if success else 0)
        assert current == next_level and levels[level] == (0, 0)  # the level left starts over
    created = server.control.create(TASK, difficulty="auto", seed=seed + 1)
    server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
    assert created["current_difficulty"] == "medium"


def test_explicit_difficulties_count_and_abandoned_episodes_do_not(server):
    task = "custom.login-form"
    created = server.control.create(task, difficulty="medium", seed=3)
    assert server.control.state(created["episode_id"])["difficulty_auto"] is False
    server.control.http.delete(f"/v1/episodes/{created['episode_id']}")  # closed while running: not counted
    created = server.control.create(task, difficulty="auto", seed=4)
    assert created["current_difficulty"] == "easy"
    ended = server.control.http.post(f"/v1/episodes/{created['episode_id']}/end").json()  # the trainer's cap: a failure
    assert ended["failure_reason"] == "client_step_cap"
    server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
    created = server.control.create(task, seed=5)  # no difficulty: the task's default level, and it counts there
    assert server.control.state(created["episode_id"])["current_difficulty"] == "medium"
    assert server.play(created, SOLVERS[task])["success"] is True
    server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
    assert server.levels(task) == ("easy", {"easy": (1, 0), "medium": (1, 1), "hard": (0, 0)})


def test_auto_on_a_task_without_difficulties_is_null(server):
    created = server.control.create("miniwob.click-test", difficulty="auto")
    try:
        assert created["current_difficulty"] is None
        state = server.control.state(created["episode_id"])
        assert (state["current_difficulty"], state["difficulty_auto"]) == (None, True)
    finally:
        server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
    assert "miniwob.click-test" not in {t["task_id"] for t in server.control.http.get("/v1/curriculum").json()["tasks"]}


def test_auto_still_refuses_unknown_tasks_and_other_names(server):
    response = server.control.http.post("/v1/episodes", json={"task_id": "custom.table-serch", "difficulty": "auto"})
    assert response.status_code == 404 and TASK in response.json()["suggestions"]
    response = server.control.http.post("/v1/episodes", json={"task_id": TASK, "difficulty": "Auto"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_difficulty"
    assert httpx.get(server.control_url + "/v1/curriculum").status_code == 401
