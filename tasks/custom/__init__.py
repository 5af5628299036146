"""Custom tasks: written in Python on BrowserGym's task interface, with static pages.

- `CustomTask`, `Verdict`, `Call`, `normalise`: the API a task is written with
  (see `tasks.custom.base` and docs/tasks.md).
- `builtin_specs()`: the tasks shipped in `tasks/custom/builtin/`.
- `load_folder(path)`: the tasks in an operator's folder (`SAFEBROWSE_TASKS_DIR`).
- `load_errors`: folders skipped at load, each with its path and reason.
"""

from tasks.custom.base import Call, CustomTask, Verdict, normalise
from tasks.custom.loader import (
    TaskFolderError,
    TaskLoadError,
    builtin_dir,
    builtin_specs,
    load_errors,
    load_folder,
    load_task_folder,
)

__all__ = [
    "Call",
    "CustomTask",
    "TaskFolderError",
    "TaskLoadError",
    "Verdict",
    "builtin_dir",
    "builtin_specs",
    "load_errors",
    "load_folder",
    "load_task_folder",
    "normalise",
]
