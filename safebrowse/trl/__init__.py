"""TRL's `environment_factory` over both doors: tools through the MCP door, rewards from the control API.

TRL trains agents in environments with `GRPOTrainer(environment_factory=...)`: it makes
one environment per generation with a no-argument constructor, calls `reset(**row)`
with each dataset row, exposes every public method as a tool (its schema from the
type hints and the docstring's `Args:`), feeds what a tool returns back to the model,
and hands the environments to the reward functions. That is this project's split:

- the model sees what an agent sees: `environment_factory(control_url, token)` returns a
  class whose tools are the MCP door's tools, same names and arguments, each one a real
  call through the episode's MCP door (`mcp_url`, agent token), answered with the text
  the agent would read;
- the reward is the server's: `env_reward` reads each episode's return from the control
  API. Nothing a tool returns carries a reward.

    from safebrowse.trl import env_reward, environment_factory

    trainer = GRPOTrainer(
        model=model,
        train_dataset=Dataset.from_list([{"prompt": prompt(), "task_id": "miniwob.click-test", "seed": 1}, ...]),
        environment_factory=environment_factory("http://127.0.0.1:8001", token, max_steps=10),
        reward_funcs=[env_reward],
        args=GRPOConfig(max_tool_calling_iterations=10, ...),
    )

A tool that the door answers with an error (the episode is over, an element that does
not exist) raises `ToolCallError`; TRL catches it and shows the model its message as
the tool's result, so the model is told the episode is over in the door's own words.

TRL has no hook for the end of training: `close_environments()` closes the episodes
of every environment still open (also run at interpreter exit).
"""


from safebrowse.trl.environment import (
    SafebrowseEnvironment,
    close_environments,
    environment_factory,
    opening,
    prompt,
)
from safebrowse.trl.errors import ResetError, ToolCallError
from safebrowse.trl.rewards import CHANNELS, channel_reward, env_reward, reward_breakdown
from safebrowse.trl.supervised import sft_rows
from safebrowse.trl.tools import tool_method, tool_names, tool_schemas

__all__ = [
    "CHANNELS",
    "ResetError",
    "SafebrowseEnvironment",
    "ToolCallError",
    "channel_reward",
    "close_environments",
    "env_reward",
    "environment_factory",
    "opening",
    "prompt",
    "reward_breakdown",
    "sft_rows",
    "tool_method",
    "tool_names",
    "tool_schemas",
]
