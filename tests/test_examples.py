"""The trainer example runs as documented against a real server: a supervised warm-start on
recorded episodes, then GRPO through both doors, with a tiny model built on the spot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "trl_environment_factory.py"


@pytest.mark.slow
def test_trl_example_warms_up_then_trains_with_grpo_through_both_doors(live_server, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--control-url", live_server.control_url, "--warmup-episodes", "8",
         "--sft-epochs", "12", "--grpo-steps", "2", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=280,
        env={**os.environ, "SAFEBROWSE_CONTROL_TOKEN": live_server.control_token, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warm-up: 8 recorded episodes of miniwob.click-test" in result.stdout
    steps = [json.loads(line.removeprefix("grpo step ")) for line in result.stdout.splitlines()
             if line.startswith("grpo step ")]
    assert [step["step"] for step in steps] == [1, 2]
    for step in steps:
        assert set(step) >= {"reward", "tools/call_frequency", "safebrowse/success"}
    # Every GRPO rollout was an episode on the server, closed when training ended.
    running = live_server.manager.states()
    assert not [state for state in running if state.status.value != "closed" and state.seed >= 20_000]
