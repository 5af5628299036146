"""Building step records: what happened in one step, reduced to what a trainer may keep.

A record is built complete, from plain values, before it joins a trajectory
(`StepRecord` is frozen). What changes about a step afterwards (requests that
surfaced only after it, the episode ending on it) makes a new record to put in
its place: see `with_blocked` and `terminal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import playwright.sync_api as pw

from engine.records import BlockedRequest, ErrorKind, FailureReason, StepRecord

MAX_INFO_ENTRIES = 20
MAX_ARGUMENTS = 20
MAX_ARGUMENT_CHARS = 2_000


@dataclass(frozen=True)
class Verdict:
    """The task's judgement of the page after an action (BrowserGym's `validate`).

    `error` says the validation itself failed (the episode then ends with
    task_validation_failed); the other fields keep their defaults.
    """

    reward: float = 0.0
    done: bool = False
    message: object = ""
    info: object = None
    error: str | None = None


@dataclass(frozen=True)
class StepTiming:
    """When the step started (wall clock) and how long its parts took, in milliseconds."""

    started_at: float
    action_ms: float
    validate_ms: float = 0.0
    observation_ms: float = 0.0


def action_record(
    index: int,
    tool: str,
    arguments: dict[str, Any],
    error: str | None,
    error_kind: ErrorKind | None,
    url: str,
    timing: StepTiming,
    verdict: Verdict,
    progress: float | None,
    blocked: Iterable[BlockedRequest],
) -> StepRecord:
    """The record of a browser action and the task's verdict on the page it left."""
    return StepRecord(
        index=index,
        tool=tool,
        arguments=jsonable(arguments),
        valid=error is None,
        error=error,
        error_kind=error_kind,
        url=url,
        started_at=timing.started_at,
        action_ms=timing.action_ms,
        observation_ms=timing.observation_ms,
        validate_ms=timing.validate_ms,
        task_reward=float(verdict.reward),
        task_done=bool(verdict.done),
        task_message=str(verdict.message or verdict.error or ""),
        task_info=scalar_info(verdict.info),
        progress=progress,
        blocked=tuple(blocked),
    )


def oracle_record(
    index: int,
    question: str,
    error: str | None,
    error_kind: ErrorKind | None,
    charged: bool,
    url: str,
    timing: StepTiming,
    progress: float | None,
    blocked: Iterable[BlockedRequest],
) -> StepRecord:
    """The record of an `ask_oracle` call; `progress` is the best the task reported so far."""
    return StepRecord(
        index=index, tool="ask_oracle", arguments=jsonable({"question": question}), valid=error is None,
        error=error, error_kind=error_kind, url=url, started_at=timing.started_at, action_ms=timing.action_ms,
        observation_ms=0.0, validate_ms=0.0, oracle_call=charged, progress=progress, blocked=tuple(blocked),
    )


def fault_record(
    index: int, tool: str, arguments: dict[str, Any], timing: StepTiming, blocked: Iterable[BlockedRequest]
) -> StepRecord:
    """The record of a step during which the browser went away: it ends the episode."""
    return StepRecord(
        index=index, tool=tool, arguments=jsonable(arguments), valid=False, error="browser error",
        error_kind="browser", url="", started_at=timing.started_at, action_ms=timing.action_ms,
        observation_ms=0.0, validate_ms=0.0, terminated=True, failure_reason=FailureReason.BROWSER_ERROR,
        blocked=tuple(blocked),
    )


def terminal(record: StepRecord, reason: FailureReason) -> StepRecord:
    """A copy of `record` as the step the episode ended on."""
    return record.model_copy(update={"terminated": True, "failure_reason": reason})


def with_blocked(record: StepRecord, more: Iterable[BlockedRequest], observation_ms: float | None = None) -> StepRecord:
    """A copy of `record` with requests that surfaced after it (and its observation time, if given)."""
    update: dict[str, object] = {"blocked": (*record.blocked, *more)}
    if observation_ms is not None:
        update["observation_ms"] = observation_ms
    return record.model_copy(update=update)


def playwright_message(error: pw.Error) -> str:
    """The first line of a Playwright error, without its call log or selector internals."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    first = first.replace("Error: ", "").replace("Locator.", "")
    return first[:300]


def scalar_info(info: object) -> dict[str, str | int | float | bool | None]:
    """The task's info dict reduced to short scalars a trainer can read (and JSON can hold)."""
    if not isinstance(info, dict):
        return {}
    result: dict[str, str | int | float | bool | None] = {}
    for key, value in list(info.items())[:MAX_INFO_ENTRIES]:
        if isinstance(value, bool) or value is None:
            result[str(key)[:100]] = value
        elif isinstance(value, (int, float)):
            result[str(key)[:100]] = value if value == value and abs(value) != float("inf") else str(value)
        elif isinstance(value, str):
            result[str(key)[:100]] = value[:500]
    return result


def jsonable(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments as recorded: JSON-safe, with very long strings cut."""
    result: dict[str, Any] = {}
    for key, value in list(arguments.items())[:MAX_ARGUMENTS]:
        key = str(key)[:100]
        if isinstance(value, str):
            cut = len(value) - MAX_ARGUMENT_CHARS
            result[key] = value if cut <= 0 else value[:MAX_ARGUMENT_CHARS] + f"...(+{cut} chars)"
        elif isinstance(value, (int, float, bool)) or value is None:
            result[key] = value
        elif isinstance(value, list):
            result[key] = [v if isinstance(v, (int, float, bool)) or v is None else str(v)[:500] for v in value[:50]]
        else:
            result[key] = str(value)[:500]
    return result


__all__ = [
    "StepTiming",
    "Verdict",
    "action_record",
    "fault_record",
    "jsonable",
    "oracle_record",
    "playwright_message",
    "scalar_info",
    "terminal",
    "with_blocked",
]
