"""Recorded episodes as training data: one row per episode, in the chat format trainers read.

A row carries what a trainer filters and weighs on (task, seed, difficulty, goal,
success, failure reason, the return and each step's reward breakdown, scored with
the weights the trainer chose for the episode) and `messages`: the agent's side of
the episode as TRL's SFTTrainer reads conversations with tool calls.

- a `system` message with the instructions every agent is given;
- a `user` message with the goal and, when the agent's first call was `observe`,
  the page that call returned;
- then, for every later call, an `assistant` message whose `tool_calls` hold the
  call (name, and arguments as a JSON string) and a `tool` message with the text the agent received,
  exactly as the door rendered it (the episode's transcript keeps that text).

Rows are written as JSON lines (`datasets.load_dataset("json", ...)` reads them) or as
Parquet through `pyarrow` (the `parquet` extra). The same rows come from
`safebrowse export` (a data dir) and `GET /v1/export` (the running server's book).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from control_api.trainer_data import weights_in
from engine.agent_view.instructions import INSTRUCTIONS
from engine.book import BookEntry
from engine.reward import cumulative_reward, score_trajectory
from engine.transcript import AgentExchange

ExportFormat = Literal["jsonl", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "parquet")


class ExportError(Exception):
    """The export cannot be written as asked; the message says why and what to do."""


def messages_of(goal: str, exchanges: Iterable[AgentExchange]) -> list[dict[str, Any]]:
    """The agent's side of an episode as a chat with tool calls."""
    calls = list(exchanges)
    opening = f"Goal: {goal}"
    if calls and calls[0].tool == "observe" and not calls[0].is_error:
        opening += "\n\n" + calls[0].result_text
        calls = calls[1:]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": opening},
    ]
    for exchange in calls:
        call_id = f"call_{exchange.seq}"
        messages.append({
            "role": "assistant",
            "content": "",
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                # As a JSON string, as in OpenAI's format, which chat templates accept: a column
                # of arguments whose keys differ from tool to tool stays one type for Arrow.
                "function": {"name": exchange.tool, "arguments": json.dumps(exchange.arguments, ensure_ascii=False)},
            }],
        })
        messages.append({"role": "tool", "tool_call_id": call_id, "name": exchange.tool,
                         "content": exchange.result_text})
    return messages


def episode_row(entry: BookEntry) -> dict[str, Any]:
    """One episode as one row of the dataset."""
    state = entry.state
    breakdowns = score_trajectory(entry.records, weights_in(entry.trainer_data), state.max_steps)
    return {
        "episode_id": state.episode_id,
        "task_id": state.task_id,
        "seed": state.seed,
        "difficulty": state.difficulty,
        "goal": state.goal,
        "success": state.success,
        "failure_reason": state.failure_reason.value,
        "return": cumulative_reward(breakdowns),
        "steps": len(entry.records),
        "created_at": state.created_at,
        "rewards": [breakdown.model_dump(mode="json") for breakdown in breakdowns],
        "messages": messages_of(state.goal, entry.exchanges),
    }


def rows(entries: Iterable[BookEntry]) -> Iterator[dict[str, Any]]:
    """Rows of every entry that has ended; a running episode has no outcome to learn from yet."""
    for entry in entries:
        if entry.state.done:
            yield episode_row(entry)


def jsonl_lines(entries: Iterable[BookEntry]) -> Iterator[str]:
    """Each row as one line of JSON, newline included: what the streaming route sends."""
    for row in rows(entries):
        yield json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(entries: Iterable[BookEntry], out: IO[str]) -> int:
    """Write the rows as JSON lines; returns how many."""
    count = 0
    for line in jsonl_lines(entries):
        out.write(line)
        count += 1
    return count


def write_parquet(entries: Iterable[BookEntry], path: Path) -> int:
    """Write the rows as one Parquet file, nested columns as nested types; returns how many."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "Parquet export needs pyarrow: install safebrowse with its 'parquet' extra "
            "(pip install 'safebrowse[parquet]'), or export --format jsonl"
        ) from None
    table_rows = list(rows(entries))
    pq.write_table(pa.Table.from_pylist(table_rows), path)
    return len(table_rows)


__all__ = [
    "FORMATS",
    "ExportError",
    "ExportFormat",
    "episode_row",
    "jsonl_lines",
    "messages_of",
    "rows",
    "write_jsonl",
    "write_parquet",
]
