"""Server settings: flags, then `SAFEBROWSE_*` environment variables, then an optional
TOML file (`--config` or `SAFEBROWSE_CONFIG`), then defaults.

The TOML file mirrors the fields below; engine settings go under `[engine]`:

    host = "0.0.0.0"
    mcp_port = 8000
    [engine]
    workers = 4
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine.config import EngineConfig
from mcp_server.limits import DoorLimits


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
    mcp_limits: DoorLimits = Field(default_factory=DoorLimits, description="Rate and capacity bounds of the MCP door.")

    @classmethod
    def from_env(cls, config_file: str | Path | None = None, **overrides: object) -> "ServerSettings":
        env = os.environ
        file_values = _read_toml(config_file or env.get("SAFEBROWSE_CONFIG"))
        file_engine = file_values.pop("engine", {})
        values: dict[str, object] = dict(file_values)
        for key, name in (("host", "SAFEBROWSE_HOST"), ("control_host", "SAFEBROWSE_CONTROL_HOST"),
                          ("control_token", "SAFEBROWSE_CONTROL_TOKEN"),
                          ("public_mcp_url", "SAFEBROWSE_PUBLIC_MCP_URL"), ("token_file", "SAFEBROWSE_TOKEN_FILE")):
            if env.get(name):
                values[key] = env[name]
        for key, name in (("mcp_port", "SAFEBROWSE_MCP_PORT"), ("control_port", "SAFEBROWSE_CONTROL_PORT")):
            if env.get(name):
                values[key] = int(env[name])
        engine_values: dict[str, object] = dict(file_engine)
        for key, name in (("workers", "SAFEBROWSE_WORKERS"), ("chromium_path", "SAFEBROWSE_CHROMIUM"),
                          ("extra_tasks_dir", "SAFEBROWSE_TASKS_DIR"),
                          ("idle_timeout_s", "SAFEBROWSE_IDLE_TIMEOUT_S"),
                          ("max_open_episodes", "SAFEBROWSE_MAX_OPEN_EPISODES"),
                          ("max_warm_contexts", "SAFEBROWSE_MAX_WARM_CONTEXTS")):
            if env.get(name):
                engine_values[key] = env[name]
        engine_overrides = overrides.pop("engine", None)
        engine = EngineConfig(**{**engine_values, **(engine_overrides or {})})  # type: ignore[arg-type]
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}, "engine": engine})


def _read_toml(path: str | Path | None) -> dict[str, Any]:
    if not path:
        return {}
    with open(path, "rb") as handle:
        return tomllib.load(handle)
