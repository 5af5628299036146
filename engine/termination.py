"""Why a task that ended without success failed, told from the actions that led there.

A task's validator says only *that* the episode ended badly (MiniWoB: a raw reward
of -1 or 0, seldom a reason). A trainer wants to know what kind of mistake ended it,
so the episode classifies the ending with the fixed, ordered rules below. They read
only the step history and the goal, so the same trajectory always gets the same
reason. docs/rewards.md lists them for trainers.

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

from engine.records import FailureReason, StepRecord

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


__all__ = ["classify_task_failure"]
