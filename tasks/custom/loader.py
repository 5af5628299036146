"""Find custom tasks in folders and turn them into registry specs.

A task folder holds a `task.py` that defines one or more `CustomTask`
subclasses, and an `assets/` folder served under `/tasks/<name>/`. The built-in
tasks are loaded from this package by the same code as an operator's folder
(`SAFEBROWSE_TASKS_DIR`), so both behave alike.

A folder that cannot be loaded is logged with its path and the reason, kept in
`load_errors`, and skipped; the other folders still load. Only the server
operator chooses these folders: nothing a client sends can add task code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from tasks.custom.base import NAME_PATTERN, CustomTask
from tasks.registry import TaskContext, TaskSpec

logger = logging.getLogger(__name__)

TASK_FILE = "task.py"
PROBE_ORIGIN = "http://127.0.0.1:1"


@dataclass(frozen=True)
class TaskLoadError:
    """A folder that was skipped, and why."""

    path: str
    reason: str


class TaskFolderError(Exception):
    """Why one task folder cannot be used; the message is written for the operator."""


load_errors: list[TaskLoadError] = []
"""Every folder skipped by the latest load of each root, for the server to report."""
_errors_lock = threading.Lock()
_builtin_lock = threading.RLock()
_builtin_cache: list[TaskSpec] | None = None


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent / "builtin"


def load_folder(root: Path, reserved_ids: set[str] | None = None) -> list[TaskSpec]:
    """Specs for every loadable task folder directly under `root`.

    `reserved_ids` are ids already taken (the built-in tasks when loading an
    operator folder); a folder declaring one of them is skipped, not overriding.
    """
    root = Path(root).expanduser().resolve()
    taken = set(reserved_ids if reserved_ids is not None else _builtin_ids(root))
    specs: list[TaskSpec] = []
    errors: list[TaskLoadError] = []
    if not root.is_dir():
        errors.append(TaskLoadError(str(root), "task folder does not exist or is not a directory"))
    else:
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            try:
                loaded = load_task_folder(folder)
                ids = [spec.id for spec in loaded]
                clash = next((i for i in ids if i in taken or ids.count(i) > 1), None)
                if clash is not None:
                    raise TaskFolderError(f"task id {clash!r} is already registered")
                taken.update(ids)
                specs.extend(loaded)
            except TaskFolderError as error:
                errors.append(TaskLoadError(str(folder), str(error)))
    for skipped in errors:
        logger.error("skipping custom task folder %s: %s", skipped.path, skipped.reason)
    _replace_errors(root, errors)
    return specs


def builtin_specs() -> list[TaskSpec]:
    """The tasks shipped in `tasks/custom/builtin`. A broken one is a bug: it raises."""
    global _builtin_cache
    with _builtin_lock:
        if _builtin_cache is None:
            specs = load_folder(builtin_dir(), reserved_ids=set())
            broken = [e for e in load_errors if _under(e.path, builtin_dir())]
            if broken:
                raise RuntimeError(
                    "built-in custom tasks failed to load: " + "; ".join(f"{e.path}: {e.reason}" for e in broken)
                )
            # The built-in pages share one stylesheet, served once for all of them.
            shared = ("/tasks-shared/", shared_assets_dir())
            _builtin_cache = [replace(spec, asset_mounts=(*spec.asset_mounts, shared)) for spec in specs]
        return list(_builtin_cache)


def shared_assets_dir() -> Path:
    """Assets the built-in tasks share, served at /tasks-shared/."""
    return Path(__file__).resolve().parent / "shared_assets"


def load_task_folder(folder: Path) -> list[TaskSpec]:
    """Specs for the task classes in one folder; raises TaskFolderError with the reason."""
    task_file = folder / TASK_FILE
    if not task_file.is_file():
        raise TaskFolderError(f"no {TASK_FILE} in the folder")
    module = _import(task_file)
    classes = [
        value for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, CustomTask) and value is not CustomTask
        and value.__module__ == module.__name__ and not inspect.isabstract(value)
        and "name" in vars(value)
    ]
    if not classes:
        raise TaskFolderError(f"{TASK_FILE} defines no CustomTask subclass with a `name`")
    return [_spec(task_class, folder) for task_class in classes]


def _import(task_file: Path) -> ModuleType:
    digest = hashlib.sha1(str(task_file.resolve()).encode()).hexdigest()[:12]
    module_name = f"safebrowse_custom_task_{digest}"
    import_spec = importlib.util.spec_from_file_location(module_name, task_file)
    if import_spec is None or import_spec.loader is None:
        raise TaskFolderError(f"cannot import {task_file}")
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module
    try:
        import_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - any failure in operator code is reported, not raised
        sys.modules.pop(module_name, None)
        raise TaskFolderError(f"importing {TASK_FILE} failed: {type(error).__name__}: {error}") from error
    return module


def _spec(task_class: type[CustomTask], folder: Path) -> TaskSpec:
    name = vars(task_class).get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TaskFolderError(f"{task_class.__name__}.name must match {NAME_PATTERN.pattern}, got {name!r}")
    description = getattr(task_class, "description", None)
    if not isinstance(description, str) or not description.strip():
        raise TaskFolderError(f"{task_class.__name__}.description must be a non-empty string")
    difficulties = task_class.difficulties
    if not difficulties or not all(isinstance(d, str) and d for d in difficulties):
        raise TaskFolderError(f"{task_class.__name__}.difficulties must be non-empty strings")
    if task_class.default_difficulty not in difficulties:
        raise TaskFolderError(
            f"{task_class.__name__}.default_difficulty {task_class.default_difficulty!r} is not in {list(difficulties)}"
        )
    if not task_class.variants:
        raise TaskFolderError(f"{task_class.__name__}.variants must not be empty")
    assets = (folder / task_class.assets_dir).resolve()
    if not assets.is_dir():
        raise TaskFolderError(f"no {task_class.assets_dir}/ folder next to {TASK_FILE}")
    if assets == folder.resolve() or (assets / TASK_FILE).exists():
        raise TaskFolderError(f"{task_class.assets_dir}/ must not contain {TASK_FILE}")
    if not (assets / task_class.start_page).is_file():
        raise TaskFolderError(f"start page {task_class.assets_dir}/{task_class.start_page} is missing")
    _probe(task_class)

    def factory(context: TaskContext) -> CustomTask:
        return task_class(context)

    return TaskSpec(
        id=task_class.get_task_id(),
        family="custom",
        description=description.strip(),
        factory=factory,
        difficulties=tuple(difficulties),
        secret_selector=task_class.secret_selector,
        extra_origins=tuple(task_class.extra_origins),
        hints=tuple(task_class.hints),
        asset_mounts=((f"/tasks/{name}/", assets),),
    )


def _probe(task_class: type[CustomTask]) -> None:
    """Build each difficulty once with seed 0, so a broken task is caught at start, not mid-run."""
    for difficulty in task_class.difficulties:
        try:
            task = task_class(TaskContext(seed=0, asset_origin=PROBE_ORIGIN, difficulty=difficulty))
            goal = task.goal()
            task.page_data()
        except Exception as error:  # noqa: BLE001
            raise TaskFolderError(
                f"{task_class.__name__} fails to build at difficulty {difficulty!r}: {type(error).__name__}: {error}"
            ) from error
        if not isinstance(goal, str) or not goal.strip():
            raise TaskFolderError(f"{task_class.__name__}.goal() must return a non-empty string")


def _builtin_ids(root: Path) -> set[str]:
    if root == builtin_dir():
        return set()
    return {spec.id for spec in builtin_specs()}


def _replace_errors(root: Path, errors: list[TaskLoadError]) -> None:
    """Keep only the latest load's errors for this root, so reloading does not pile them up."""
    with _errors_lock:
        kept = [e for e in load_errors if not _under(e.path, root)]
        load_errors[:] = kept + errors


def _under(path: str, root: Path) -> bool:
    """The error is about `root` itself or one of its task folders."""
    return Path(path) == root or Path(path).parent == root


__all__ = ["TaskFolderError", "TaskLoadError", "builtin_dir", "builtin_specs", "load_folder",
           "load_errors", "load_task_folder"]
