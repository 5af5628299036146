"""Suites on a cluster: each runs whole on one browser node, behind that node's door.

A suite walks one agent token through its episodes in order, so the token must open
every one of them where the agent connects. The front starts the suite on the least
loaded node with room (`BrowserNode.open_suite`); its episodes are created there one
after another, their records reach the front's book as any episode's do, and the
report is read from the node (`BrowserNode.suite_report`). If the node is lost, the
last report the front read stays, marked incomplete (`node_lost`).
"""

from __future__ import annotations

from ray.exceptions import RayActorError, RayTaskError

from cluster.fleet import Node
from cluster.front import ClusterRoom
from engine.episode_errors import EpisodeSetupError, NoCapacityError, TooManyEpisodesError
from engine.suites import SuitePlan, SuiteReport
from engine.suites.desk import OpenedSuite, SuiteNotFoundError

NODE_LOST = "node_lost"


class ClusterSuites:
    """The front's `control_api.room.SuiteService`."""

    takes_new_suites = True

    def __init__(self, room: ClusterRoom) -> None:
        self._room = room
        self._nodes: dict[str, Node] = {}
        self._last: dict[str, SuiteReport] = {}

    async def start(self, plan: SuitePlan, suite: str) -> OpenedSuite:
        node = self._room.fleet.pick()
        node.reserved += 1
        try:
            suite_id, token = await node.actor.open_suite.remote(plan, suite)
        except RayActorError:
            await self._room.fleet.lose(node, "its actor died")
            raise NoCapacityError("the browser node chosen for the suite was lost; retry") from None
        except RayTaskError as error:
            if isinstance(error.cause, TooManyEpisodesError | EpisodeSetupError):
                raise error.cause from None
            raise
        finally:
            node.reserved -= 1
        self._nodes[suite_id] = node
        return OpenedSuite(suite_id, token, node.info.mcp_url)

    async def report_of(self, suite_id: str) -> SuiteReport:
        node = self._nodes.get(suite_id)
        if node is None:
            raise SuiteNotFoundError(suite_id)
        if node.alive:
            try:
                report: SuiteReport = await node.actor.suite_report.remote(suite_id)
            except RayActorError:
                await self._room.fleet.lose(node, "its actor died")
            else:
                self._last[suite_id] = report
                return report
        last = self._last.get(suite_id)
        if last is None:
            raise SuiteNotFoundError(suite_id)
        return last.model_copy(update={"complete": False, "incomplete_reason": NODE_LOST})


__all__ = ["ClusterSuites"]
