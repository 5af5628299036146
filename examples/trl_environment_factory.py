"""Train a browser agent on safebrowse with TRL: a supervised warm-start on recorded episodes,
then GRPO through both doors.

1. The scripted policies play warm-up episodes through the MCP door; the server records
   them, and the control API exports them as chat conversations with tool calls.
2. `SFTTrainer` learns from them until the model writes well-formed tool calls.
3. `GRPOTrainer(environment_factory=...)` plays live episodes: each rollout is one
   episode, every tool call goes through the MCP door, and `env_reward` reads each
   episode's return from the control API, computed server-side.

Here, on a CPU, with a tiny Qwen3 built on the spot (nothing downloaded, about a minute):

    SAFEBROWSE_CONTROL_TOKEN=... python examples/trl_environment_factory.py --control-url http://127.0.0.1:8001

On a GPU, the same script with a real model:

    SAFEBROWSE_CONTROL_TOKEN=... python examples/trl_environment_factory.py --control-url http://HOST:8001 \\
        --model Qwen/Qwen3-0.6B --task miniwob.click-button --warmup-episodes 64 --grpo-steps 200 --bf16
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Any

from safebrowse import scripted
from safebrowse.client import ControlClient, EpisodeSpec, rollout
from safebrowse.trl import close_environments, env_reward, environment_factory, prompt, sft_rows

TINY = "tiny"


def warm_up_rows(control: ControlClient, task: str, episodes: int, max_steps: int) -> list[dict[str, Any]]:
    """Scripted episodes of `task`, played through the door and exported from the book."""
    specs = [EpisodeSpec(task, seed=10_000 + index, options={"max_steps": max_steps}) for index in range(episodes)]
    played = rollout(control, specs, scripted.by_page, max_steps=max_steps, concurrency=2)
    ids = {episode.episode_id for episode in played}
    return [row for row in control.export_episodes(task_id=task) if row["episode_id"] in ids and row["success"]]


def tools_used(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({call["function"]["name"] for row in rows for message in row["messages"]
                   for call in message.get("tool_calls") or []})


def load_model(name: str, conversations: list[dict[str, Any]]) -> tuple[Any, Any]:
    if name == TINY:
        from safebrowse.trl.tiny import render, tiny_qwen3, tiny_tokenizer

        tokenizer = tiny_tokenizer(render(conversations))
        return tiny_qwen3(tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control-url", default="http://127.0.0.1:8001")
    parser.add_argument("--model", default=TINY, help="a Hugging Face model id, or 'tiny' (a random Qwen3 built here)")
    parser.add_argument("--task", default="miniwob.click-test")
    parser.add_argument("--tools", default=None,
                        help="comma-separated tools to offer (default: every tool; with the tiny model, the ones the "
                             "warm-up episodes used)")
    parser.add_argument("--max-steps", type=int, default=5, help="steps per episode")
    parser.add_argument("--warmup-episodes", type=int, default=16)
    parser.add_argument("--sft-epochs", type=int, default=10)
    parser.add_argument("--grpo-steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4, help="rollouts per prompt (one episode each)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    token = os.environ["SAFEBROWSE_CONTROL_TOKEN"]
    output = args.output_dir or tempfile.mkdtemp(prefix="safebrowse-trl-")
    on_cpu = not torch.cuda.is_available()
    with ControlClient(args.control_url, token) as control:
        rows = warm_up_rows(control, args.task, args.warmup_episodes, args.max_steps)
    print(f"warm-up: {len(rows)} recorded episodes of {args.task}")
    if args.tools:
        tools = args.tools.split(",")
    else:
        tools = tools_used(rows) if args.model == TINY else None
    environment = environment_factory(args.control_url, token, tools=tools, max_steps=args.max_steps)
    conversations = sft_rows(rows, environment)
    model, tokenizer = load_model(args.model, conversations)

    sft = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(conversations),
        args=SFTConfig(output_dir=f"{output}/sft", num_train_epochs=args.sft_epochs, per_device_train_batch_size=4,
                       learning_rate=3e-3 if args.model == TINY else 1e-5, lr_scheduler_type="constant",
                       assistant_only_loss=True, logging_steps=10, save_strategy="no", report_to="none",
                       bf16=args.bf16, use_cpu=on_cpu, max_length=8192),
    )
    sft.train()
    print(f"sft: {sft.state.global_step} steps, last loss {sft.state.log_history[-2].get('loss')}")

    prompts = [{"prompt": prompt(), "task_id": args.task, "seed": 20_000 + index}
               for index in range(max(8, args.grpo_steps * 2))]
    grpo = GRPOTrainer(
        model=sft.model, processing_class=tokenizer, train_dataset=Dataset.from_list(prompts),
        environment_factory=environment, reward_funcs=[env_reward],
        args=GRPOConfig(output_dir=f"{output}/grpo", max_steps=args.grpo_steps, num_generations=args.generations,
                        per_device_train_batch_size=args.generations, max_completion_length=256,
                        max_tool_calling_iterations=args.max_steps, temperature=0.7, logging_steps=1,
                        learning_rate=1e-4 if args.model == TINY else 1e-6, save_strategy="no", report_to="none",
                        bf16=args.bf16, use_cpu=on_cpu),
    )
    try:
        grpo.train()
    finally:
        close_environments()
    for entry in grpo.state.log_history:
        if "reward" in entry:
            print("grpo step", json.dumps({key: entry[key] for key in (
                "step", "reward", "tools/call_frequency", "tools/failure_frequency", "safebrowse/success")
                if key in entry}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
