"""Suites: one agent walked through a planned sequence of episodes, scored for the operator only.

- `plan`: which episodes a suite runs (tasks, seeds), checked before anything starts;
- `report`: the operator's report (per episode, per task with a Wilson interval, overall);
- `session`: `SuiteSession`, an `AgentPort` over the sequence, so the agent door needs no
  knowledge of suites;
- `desk`: the server's suites by id and by agent token.
"""

from engine.suites.desk import SuiteDesk, SuiteRoom
from engine.suites.plan import MAX_EPISODES, PlannedEpisode, SuitePlan, SuitePlanError, plan_suite
from engine.suites.report import SuiteReport, wilson_interval
from engine.suites.session import SUITE_ID_KEY, SuiteSession

__all__ = [
    "MAX_EPISODES",
    "SUITE_ID_KEY",
    "PlannedEpisode",
    "SuiteDesk",
    "SuitePlan",
    "SuitePlanError",
    "SuiteReport",
    "SuiteRoom",
    "SuiteSession",
    "plan_suite",
    "wilson_interval",
]
