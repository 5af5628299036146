"""A TRL GRPO `rollout_func` backed by safebrowse, runnable without a model.

TRL's GRPOTrainer accepts `rollout_func(prompts, trainer) -> dict`: it must return
`prompt_ids`, `completion_ids` and `logprobs` for the policy's own tokens, and
every other key is forwarded, one value per prompt, to the reward functions. Here
each prompt names a task; the episode runs through the MCP door and the reward
comes from the control API (`env_reward`), computed server-side.

A scripted policy stands in for the model so this file runs as is:

    SAFEBROWSE_CONTROL_TOKEN=... python examples/trl_grpo_rollout.py --control-url http://127.0.0.1:8001

With a real model, replace `scripted.by_page` by a policy that prompts the model with
the observation text and parses a tool call from its answer, and return that
generation's real token ids and log-probabilities. Wiring it into TRL:

    from trl import GRPOConfig, GRPOTrainer
    trainer = GRPOTrainer(
        model=model_name,
        reward_funcs=[env_reward],
        train_dataset=Dataset.from_dict({"prompt": ["miniwob.click-test", "miniwob.enter-text", ...]}),
        args=GRPOConfig(use_vllm=True, ...),
        rollout_func=make_rollout_func(ControlClient(url, token)),
    )
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from safebrowse import scripted
from safebrowse.client import ControlClient, EpisodeSpec, env_reward, rollout

RolloutFunc = Callable[[list[str], Any], dict[str, list[Any]]]


def make_rollout_func(control: ControlClient, max_steps: int = 15, concurrency: int = 2) -> RolloutFunc:
    def rollout_func(prompts: list[str], trainer: Any = None) -> dict[str, list[Any]]:
        specs = [EpisodeSpec(prompt.strip(), seed=index) for index, prompt in enumerate(prompts)]
        batch = rollout(control, specs, scripted.by_page, max_steps=max_steps, concurrency=concurrency)
        completions = [json.dumps(episode.actions) for episode in batch]
        # Stand-in tokens: a model's generation would supply real ids and log-probabilities.
        prompt_ids = [list(prompt.encode()) for prompt in prompts]
        completion_ids = [list(text.encode()) for text in completions]
        logprobs = [[0.0] * len(ids) for ids in completion_ids]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs,
                **batch.trl_fields()}

    return rollout_func


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control-url", default=os.environ.get("SAFEBROWSE_CONTROL_URL", "http://127.0.0.1:8001"))
    parser.add_argument("tasks", nargs="*", default=[
        "miniwob.click-test", "miniwob.click-button", "miniwob.enter-text",
        "miniwob.click-checkboxes", "miniwob.login-user",
    ])
    args = parser.parse_args()
    with ControlClient(args.control_url, os.environ["SAFEBROWSE_CONTROL_TOKEN"]) as control:
        outputs = make_rollout_func(control)(args.tasks, None)
    rewards = env_reward(outputs["completion_ids"], outputs["env_reward"])
    outcomes = zip(args.tasks, rewards, outputs["env_success"], outputs["env_failure_reason"])
    for task, reward, success, reason in outcomes:
        print(f"{task:<28} reward={reward:+.3f} success={success} ({reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
