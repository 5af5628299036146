"""The trainer example runs as documented against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "trl_grpo_rollout.py"


def test_trl_rollout_example_runs_five_tasks_and_prints_rewards(live_server) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--control-url", live_server.control_url],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SAFEBROWSE_CONTROL_TOKEN": live_server.control_token},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "reward=" in line]
    assert len(lines) == 5
    assert all("success=True (success)" in line for line in lines), result.stdout


def test_rollout_func_returns_the_shape_trl_expects(live_server) -> None:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        from trl_grpo_rollout import make_rollout_func
    finally:
        sys.path.pop(0)
    from safebrowse.client import ControlClient

    prompts = ["miniwob.click-test", "miniwob.click-button"]
    with ControlClient(live_server.control_url, live_server.control_token) as control:
        outputs = make_rollout_func(control)(prompts, None)
    for key in ("prompt_ids", "completion_ids", "logprobs", "env_reward", "env_success"):
        assert len(outputs[key]) == len(prompts), key
    assert all(len(ids) == len(lp) for ids, lp in zip(outputs["completion_ids"], outputs["logprobs"]))
    assert all(reward > 0 for reward in outputs["env_reward"])
