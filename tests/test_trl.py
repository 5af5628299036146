"""TRL trains through both doors: `safebrowse.trl`'s environment against a live server, then a
supervised warm-start on exported episodes and a few GRPO steps of a tiny Qwen3.

The model's tool calls go through the real MCP door (the server's trajectories show
them), its rewards come from the control API, and TRL's own metrics agree with the
episode book. Nothing is downloaded: the model and its tokenizer are built here.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
from typing import Any

import pytest

from safebrowse import scripted
from safebrowse.client import ControlClient, EpisodeSpec, rollout
from safebrowse.trl import (
    CHANNELS,
    ResetError,
    SafebrowseEnvironment,
    ToolCallError,
    channel_reward,
    close_environments,
    env_reward,
    environment_factory,
    prompt,
    reward_breakdown,
    sft_rows,
    tool_names,
    tool_schemas,
)

from support.listener import closed_port
from support.live import LiveServer

TASK = "miniwob.click-test"
TRAINER_WORDS = ("reward", "success", "failure", "validator", "task_done", "terminated")


def control_of(live_server: LiveServer) -> ControlClient:
    return ControlClient(live_server.control_url, live_server.control_token)


def button_id(page: str) -> str:
    """The element id of the page's button, as the observation text lists it."""
    match = re.search(r"\[(\d+)\] button", page)
    assert match, page
    return match.group(1)


def test_every_door_tool_is_a_method_with_the_door_arguments(live_server: LiveServer) -> None:
    from mcp_server.tools import build_tools

    door = {name: agent_tool.tool for name, agent_tool in build_tools().items()}
    environment = environment_factory(live_server.control_url, live_server.control_token)
    assert tool_names(environment) == sorted(door)
    for listed in tool_schemas(environment):
        schema = listed["function"]
        tool = door[schema["name"]]
        parameters = schema["parameters"]
        assert set(parameters.get("properties", {})) == set(tool.input_schema.get("properties", {})), tool.name
        assert set(parameters.get("required", [])) == set(tool.input_schema.get("required", [])), tool.name
        assert schema["description"]
    with pytest.raises(ValueError, match="no tools"):
        environment_factory(live_server.control_url, live_server.control_token, tools=("click", "evaluate"))


def test_an_environment_plays_through_the_door_and_its_reward_comes_from_the_control_api(
        live_server: LiveServer) -> None:
    environment_class = environment_factory(live_server.control_url, live_server.control_token, max_steps=5)
    environment = environment_class()
    control = control_of(live_server)
    with pytest.raises(ValueError, match="task_id"):
        environment.reset(prompt=prompt())
    opening = environment.reset(prompt=prompt(), task_id=TASK, seed=3)
    assert opening.startswith("Goal: Click the button.\n\n")
    first = environment.episode_id
    assert first is not None

    answer = environment.click(id=button_id(opening))  # type: ignore[attr-defined]
    assert isinstance(answer, str) and answer
    with pytest.raises(ToolCallError, match="episode is over"):
        environment.click(id=button_id(opening))  # type: ignore[attr-defined]
    for text in (opening, answer):
        assert not any(word in text.lower() for word in TRAINER_WORDS), text

    state = control.get_episode(first)
    assert (state.success, state.step_index) == (True, 1)  # the refused second click is no step
    assert [step.tool for step in control.get_trajectory(first).steps] == ["click"]
    assert env_reward([environment]) == [control.get_episode(first).cumulative_reward]
    completion = channel_reward({"task_completion": 1.0})([environment])
    assert completion == [1.0]
    assert [set(step) >= set(CHANNELS) for step in reward_breakdown(environment)] == [True]

    second_opening = environment.reset(prompt=prompt(), task_id=TASK, seed=4)  # the previous episode is closed
    assert control.get_episode(first).status.value == "closed"
    second = environment.episode_id
    assert second is not None and second != first
    # The environment's one MCP client now acts as the second episode's agent, and only as it.
    environment.click(id=button_id(second_opening))  # type: ignore[attr-defined]
    assert [step.tool for step in control.get_trajectory(second).steps] == ["click"]
    assert [step.tool for step in control.get_trajectory(first).steps] == ["click"]
    close_environments()
    assert control.get_episode(second).status.value == "closed"
    with pytest.raises(ToolCallError, match="reset"):
        environment.click(id=button_id(second_opening))  # type: ignore[attr-defined]


def test_bad_rows_a_server_that_is_down_and_a_closed_episode_are_said_plainly(live_server: LiveServer) -> None:
    environment = environment_factory(live_server.control_url, live_server.control_token)()
    with pytest.raises(ResetError, match="404 unknown_task"):
        environment.reset(task_id="miniwob.no-such-task")
    down = environment_factory(f"http://127.0.0.1:{closed_port()}", live_server.control_token)()
    started = time.monotonic()
    with pytest.raises(ResetError, match="cannot be reached"):
        down.reset(task_id=TASK)
    assert time.monotonic() - started < 15

    opening = environment.reset(task_id=TASK, seed=7)
    control_of(live_server).close_episode(environment.episode_id or "")  # as the idle reaper would
    with pytest.raises(ToolCallError, match="did not reach the episode"):
        environment.click(id=button_id(opening))  # type: ignore[attr-defined]
    close_environments()


def test_a_vision_environment_returns_the_screenshot_with_the_text(live_server: LiveServer) -> None:
    environment = environment_factory(live_server.control_url, live_server.control_token, images=True)()
    environment.reset(task_id=TASK, seed=5)
    blocks = environment.observe(screenshot=True)  # type: ignore[attr-defined]
    assert [block["type"] for block in blocks] == ["image", "text"]
    assert blocks[0]["image"].size[0] > 0 and "button" in blocks[1]["text"]
    assert isinstance(environment.observe(), str)  # type: ignore[attr-defined]  # no screenshot asked: text
    close_environments()


def test_many_environments_play_at_once_from_threads(live_server: LiveServer) -> None:
    environment_class = environment_factory(live_server.control_url, live_server.control_token, max_steps=3)

    def play(seed: int) -> SafebrowseEnvironment:
        environment = environment_class()
        opening = environment.reset(task_id=TASK, seed=seed)
        environment.click(id=button_id(opening))  # type: ignore[attr-defined]
        return environment

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        environments = list(pool.map(play, range(20, 26)))
    assert len({environment.episode_id for environment in environments}) == 6
    assert env_reward(environments) == pytest.approx([environments[0]._control.get_episode(
        environment.episode_id or "").cumulative_reward for environment in environments])
    close_environments()


# -- a supervised warm-start, then GRPO, with a tiny Qwen3 -------------------------------------------


def tool_calls_of(completion: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls the model made in one rollout, as (name, arguments)."""
    calls = []
    for message in completion:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            arguments = function["arguments"]
            calls.append((function["name"], json.loads(arguments) if isinstance(arguments, str) else arguments))
    return calls


def exported_calls(row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The calls an exported episode's agent made after its first observation."""
    return tool_calls_of(row["messages"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sft_then_grpo_train_a_tiny_qwen3_through_both_doors(live_server: LiveServer) -> None:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer
    from trl.chat_template_utils import add_response_schema, parse_response

    from safebrowse.trl.tiny import render, tiny_qwen3, tiny_tokenizer

    torch.set_num_threads(1)
    control = control_of(live_server)
    started = time.monotonic()

    # Episodes played by the scripted policy through the MCP door, exported from the book.
    played = rollout(control, [EpisodeSpec(TASK, seed=seed, options={"max_steps": 3}) for seed in range(100, 116)],
                     scripted.by_page, max_steps=3, concurrency=2)
    assert all(episode.success for episode in played)
    ids = {episode.episode_id for episode in played}
    exported = [row for row in control.export_episodes(task_id=TASK) if row["episode_id"] in ids]
    assert len(exported) == len(played)

    class Recorded(environment_factory(live_server.control_url, live_server.control_token,  # type: ignore[misc]
                                       tools=("click",), max_steps=3)):
        """The environment, recording each call that reaches the door (instrumentation only)."""

        door_calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}

        def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
            if tool != "observe":
                Recorded.door_calls.setdefault(self.episode_id or "", []).append((tool, dict(arguments)))
            return super()._call(tool, arguments)

    supervised = sft_rows(exported, Recorded)
    tokenizer = tiny_tokenizer(render(supervised))
    model = tiny_qwen3(tokenizer)
    tools = tool_schemas(Recorded)
    add_response_schema(tokenizer)

    def greedy_call(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids_in = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True,
                                               return_dict=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids_in]), max_new_tokens=40, do_sample=False)[0, len(ids_in):]
        calls: list[dict[str, Any]] = parse_response(tokenizer, out.tolist(), prefix=ids_in, tools=tools).get(
            "tool_calls") or []
        return calls

    class UntilWellFormed(TrainerCallback):  # type: ignore[misc]
        """Stop supervised training a few epochs after the model first answers a page with a
        well-formed tool call (greedy), so that sampling at GRPO's temperature still makes them."""

        well_formed_at: int | None = None

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if UntilWellFormed.well_formed_at is None:
                model.eval()
                calls = greedy_call(exported[0]["messages"][:2])
                model.train()
                if calls and calls[0]["function"]["name"] == "click":
                    UntilWellFormed.well_formed_at = state.global_step
            elif state.global_step >= 2 * UntilWellFormed.well_formed_at:
                control.should_training_stop = True

    sft = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(supervised),
        callbacks=[UntilWellFormed()],
        args=SFTConfig(output_dir=str(live_server.server.settings.data_dir / "sft"), per_device_train_batch_size=4,
                       num_train_epochs=40, learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=5,
                       save_strategy="no", report_to="none", bf16=False, use_cpu=True, assistant_only_loss=True,
                       max_length=4096, dataloader_num_workers=0),
    )
    sft.train()
    assert UntilWellFormed.well_formed_at is not None, "no well-formed tool call after supervised training"

    # The warmed-up model on held-out seeds, through the real doors.
    held_out = Recorded()
    successes = 0
    model.eval()
    for seed in range(900, 904):
        opening = held_out.reset(task_id=TASK, seed=seed)
        messages = [*prompt()[:1], {"role": "user", "content": opening}]
        for call in greedy_call(messages)[:1]:
            try:
                getattr(held_out, call["function"]["name"])(**call["function"]["arguments"])
            except (ToolCallError, TypeError, AttributeError):
                pass
        successes += control.get_episode(held_out.episode_id or "").success
    model.train()
    print(f"supervised model: well-formed tool calls after {UntilWellFormed.well_formed_at} steps; "
          f"held-out success {successes}/4")

    # GRPO against the live server: every rollout is an episode; the reward is the server's.
    scored: list[tuple[list[str], list[float], list[list[dict[str, Any]]]]] = []

    def server_reward(environments: list[Recorded], completions: list[Any], **kwargs: Any) -> list[float]:
        rewards = env_reward(environments, **kwargs)
        scored.append(([environment.episode_id or "" for environment in environments], rewards, completions))
        return rewards

    rows = [{"prompt": prompt(), "task_id": TASK, "seed": 2000 + index} for index in range(8)]
    grpo = GRPOTrainer(
        model=sft.model, processing_class=tokenizer, train_dataset=Dataset.from_list(rows),
        environment_factory=Recorded, reward_funcs=[server_reward],
        args=GRPOConfig(output_dir=str(live_server.server.settings.data_dir / "grpo"), per_device_train_batch_size=4,
                        num_generations=4, max_steps=2, max_completion_length=48, max_tool_calling_iterations=3,
                        learning_rate=1e-4, logging_steps=1, save_strategy="no", report_to="none", bf16=False,
                        use_cpu=True, temperature=0.7),
    )
    grpo.train()
    close_environments()

    assert len(scored) == 2
    logged = [entry for entry in grpo.state.log_history if "reward" in entry]
    assert len(logged) == 2
    book = {row["episode_id"]: row for row in control.export_episodes(task_id=TASK)}
    for (episode_ids, rewards, completions), logs in zip(scored, logged):
        assert len(set(episode_ids)) == len(episode_ids) == 4  # one episode per rollout
        made = 0
        for episode_id, reward, completion in zip(episode_ids, rewards, completions):
            state = control.get_episode(episode_id)
            assert reward == state.cumulative_reward  # the server's return, read back independently
            reached = Recorded.door_calls.get(episode_id, [])
            assert exported_calls(book[episode_id]) == reached  # every call that reached the door is in the book
            model_calls = tool_calls_of(completion)
            assert all(call in model_calls for call in reached)
            made += len(model_calls)
        assert logs["reward"] == pytest.approx(sum(rewards) / len(rewards))
        assert logs["tools/call_frequency"] == pytest.approx(made / len(completions))
    trained = [episode_id for episode_ids, _, _ in scored for episode_id in episode_ids]
    calls = [call for episode_id in trained for call in Recorded.door_calls.get(episode_id, [])]
    assert calls, "no tool call of the model reached the door"

    # What the model was shown, across the whole run: no reward, success or failure word.
    shown = [message["content"] for _, _, completions in scored for completion in completions
             for message in completion if message["role"] == "tool"]
    shown += [row["messages"][1]["content"] for row in control.export_episodes(task_id=TASK)
              if row["episode_id"] in set(trained)]
    assert shown
    for text in shown:
        assert not any(word in str(text).lower() for word in TRAINER_WORDS), text
    # Every episode the run played is closed.
    for episode_id in [*trained, held_out.episode_id or ""]:
        assert control.get_episode(episode_id).status.value == "closed", episode_id

    print(f"tool calls made in GRPO: {len(calls)} ({sorted(set(name for name, _ in calls))}) over "
          f"{len(trained)} episodes; rewards {[round(r, 3) for _, rewards, _ in scored for r in rewards]}; "
          f"supervised model success on held-out seeds {successes}/4; wall time {time.monotonic() - started:.1f} s")
