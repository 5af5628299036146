"""The task registry: task ids to specs that build BrowserGym task objects."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from browsergym.core.task import AbstractBrowserTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskContext:
    """What a task factory gets to build one episode's task object."""

    seed: int
    asset_origin: str
    difficulty: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A task as the server knows it: how to build it and what it declares."""

    id: str
    family: str
    description: str
    factory: Callable[[TaskContext], AbstractBrowserTask]
    difficulties: tuple[str, ...] = ()
    secret_selector: str | None = None
    extra_origins: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    asset_mounts: tuple[tuple[str, Path], ...] = field(default=())
    # The page (a path on the asset server) the task's setup starts on, when it is the
    # same for every seed: a worker may load it into a warm context before it is asked.
    preload_path: str | None = None


class UnknownTaskError(KeyError):
    def __init__(self, task_id: str, suggestions: list[str]) -> None:
        self.task_id = task_id
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown task {task_id!r}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class TaskRegistry:
    def __init__(self, specs: Iterable[TaskSpec] = ()) -> None:
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: TaskSpec) -> None:
        if spec.id in self._specs:
            raise ValueError(f"task id {spec.id!r} is registered twice")
        self._specs[spec.id] = spec

    def get(self, task_id: str) -> TaskSpec:
        try:
            return self._specs[task_id]
        except KeyError:
            raise UnknownTaskError(task_id, self.suggest(task_id)) from None

    def suggest(self, task_id: str, limit: int = 5) -> list[str]:
        ids = list(self._specs)
        close = difflib.get_close_matches(task_id, ids, n=limit, cutoff=0.5)
        if not close:
            bare = task_id.split(".")[-1]
            close = [i for i in ids if bare and bare in i][:limit]
        return close

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._specs

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


def default_registry(extra_tasks_dir: str | None = None) -> TaskRegistry:
    """Every MiniWoB++ task, the built-in custom tasks, and an operator's folder if given."""
    from tasks import custom, miniwob

    registry = TaskRegistry(miniwob.specs())
    for spec in custom.builtin_specs():
        registry.add(spec)
    if extra_tasks_dir:
        for spec in custom.load_folder(Path(extra_tasks_dir)):
            registry.add(spec)
    return registry
