"""Exported episodes as supervised rows that read exactly as GRPO's prompts will."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from safebrowse.trl.environment import SafebrowseEnvironment
from safebrowse.trl.tools import tool_schemas


def sft_rows(rows: Sequence[Mapping[str, Any]], environment_class: type[SafebrowseEnvironment]) -> list[dict[str, Any]]:
    """Exported episodes (`GET /v1/export`, `safebrowse export`) as SFTTrainer rows: their
    `messages`, and the `tools` TRL will show the model when it trains with this class."""
    tools = json.dumps(tool_schemas(environment_class))
    return [{"messages": row["messages"], "tools": tools} for row in rows]


__all__ = ["sft_rows"]
