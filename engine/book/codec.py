"""How the book writes what the engine keeps: one JSON text per state, record and exchange.

States and records are pydantic models written as JSON with every float as it is
(`NaN` and `Infinity` included, which a task's own reward may be: plain JSON would
turn them into null), so a record read back equals the one written and scores to
the same reward. Exchanges and recording flags are dataclasses of plain values.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from engine.recorder import Recording
from engine.records import EpisodeState, StepRecord
from engine.transcript import AgentExchange


def model_json(model: BaseModel) -> str:
    """The model's fields as JSON, non-finite floats kept as the constants Python's json reads."""
    return to_json(model.model_dump(), inf_nan_mode="constants").decode("utf-8")


def state_json(state: EpisodeState) -> str:
    return model_json(state)


def state_of(text: str) -> EpisodeState:
    return EpisodeState.model_validate_json(text)


def record_json(record: StepRecord) -> str:
    return model_json(record)


def record_of(text: str) -> StepRecord:
    return StepRecord.model_validate_json(text)


def exchange_json(exchange: AgentExchange) -> str:
    # The fields as they are (json copies nothing): dataclasses.asdict would deep-copy the arguments.
    return json.dumps({field.name: getattr(exchange, field.name) for field in dataclasses.fields(exchange)},
                      ensure_ascii=False)


def exchange_of(text: str) -> AgentExchange:
    return AgentExchange(**json.loads(text))


def recording_json(recording: Recording) -> str:
    return json.dumps(dataclasses.asdict(recording))


def recording_of(text: str) -> Recording:
    return Recording(**json.loads(text))


def trainer_data_json(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), ensure_ascii=False, allow_nan=False)


def trainer_data_of(text: str) -> Mapping[str, Any]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


__all__ = [
    "exchange_json",
    "model_json",
    "exchange_of",
    "record_json",
    "record_of",
    "recording_json",
    "recording_of",
    "state_json",
    "state_of",
    "trainer_data_json",
    "trainer_data_of",
]
