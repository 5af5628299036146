"""The server's suites: each by its id (for the operator) and by its agent token (for the door).

A suite's agent token opens the suite's `SuiteSession`, which is an `AgentPort` like an
episode's session: the agent door resolves it the same way and never learns it walks
a suite. The episodes' own agent tokens are never handed out for suite episodes.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from engine.suites.plan import SuitePlan
from engine.suites.report import SuiteReport
from engine.suites.session import SuiteRoom, SuiteSession


class SuiteNotFoundError(KeyError):
    def __str__(self) -> str:
        return f"no suite {self.args[0]!r}"


@dataclass(frozen=True)
class OpenedSuite:
    """A suite that has started: its id, its agent token, and the door that serves it (None: the
    server's own; a cluster's front names the door of the browser node that runs it)."""

    suite_id: str
    agent_token: str
    mcp_url: str | None = None


class SuiteDesk:
    def __init__(self, room: SuiteRoom) -> None:
        self._room = room
        self.takes_new_suites = True
        """False where no HTTP agent could reach a new suite (a stdio process shows its own suite only)."""
        self._suites: dict[str, SuiteSession] = {}
        self._tokens: dict[str, str] = {}

    async def open(self, plan: SuitePlan, suite: str,
                   on_report: Callable[[SuiteReport], None] | None = None) -> tuple[SuiteSession, str]:
        """Start a suite (its first episode is set up now); the session and its agent token."""
        session = SuiteSession(self._room, plan, "su_" + secrets.token_hex(8), suite, on_report)
        await session.start()
        token = secrets.token_urlsafe(32)
        self._suites[session.suite_id] = session
        self._tokens[token] = session.suite_id
        return session, token

    async def start(self, plan: SuitePlan, suite: str) -> OpenedSuite:
        """Start a suite for an HTTP agent (`POST /v1/suites`)."""
        session, token = await self.open(plan, suite)
        return OpenedSuite(session.suite_id, token)

    async def report_of(self, suite_id: str) -> SuiteReport:
        """The suite's report so far; raises `SuiteNotFoundError`."""
        return self.get(suite_id).report()

    def get(self, suite_id: str) -> SuiteSession:
        try:
            return self._suites[suite_id]
        except KeyError:
            raise SuiteNotFoundError(suite_id) from None

    def sessions(self) -> list[SuiteSession]:
        return list(self._suites.values())

    def agent_port(self, token: str) -> SuiteSession | None:
        """The suite an agent token opens, or None."""
        for known, suite_id in self._tokens.items():
            if hmac.compare_digest(known, token):
                return self._suites.get(suite_id)
        return None

    async def stop(self) -> None:
        """The server stops: every unfinished suite keeps what was done, marked incomplete."""
        for session in self._suites.values():
            await session.stop("shutdown")


__all__ = ["OpenedSuite", "SuiteDesk", "SuiteNotFoundError", "SuiteRoom"]
