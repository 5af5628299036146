"""When an episode ends, and why: a pure policy over the step history and its counters.

`termination_reason` is the whole rule book an episode applies after each step: it
reads the limits the trainer chose, the counters as they stand after the step and
the step's record, and names the failure reason the episode ends with (or None
while it goes on). `counted` moves the counters on by one step. Nothing here
touches a browser or changes its arguments, so the same history always ends the
same way.

When the task itself says it is over without success, `classify_task_failure`
tells why from the actions that led there. A task's validator says only *that*
the episode ended badly (MiniWoB: a raw reward of -1 or 0, seldom a reason). A
trainer wants to know what kind of mistake ended it, so the episode classifies
the ending with the fixed, ordered rules below. They read only the step history
and the goal, so the same trajectory always gets the same reason. docs/rewards.md
lists them for trainers.

1. The task reports that its own timer ran out (`REWARD_REASON` "timed out"):
   `task_failed`.
2. The ending action typed text (`fill`, `clear`, or `press` of one printable key
   without `Enter`): `wrong_text`.
3. The ending action submitted (`press` with `Enter`, or a `click` after the episode
   typed text): `wrong_text` if some field's latest `fill` holds text that does not
   appear verbatim in the goal, otherwise `submission_failed` (the form was filled
   from the goal but the submission was judged wrong: swapped or missing fields).
4. The ending action picked an element (any action with an element id: click,
   select_option, drag_and_drop, hover, focus, press on an element, scroll in an
   element): `wrong_target`.
5. Anything else (noop, scroll, go_back leaving the task page, tab_focus,
   send_message): `task_failed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from engine.records import EpisodeLimits, FailureReason, StepRecord

TIMED_OUT = "timed out"
TARGET_ARGUMENTS = ("id", "from_id", "to_id")


def _is_enter(record: StepRecord) -> bool:
    key = str(record.arguments.get("key", ""))
    return record.tool == "press" and key.split("+")[-1] == "Enter"


def _types_text(record: StepRecord) -> bool:
    """Whether the step entered or removed text in a field."""
    if record.tool in ("fill", "clear"):
        return True
    key = str(record.arguments.get("key", ""))
    return record.tool == "press" and len(key) == 1 and key.isprintable()


def _latest_fills(history: Sequence[StepRecord]) -> dict[str, str]:
    """Each field's text as the agent's last successful fill (or clear) left it."""
    fields: dict[str, str] = {}
    for record in history:
        if not record.valid:
            continue
        element = str(record.arguments.get("id", ""))
        if record.tool == "fill":
            fields[element] = str(record.arguments.get("text", ""))
        elif record.tool == "clear":
            fields.pop(element, None)
    return fields


def classify_task_failure(history: Sequence[StepRecord], goal: str) -> FailureReason:
    """The failure reason for a task that ended on `history[-1]` without success."""
    if not history:
        return FailureReason.TASK_FAILED
    last = history[-1]
    reason = str(last.task_info.get("REWARD_REASON") or "").lower()
    if TIMED_OUT in reason:
        return FailureReason.TASK_FAILED
    if _types_text(last) and not _is_enter(last):
        return FailureReason.WRONG_TEXT
    typed_before = any(_types_text(record) for record in history[:-1])
    if _is_enter(last) or (last.tool == "click" and typed_before):
        texts = [text.strip() for text in _latest_fills(history).values()]
        if any(text and text not in goal for text in texts):
            return FailureReason.WRONG_TEXT
        return FailureReason.SUBMISSION_FAILED
    if any(last.arguments.get(name) is not None for name in TARGET_ARGUMENTS):
        return FailureReason.WRONG_TARGET
    return FailureReason.TASK_FAILED


@dataclass(frozen=True)
class StepCounters:
    """What the limits are checked against, as it stands after the latest step."""

    invalid_actions: int = 0
    repeated_actions: int = 0  # consecutive repeats of the latest action
    steps_since_progress: int = 0
    best_progress: float | None = None  # the highest progress the task has reported
    last_signature: tuple[str, str] | None = None  # the latest action's tool and arguments


def action_signature(tool: str, arguments: dict[str, object]) -> tuple[str, str]:
    """What makes two actions the same action, for the repeated-action rule."""
    return tool, repr(sorted(arguments.items()))


def counted(counters: StepCounters, record: StepRecord, signature: tuple[str, str]) -> StepCounters:
    """The counters after one more step (`record`, whose action has `signature`)."""
    invalid = counters.invalid_actions + (not record.valid and not record.oracle_call)
    repeated = counters.repeated_actions + 1 if signature == counters.last_signature else 0
    best = counters.best_progress
    if record.progress is not None and (best is None or record.progress > best):
        since_progress, best = 0, record.progress
    else:
        since_progress = counters.steps_since_progress + 1
    return replace(
        counters, invalid_actions=invalid, repeated_actions=repeated, steps_since_progress=since_progress,
        best_progress=best, last_signature=signature,
    )


def termination_reason(
    limits: EpisodeLimits,
    counters: StepCounters,
    record: StepRecord,
    history: Sequence[StepRecord],
    goal: str,
    validation_error: str | None = None,
) -> FailureReason | None:
    """Why the episode ends on `record` (the step after `history`), or None if it goes on.

    `counters` are as they stand after the step; `validation_error` says the task's
    own validation failed. The first matching rule names the reason.
    """
    if validation_error is not None:
        return FailureReason.TASK_VALIDATION_FAILED
    if record.task_done and record.task_reward > 0:
        return FailureReason.SUCCESS
    if record.task_done:
        return classify_task_failure([*history, record], goal)
    if record.error_kind == "invalid" and limits.end_on_invalid_action:
        return FailureReason.INVALID_ACTION
    if record.error_kind == "page" and limits.end_on_action_error:
        return FailureReason.BROWSERGYM_ACTION_ERROR
    if counters.invalid_actions >= limits.max_invalid_actions:
        return FailureReason.TOO_MANY_INVALID_ACTIONS
    if counters.repeated_actions + 1 >= limits.max_repeated_actions:
        return FailureReason.REPEATED_ACTION_LOOP
    if limits.low_progress_window is not None and counters.steps_since_progress >= limits.low_progress_window:
        return FailureReason.LOW_PROGRESS_ABORT
    if record.index >= limits.max_steps:
        return FailureReason.MAX_STEPS_EXCEEDED
    return None


def oracle_budget_exceeded(limits: EpisodeLimits, oracle_calls: int, charged: bool) -> bool:
    """Whether a charged oracle call went over the budget of an episode that ends on that."""
    return charged and oracle_calls > limits.oracle_budget and limits.end_on_oracle_budget


__all__ = [
    "StepCounters",
    "action_signature",
    "classify_task_failure",
    "counted",
    "oracle_budget_exceeded",
    "termination_reason",
]
