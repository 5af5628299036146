"""MiniWoB++ tasks, as BrowserGym registers them, served from the `miniwob` package."""

from __future__ import annotations

from browsergym.miniwob import ALL_MINIWOB_TASKS
from browsergym.miniwob.base import AbstractMiniwobTask

from tasks.registry import TaskContext, TaskSpec

MINIWOB_PREFIX = "/miniwob/"


def _factory(task_class: type[AbstractMiniwobTask]):
    def build(context: TaskContext) -> AbstractMiniwobTask:
        # MiniWoB pages load ../core/*.js, so the package's whole html/ folder is
        # mounted at the asset server's root and the tasks live under /miniwob/.
        return task_class(seed=context.seed, base_url=context.asset_origin + MINIWOB_PREFIX)

    return build


def specs() -> list[TaskSpec]:
    return [
        TaskSpec(
            id=task_class.get_task_id(),
            family="miniwob",
            description=task_class.desc,
            factory=_factory(task_class),
        )
        for task_class in ALL_MINIWOB_TASKS
    ]
