"""A Python client for the trainer door, and a rollout helper that speaks MCP to the agent door.

`ControlClient` (sync) and `AsyncControlClient` have one method per control API
operation, named by its operation id (`create_episode`, `get_episode`,
`get_trajectory`, `end_episode`, `close_episode`, ...), and return the pydantic
models the server validates against (`control_api.schemas`). Both send the calls
built in `_operations`, where each operation's path, body and parsing is written
once. Failures raise `ControlAPIError` with the server's `{error, detail}`.

`arollout` / `rollout` run a policy through whole episodes the way a trainer does,
`agent_client` connects an `mcp` SDK client to the MCP door as one episode's agent, and
`AgentSeat` keeps one such client for the episodes an agent slot plays one after another.
"""

from safebrowse.client._agent import agent_client, agent_http_client
from safebrowse.client._async import AsyncControlClient
from safebrowse.client._base import DEFAULT_TIMEOUT, BaseControlClient
from safebrowse.client._errors import ControlAPIError
from safebrowse.client._rollout import (
    EpisodeRollout,
    EpisodeSpec,
    Observation,
    Policy,
    RolloutBatch,
    ToolCall,
    arollout,
    rollout,
)
from safebrowse.client._seat import AgentSeat
from safebrowse.client._sync import ControlClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "AgentSeat",
    "AsyncControlClient",
    "BaseControlClient",
    "ControlAPIError",
    "ControlClient",
    "EpisodeRollout",
    "EpisodeSpec",
    "Observation",
    "Policy",
    "RolloutBatch",
    "ToolCall",
    "agent_client",
    "agent_http_client",
    "arollout",
    "rollout",
]
