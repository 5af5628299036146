"""A target of `bench.loops`: what was promised, what this run measured, and whether it was met."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return "NOT MEASURED" if self.met is None else ("met" if self.met else "NOT MET")


def targets_block(targets: Sequence[Target]) -> list[str]:
    """The final block: one line per target, its verdict first so a reader scans one column."""
    if not targets:
        return ["targets: none measured in this run (shapes or BrowserEnv left out)"]
    width = max(len(target.name) for target in targets)
    return ["targets:"] + [f"  {target.verdict:<12}  {target.name:<{width}}  {target.measured}" for target in targets]
