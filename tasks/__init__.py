"""What the agent must do and how it is judged.

Task code lives only here (and in an operator's mounted folder); nothing a
client sends at run time can add or change it. `default_registry()` gives every
MiniWoB++ task BrowserGym registers plus the built-in custom tasks.
"""

from tasks.registry import TaskContext, TaskRegistry, TaskSpec, UnknownTaskError, default_registry

__all__ = ["TaskContext", "TaskRegistry", "TaskSpec", "UnknownTaskError", "default_registry"]
