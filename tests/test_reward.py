"""The reward rubric and the failure classification, as pure functions over step records."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.records import FailureReason, StepRecord
from engine.reward import (
    CHANNEL_NAMES,
    TERM_NAMES,
    RewardBreakdown,
    RewardWeights,
    cumulative_reward,
    score_trajectory,
)
from engine.termination import classify_task_failure

DOCS = Path(__file__).resolve().parent.parent / "docs" / "rewards.md"


def record(index: int, tool: str = "noop", arguments: dict[str, Any] | None = None, **fields: Any) -> StepRecord:
    values: dict[str, Any] = dict(
        index=index, tool=tool, arguments=arguments if arguments is not None else {"wait_ms": index},
        valid=True, url="http://127.0.0.1/x", started_at=0.0, action_ms=1.0, observation_ms=1.0, validate_ms=1.0,
    )
    values.update(fields)
    return StepRecord(**values)


def mixed_trajectory(final: FailureReason = FailureReason.SUCCESS) -> list[StepRecord]:
    """Progress, an oracle call, a mistake, a repeat, a page error and a terminal step."""
    return [
        record(1, progress=0.2),
        record(2, "ask_oracle", {"question": "?"}, oracle_call=True, progress=0.2),
        record(3, "click", {"id": "99"}, valid=False, error="no such element", error_kind="invalid", progress=0.1),
        record(4, "click", {"id": "99"}, valid=False, error="no such element", error_kind="invalid", progress=0.5),
        record(5, "click", {"id": "3"}, valid=False, error="disabled", error_kind="page", progress=0.5),
        record(6, "click", {"id": "4"}, task_reward=1.0 if final is FailureReason.SUCCESS else 0.0,
               task_done=True, terminated=True, failure_reason=final, progress=0.7),
    ]


def reference_total(records: list[StepRecord], weights: RewardWeights, max_steps: int) -> list[float]:
    """The formula of docs/rewards.md, written out independently of engine.reward."""
    totals, best, mistakes, repeats, calls = [], 0.0, 0, 0, 0
    for t, rec in enumerate(records, start=1):
        p = rec.progress
        gained = max(0.0, p - best) if p is not None else 0.0
        best = max(best, p or 0.0)
        mistake = rec.error_kind in ("invalid", "page") and not rec.oracle_call
        repeat = t > 1 and (rec.tool, rec.arguments) == (records[t - 2].tool, records[t - 2].arguments)
        mistakes, repeats, calls = mistakes + mistake, repeats + repeat, calls + rec.oracle_call
        success = rec.terminated and rec.failure_reason is FailureReason.SUCCESS
        completion = 1.0 if success else best
        quality = completion * ((1 - mistakes / t) + max(0.0, 1 - (t - 1) / max_steps)
                                + (1 - repeats / t) + (1 - calls / t)) / 4
        agent_failure = rec.terminated and rec.failure_reason not in (
            FailureReason.NONE, FailureReason.SUCCESS, FailureReason.CLIENT_STEP_CAP,
            FailureReason.BROWSER_ERROR, FailureReason.TASK_VALIDATION_FAILED, FailureReason.SERVER_RESTART)
        totals.append(
            weights.browsergym_reward_scale * rec.task_reward
            + weights.success_reward * success
            - weights.step_penalty
            + weights.progress_reward * gained
            - weights.llm_penalty * rec.oracle_call
            - weights.mistake_penalty * mistake
            - weights.repetition_penalty * repeat
            + weights.judge_quality_reward * quality * rec.terminated
            - weights.delayed_penalty * agent_failure
        )
    return totals


WEIGHT_SETS = [
    RewardWeights(),
    RewardWeights(browsergym_reward_scale=2.0, success_reward=0.0, step_penalty=0.1, progress_reward=3.0,
                  llm_penalty=0.7, mistake_penalty=0.3, repetition_penalty=0.9, judge_quality_reward=5.0,
                  delayed_penalty=1.5),
    RewardWeights(**{name: 0.0 for name in RewardWeights.model_fields}),
]


@pytest.mark.parametrize("weights", WEIGHT_SETS)
@pytest.mark.parametrize("final", [FailureReason.SUCCESS, FailureReason.WRONG_TARGET, FailureReason.CLIENT_STEP_CAP])
def test_total_is_the_weighted_sum(weights, final):
    records = mixed_trajectory(final)
    breakdowns = score_trajectory(records, weights, max_steps=10)
    for breakdown, expected in zip(breakdowns, reference_total(records, weights, 10), strict=True):
        assert breakdown.total == pytest.approx(math.fsum(getattr(breakdown, n) for n in TERM_NAMES), abs=1e-12)
        assert breakdown.total == pytest.approx(expected, abs=1e-12)
    assert cumulative_reward(breakdowns) == pytest.approx(sum(reference_total(records, weights, 10)))


def test_each_term_fires_where_it_should():
    weights = RewardWeights()
    b = score_trajectory(mixed_trajectory(), weights, max_steps=10)
    assert b[0].progress_reward == pytest.approx(0.2 * weights.progress_reward)
    assert b[1].llm_penalty == -weights.llm_penalty and b[1].mistake_penalty == 0.0
    assert b[2].mistake_penalty == -weights.mistake_penalty and b[2].progress_reward == 0.0  # progress fell
    assert b[3].repetition_penalty == -weights.repetition_penalty
    assert b[3].progress_reward == pytest.approx(0.3 * weights.progress_reward)  # from the best (0.2) to 0.5
    assert b[4].mistake_penalty == -weights.mistake_penalty  # a page error is a mistake too
    assert [x.judge_quality_reward > 0 for x in b] == [False] * 5 + [True]
    assert b[5].success_reward == weights.success_reward and b[5].browsergym_reward_scaled == 1.0
    assert all(x.step_penalty == -weights.step_penalty for x in b)


def test_channels_are_shares_in_unit_range():
    b = score_trajectory(mixed_trajectory(), RewardWeights(), max_steps=10)
    last = b[-1]
    assert last.action_validity == pytest.approx(1 - 3 / 6)
    assert last.non_repetition == pytest.approx(1 - 1 / 6)
    assert last.help_independence == pytest.approx(1 - 1 / 6)
    assert last.efficiency == pytest.approx(1 - 5 / 10)
    assert last.task_completion == 1.0
    assert last.trajectory_quality == pytest.approx((0.5 + 0.5 + 5 / 6 + 5 / 6) / 4)
    for breakdown in b:
        for name in CHANNEL_NAMES:
            assert 0.0 <= getattr(breakdown, name) <= 1.0


@pytest.mark.parametrize("reason", list(FailureReason))
def test_delayed_penalty_only_for_agent_failures(reason):
    records = [record(1, terminated=True, failure_reason=reason)]
    penalty = score_trajectory(records, RewardWeights(), max_steps=5)[0].delayed_penalty
    not_the_agent = {FailureReason.NONE, FailureReason.SUCCESS, FailureReason.CLIENT_STEP_CAP,
                     FailureReason.BROWSER_ERROR, FailureReason.TASK_VALIDATION_FAILED, FailureReason.SERVER_RESTART}
    assert penalty == (0.0 if reason in not_the_agent else -RewardWeights().delayed_penalty)


def test_a_failed_episode_gets_no_judge_reward_without_progress():
    records = [record(1), record(2, "click", {"id": "1"}, task_done=True, terminated=True,
                                 failure_reason=FailureReason.WRONG_TARGET)]
    final = score_trajectory(records, RewardWeights(), max_steps=5)[-1]
    assert final.trajectory_quality == 0.0 and final.judge_quality_reward == 0.0
    assert final.total < 0


def test_browser_faults_are_not_mistakes():
    records = [record(1, valid=False, error="browser error", error_kind="browser", terminated=True,
                      failure_reason=FailureReason.BROWSER_ERROR)]
    assert score_trajectory(records, RewardWeights(), max_steps=5)[0].mistake_penalty == 0.0


def test_penalties_are_never_positive_and_rewards_never_negative():
    for weights in WEIGHT_SETS:
        for b in score_trajectory(mixed_trajectory(FailureReason.TASK_FAILED), weights, 3):
            for name in ("step_penalty", "llm_penalty", "mistake_penalty", "repetition_penalty", "delayed_penalty"):
                assert getattr(b, name) <= 0.0
            for name in ("success_reward", "progress_reward", "judge_quality_reward"):
                assert getattr(b, name) >= 0.0


def test_empty_trajectory():
    assert score_trajectory([], RewardWeights(), 5) == []
    assert cumulative_reward([]) == 0.0


@pytest.mark.parametrize("bad", [{"step_penalty": -0.1}, {"llm_penalty": float("inf")},
                                 {"success_reward": float("nan")}, {"bonus": 1.0}, {"mistake_penalty": 1e9}])
def test_weights_are_validated(bad):
    with pytest.raises(ValidationError):
        RewardWeights(**bad)


def test_breakdown_fields_are_terms_channels_and_total():
    assert list(RewardBreakdown.model_fields) == ["step_index", *TERM_NAMES, *CHANNEL_NAMES, "total"]


def test_docs_list_every_weight_with_its_default():
    text = DOCS.read_text(encoding="utf-8")
    for name, info in RewardWeights.model_fields.items():
        match = re.search(rf"^\|\s*`{name}`\s*\|\s*([0-9.]+)\s*\|", text, re.MULTILINE)
        assert match, f"docs/rewards.md has no row for {name}"
        assert float(match.group(1)) == info.default
    for reason in FailureReason:
        assert f"`{reason.value}`" in text


# -- failure classification ------------------------------------------------------------------

GOAL = 'Enter "Kasey" into the text field and press Submit.'


def ended(step: StepRecord) -> StepRecord:
    return step.model_copy(update={"task_done": True, "task_reward": -1.0})


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([ended(record(1, "click", {"id": "4"}))], FailureReason.WRONG_TARGET),
        ([ended(record(1, "select_option", {"id": "4", "options": ["x"]}))], FailureReason.WRONG_TARGET),
        ([ended(record(1, "fill", {"id": "2", "text": "x"}))], FailureReason.WRONG_TEXT),
        ([ended(record(1, "press", {"key": "a"}))], FailureReason.WRONG_TEXT),
        ([record(1, "fill", {"id": "2", "text": "Nobody"}), ended(record(2, "click", {"id": "3"}))],
         FailureReason.WRONG_TEXT),
        ([record(1, "fill", {"id": "2", "text": "Nobody"}), ended(record(2, "press", {"key": "Enter"}))],
         FailureReason.WRONG_TEXT),
        ([record(1, "fill", {"id": "2", "text": "Kasey"}), ended(record(2, "click", {"id": "3"}))],
         FailureReason.SUBMISSION_FAILED),
        ([record(1, "fill", {"id": "2", "text": "Nobody"}), record(2, "fill", {"id": "2", "text": "Kasey"}),
          ended(record(3, "click", {"id": "3"}))], FailureReason.SUBMISSION_FAILED),  # the last fill counts
        ([record(1, "fill", {"id": "2", "text": "Nobody"}), record(2, "clear", {"id": "2"}),
          ended(record(3, "press", {"key": "Enter", "id": "2"}))], FailureReason.SUBMISSION_FAILED),
        ([record(1, "fill", {"id": "2", "text": "kasey"}), ended(record(2, "click", {"id": "3"}))],
         FailureReason.WRONG_TEXT),  # verbatim, so case matters
        ([ended(record(1, "go_back", {}))], FailureReason.TASK_FAILED),
        ([ended(record(1, "noop", {"wait_ms": 5}))], FailureReason.TASK_FAILED),
        ([ended(record(1, "click", {"id": "4"}, task_info={"REWARD_REASON": "timed out"}))],
         FailureReason.TASK_FAILED),
        ([], FailureReason.TASK_FAILED),
    ],
)
def test_classify_task_failure(history, expected):
    assert classify_task_failure(history, GOAL) is expected


def test_only_the_trainer_door_imports_the_rubric():
    """Rewards stay behind the control API: no other engine module, and no agent-door module, imports them."""
    root = Path(__file__).resolve().parent.parent
    for folder in ("engine", "mcp_server"):
        for path in (root / folder).glob("*.py"):
            if path.name == "reward.py":
                continue
            source = path.read_text(encoding="utf-8")
            assert not re.search(r"^\s*(from engine\.reward|import engine\.reward|from engine import reward)",
                                 source, re.MULTILINE), path
