"""Admission control for the agent door: how fast one agent may call, and how many calls may wait.

The actions of one episode run one after another on its browser worker, so an agent that
sends calls faster than they run only builds a queue, and a crowd of connections can hold
the door open for nobody else. Three bounds keep both small:

- a request rate per episode (a token bucket: `burst` requests at once, then
  `requests_per_second` on average);
- requests in flight per episode;
- requests in flight on the whole door, whoever sends them. This one is counted before the
  bearer token is checked, so callers without a token are bounded too.

Refusals are JSON, like the door's 401, with a status and a `Retry-After` a client can act
on: 429 when one episode's agent is over its share, 503 when the door as a whole is full.
Nothing is queued: a refused request never reached the tools, so it is not a step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.auth import AGENT_PORT_STATE, send_json

# Buckets of episodes that have been quiet this long are dropped once there are many.
IDLE_BUCKET_S = 60.0
PRUNE_ABOVE = 1_024


class DoorLimits(BaseModel):
    """The agent door's admission bounds; an operator sets them under `mcp_limits`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_second: float = Field(
        default=50.0, gt=0, le=100_000, description="Sustained requests per second for one episode's agent.")
    burst: int = Field(default=100, ge=1, le=100_000, description="Requests one episode's agent may send at once.")
    max_in_flight_per_episode: int = Field(
        default=8, ge=1, le=10_000, description="Requests of one episode's agent being served or waiting at once.")
    max_in_flight: int = Field(
        default=256, ge=1, le=100_000, description="Requests being served at once on the whole door.")


def _retry_after(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


class DoorCapacity:
    """Refuses requests beyond `max_in_flight` on the whole door (503)."""

    def __init__(self, app: ASGIApp, limits: DoorLimits) -> None:
        self.app = app
        self.limit = limits.max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_json(send, 503, {
                "error": "server_busy",
                "detail": f"the door is serving {self.limit} requests, its limit; retry shortly",
            }, headers=(_retry_after(1),))
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


class EpisodeRateLimit:
    """Refuses an episode's requests beyond its rate or its share of requests in flight (429).

    Runs behind the bearer check, so only episodes that exist get a bucket.
    """

    def __init__(self, app: ASGIApp, limits: DoorLimits) -> None:
        self.app = app
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        port = scope.get("state", {}).get(AGENT_PORT_STATE) if scope["type"] == "http" else None
        if port is None:
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        bucket = self._bucket(port.episode_id, now)
        limits = self.limits
        if bucket.in_flight >= limits.max_in_flight_per_episode:
            await send_json(send, 429, {
                "error": "too_many_requests",
                "detail": f"this episode already has {limits.max_in_flight_per_episode} requests in flight; "
                          "wait for their answers before sending more",
            }, headers=(_retry_after(1),))
            return
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / limits.requests_per_second
            await send_json(send, 429, {
                "error": "rate_limited",
                "detail": f"more than {limits.requests_per_second:g} requests per second for this episode; "
                          "slow down",
            }, headers=(_retry_after(wait),))
            return
        bucket.tokens -= 1
        bucket.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            bucket.in_flight -= 1

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.limits.burst), updated=now)
        else:
            elapsed = now - bucket.updated
            bucket.tokens = min(float(self.limits.burst), bucket.tokens + elapsed * self.limits.requests_per_second)
            bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.in_flight == 0 and now - b.updated > IDLE_BUCKET_S]:
            del self._buckets[key]
