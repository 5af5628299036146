"""BrowserGym's BrowserEnv several at a time: each env on a thread of its own for its whole life.

Playwright's sync API (which BrowserEnv uses) is bound to the thread that started
it, so a trainer that runs G BrowserEnvs at once gives each its own thread and its
own Playwright (`bench.browsergym_side.thread_playwright`). `EnvThread` is that
thread: every call on its env is a job submitted to it. `reset_group` resets G
of them at once, as a GRPO trainer resets a group; `drive_fills` lets N of them
act back to back on miniwob.enter-text for a fixed window, as `bench.concurrency`
does on safebrowse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench import cpu
from bench.browsergym_side import make_env, observation_dict, thread_playwright

T = TypeVar("T")

THREAD_NAME = "browsergym-env"
FILL_TEXTS = ("left", "right")


class EnvThread:
    """One BrowserEnv of one task, created, used and closed on one thread of its own."""

    def __init__(self, task_id: str, variant: str = "default", index: int = 0) -> None:
        self.task_id = task_id
        self._resources = ExitStack()  # the thread's Playwright, entered and left on the thread
        self._env: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{THREAD_NAME}-{index}")
        self._executor.submit(self._open, variant).result()

    def _open(self, variant: str) -> None:
        self._resources.enter_context(thread_playwright())
        self._env = make_env(self.task_id, variant)

    def submit(self, job: Callable[[Any], T]) -> Future[T]:
        """Run `job(env)` on the env's thread."""
        return self._executor.submit(job, self._env)

    def close(self) -> None:
        """Close the env (its two Chromiums) and stop the thread's Playwright, on its thread."""

        def close_on_thread() -> None:
            try:
                if self._env is not None:
                    self._env.close()
            finally:
                self._resources.close()

        try:
            self._executor.submit(close_on_thread).result()
        finally:
            self._executor.shutdown(wait=True)


def open_envs(task_id: str, count: int, variant: str = "default") -> list[EnvThread]:
    """`count` env threads of `task_id`, started one after another (no browser launches yet)."""
    envs: list[EnvThread] = []
    try:
        for index in range(count):
            envs.append(EnvThread(task_id, variant, index))
    except BaseException:
        close_envs(envs)
        raise
    return envs


def close_envs(envs: Sequence[EnvThread]) -> None:
    for env in envs:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - best effort: the others still get closed
            pass


def _timed_reset(seed: int) -> Callable[[Any], tuple[float, dict[str, Any]]]:
    def reset(env: Any) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        obs, _info = env.reset(seed=seed)
        return time.perf_counter() - started, obs

    return reset


def reset_group(envs: Sequence[EnvThread], first_seed: int) -> tuple[float, list[float], list[str]]:
    """Reset every env at once (seeds `first_seed`, `first_seed + 1`, ...): the time until
    all hold their first observation, each env's own reset time, and each goal."""
    started = time.perf_counter()
    futures = [env.submit(_timed_reset(first_seed + k)) for k, env in enumerate(envs)]
    results = [future.result() for future in futures]
    group_s = time.perf_counter() - started
    return group_s, [reset_s for reset_s, _ in results], [str(obs.get("goal") or "") for _, obs in results]


@dataclass
class FillWindow:
    """N BrowserEnvs filling a textbox back to back within one measured window."""

    parallel: int
    seconds: float
    actions: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    cpu: cpu.CpuSample | None = None

    @property
    def actions_per_second(self) -> float:
        return self.actions / self.seconds if self.seconds > 0 else float("nan")


def _textbox(obs: dict[str, Any]) -> str:
    view = observation_dict(obs)
    textbox = next((e["id"] for e in view["elements"] if e["role"] == "textbox"), None)
    if textbox is None:
        raise RuntimeError("no textbox to fill on the page")
    return str(textbox)


def _fill_until(textbox: str, start: float, deadline: float) -> Callable[[Any], tuple[list[float], int]]:
    """Step `fill` back to back until the deadline; latencies of steps that ended in [start, deadline]."""

    def drive(env: Any) -> tuple[list[float], int]:
        counted: list[float] = []
        errors = 0
        turn = 0
        while time.monotonic() < deadline:
            sent = time.monotonic()
            obs, _reward, terminated, truncated, _info = env.step(f"fill({textbox!r}, {FILL_TEXTS[turn % 2]!r})")
            done = time.monotonic()
            turn += 1
            if obs.get("last_action_error") or terminated or truncated:
                errors += 1
            elif start <= done <= deadline:
                counted.append(done - sent)
        return counted, errors

    return drive


def drive_fills(envs: Sequence[EnvThread], seed: int, seconds: float, warmup: float,
                server_pid: int | None = None) -> FillWindow:
    """Reset every env (not measured), then let all fill back to back; count the window
    [warm-up end, deadline] and the CPU every process of this tree spent in it."""
    resets = [env.submit(_timed_reset(seed + k)) for k, env in enumerate(envs)]
    textboxes = [_textbox(future.result()[1]) for future in resets]
    start = time.monotonic() + warmup
    deadline = start + seconds
    drives = [env.submit(_fill_until(textbox, start, deadline)) for env, textbox in zip(envs, textboxes)]
    time.sleep(max(0.0, start - time.monotonic()))
    before = cpu.sample(server_pid)
    time.sleep(max(0.0, deadline - time.monotonic()))
    after = cpu.sample(server_pid)
    wait(drives)
    window = FillWindow(len(envs), seconds, cpu=cpu.difference(before, after))
    for future in drives:
        latencies, errors = future.result()
        window.latencies_s += latencies
        window.errors += errors
    window.actions = len(window.latencies_s)
    return window
