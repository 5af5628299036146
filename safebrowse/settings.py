"""Server settings: flags, then `SAFEBROWSE_*` environment variables, then defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from engine.config import EngineConfig


def default_token_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "safebrowse" / "control-token"


class ServerSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Public (agent) host for the MCP door.")
    mcp_port: int = Field(default=8000, ge=0, le=65535)
    control_host: str = Field(default="127.0.0.1", description="Private (trainer) host for the control API.")
    control_port: int = Field(default=8001, ge=0, le=65535)
    control_token: str | None = Field(default=None, description="Generated at start when unset.")
    token_file: Path = Field(default_factory=default_token_file)
    public_mcp_url: str | None = Field(default=None, description="The MCP URL handed to agents; derived when unset.")
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @classmethod
    def from_env(cls, **overrides: object) -> "ServerSettings":
        env = os.environ
        values: dict[str, object] = {}
        for key, name in (("host", "SAFEBROWSE_HOST"), ("control_host", "SAFEBROWSE_CONTROL_HOST"),
                          ("control_token", "SAFEBROWSE_CONTROL_TOKEN"),
                          ("public_mcp_url", "SAFEBROWSE_PUBLIC_MCP_URL"), ("token_file", "SAFEBROWSE_TOKEN_FILE")):
            if env.get(name):
                values[key] = env[name]
        for key, name in (("mcp_port", "SAFEBROWSE_MCP_PORT"), ("control_port", "SAFEBROWSE_CONTROL_PORT")):
            if env.get(name):
                values[key] = int(env[name])
        engine_values: dict[str, object] = {}
        for key, name in (("workers", "SAFEBROWSE_WORKERS"), ("chromium_path", "SAFEBROWSE_CHROMIUM"),
                          ("extra_tasks_dir", "SAFEBROWSE_TASKS_DIR"),
                          ("idle_timeout_s", "SAFEBROWSE_IDLE_TIMEOUT_S"),
                          ("max_open_episodes", "SAFEBROWSE_MAX_OPEN_EPISODES")):
            if env.get(name):
                engine_values[key] = env[name]
        engine_overrides = overrides.pop("engine", None)
        engine = EngineConfig(**{**engine_values, **(engine_overrides or {})})  # type: ignore[arg-type]
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}, "engine": engine})
