"""What an agent may see and do. Nothing in this package can hold a reward, a verdict
or trainer data.

These are the only engine types the agent door (`mcp_server`) imports:

- `observation`: the page as the agent sees it (`Observation`, `Element`, `Tab`);
- `actions`: the agent-safe actions and their argument validation;
- `port`: `AgentPort`, the narrow per-episode interface the door acts through, and
  what its methods return.

They are a separate family from `engine.records` (the trainer's view), so a reward
field cannot ride along by accident: there is no field to put it in. A test imports
every module of `mcp_server` in a fresh interpreter and checks that nothing else of
the engine, and nothing of the trainer's side, comes with them.
"""

from engine.agent_view.observation import Element, Observation, Tab, page_text
from engine.agent_view.port import (
    AgentPort,
    AgentStepResult,
    EpisodeOverError,
    EvaluationOverError,
    OracleReply,
    Screen,
    StepNotRecordedError,
)

__all__ = [
    "AgentPort",
    "AgentStepResult",
    "Element",
    "EpisodeOverError",
    "EvaluationOverError",
    "Observation",
    "OracleReply",
    "Screen",
    "StepNotRecordedError",
    "Tab",
    "page_text",
]
