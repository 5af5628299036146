"""Server settings: the one place that reads the environment and the TOML file.

`ServerSettings` is a pydantic-settings class. Each value comes from the first of:

1. a value the caller passes (the `safebrowse serve` flags);
2. a `SAFEBROWSE_*` environment variable;
3. the TOML file named by `--config` or `SAFEBROWSE_CONFIG`;
4. the embedded defaults (here and in `EngineConfig`, `OracleSettings`, `DoorLimits`).

Environment variables are `SAFEBROWSE_<FIELD>` for the fields below and
`SAFEBROWSE_<SECTION>__<FIELD>` for the sections (`SAFEBROWSE_ENGINE__WORKERS`,
`SAFEBROWSE_ORACLE__URL`, `SAFEBROWSE_MCP_LIMITS__BURST`); lists are JSON
(`SAFEBROWSE_ENGINE__CHROMIUM_ARGS='["--lang=en-US"]'`). The short names that predate
the sections (`SAFEBROWSE_WORKERS`, `SAFEBROWSE_ORACLE_URL`, ...) are listed in
`SHORT_ENV_NAMES`; when a short name and its sectioned name are both set, the
sectioned one wins.

The TOML file mirrors the fields, one table per section:

    host = "0.0.0.0"
    mcp_port = 8000

    [engine]
    workers = 4
    chromium_path = "/usr/bin/chromium"
    headless = true
    chromium_args = ["--lang=en-US"]     # appended after the engine's own flags

    [oracle]
    mode = "llm"                          # hints, llm or none
    url = "http://127.0.0.1:8080/v1"
    model = "qwen2.5-7b-instruct"

    [mcp_limits]
    burst = 100

    [cluster]                             # serve on a Ray cluster (`safebrowse serve --ray`)
    address = "auto"
    node_cpus = 2

Unknown keys and values of the wrong type are refused. `ServerSettings.from_env`
turns every such refusal, a missing file and a malformed file into one
`SettingsInputError` whose message names each setting at fault and where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from cluster.settings import ClusterSettings
from engine.config import EngineConfig
from engine.oracle import OracleSettings
from mcp_server.limits import DoorLimits

ENV_PREFIX = "SAFEBROWSE_"

# The short environment names, each with the field it sets. The other fields are read
# under their own names (SAFEBROWSE_HOST, SAFEBROWSE_MCP_PORT, SAFEBROWSE_TOKEN_FILE, ...).
SHORT_ENV_NAMES: dict[str, tuple[str, ...]] = {
    "SAFEBROWSE_CONFIG": ("config_file",),
    "SAFEBROWSE_WORKERS": ("engine", "workers"),
    "SAFEBROWSE_CHROMIUM": ("engine", "chromium_path"),
    "SAFEBROWSE_TASKS_DIR": ("engine", "extra_tasks_dir"),
    "SAFEBROWSE_IDLE_TIMEOUT_S": ("engine", "idle_timeout_s"),
    "SAFEBROWSE_MAX_OPEN_EPISODES": ("engine", "max_open_episodes"),
    "SAFEBROWSE_MAX_WARM_CONTEXTS": ("engine", "max_warm_contexts"),
    "SAFEBROWSE_ORACLE": ("oracle", "mode"),
    "SAFEBROWSE_ORACLE_URL": ("oracle", "url"),
    "SAFEBROWSE_ORACLE_MODEL": ("oracle", "model"),
    "SAFEBROWSE_ORACLE_TIMEOUT_S": ("oracle", "timeout_s"),
    "SAFEBROWSE_ORACLE_API_KEY": ("oracle", "api_key"),
    "SAFEBROWSE_RAY_ADDRESS": ("cluster", "address"),
}

# Fields whose value never appears in an error message.
SECRET_FIELDS = frozenset({"control_token", "api_key"})


class SettingsInputError(ValueError):
    """Settings that cannot be used; the message is meant for the operator, as is."""


def default_data_dir() -> Path:
    """`$XDG_STATE_HOME/safebrowse` (`~/.local/state/safebrowse`): the episode book and the token file."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "safebrowse"


def default_token_file() -> Path:
    return default_data_dir() / "control-token"


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated by `over`, section by section."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SafebrowseEnvSource(EnvSettingsSource):
    """The `SAFEBROWSE_*` variables: pydantic-settings reads the field names, this adds the short ones.

    The short names are kept away from pydantic-settings' own reading: `SAFEBROWSE_ORACLE`
    would otherwise be taken for the whole `oracle` section and parsed as JSON.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        short = {name.lower() for name in SHORT_ENV_NAMES}
        return {name: value for name, value in super()._load_env_vars().items() if name.lower() not in short}

    def __call__(self) -> dict[str, Any]:
        from_short: dict[str, Any] = {}
        for name, path in SHORT_ENV_NAMES.items():
            value = os.environ.get(name)
            if value:
                *sections, field = path
                table = from_short
                for section in sections:
                    table = table.setdefault(section, {})
                table[field] = value
        return _merge(from_short, super().__call__())


class ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML file named by the sources above it: the caller's `config_file`, or `SAFEBROWSE_CONFIG`.

    A named file that is missing or malformed is an error: silently running on defaults
    would hide a typo in a path.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole file is read at once, in __call__

    def __call__(self) -> dict[str, Any]:
        named = self.current_state.get("config_file")
        if not named:
            return {}
        path = Path(named)
        if not path.is_file():
            raise SettingsInputError(f"the config file {path} does not exist (named by --config or SAFEBROWSE_CONFIG).")
        try:
            values = TomlConfigSettingsSource(self.settings_cls, toml_file=path)()
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as error:
            raise SettingsInputError(f"the config file {path} cannot be read as TOML: {error}.") from None
        if "config_file" in values:
            raise SettingsInputError(f"the config file {path} sets config_file; name the file with --config "
                                     "or SAFEBROWSE_CONFIG instead.")
        return values


class ServerSettings(BaseSettings):
    """Everything `safebrowse serve` needs; see the module docstring for where each value comes from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_ignore_empty=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Public (agent) host for the MCP door.")
    mcp_port: int = Field(default=8000, ge=0, le=65535)
    control_host: str = Field(default="127.0.0.1", description="Private (trainer) host for the control API.")
    control_port: int = Field(default=8001, ge=0, le=65535)
    control_token: str | None = Field(default=None, description="Generated at start when unset.")
    token_file: Path = Field(default_factory=default_token_file)
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the episode book (book.sqlite3) and recorded media are kept; one server per dir.")
    book_max_episodes: int = Field(
        default=1_000, ge=1, le=10_000_000,
        description="Closed episodes the book keeps (newest); older ones are removed with their media.")
    book_max_age_days: float | None = Field(
        default=None, gt=0, description="Closed episodes created longer ago than this are removed (off when unset).")
    book_max_media_episodes: int = Field(
        default=100, ge=0, le=10_000_000,
        description="Closed episodes that keep their recorded screenshots and observation texts (newest).")
    book_max_mb: float | None = Field(
        default=None, gt=0,
        description="Size cap of the book's database file in MB: steps past it are refused as on a full disk.")
    public_mcp_url: str | None = Field(default=None, description="The MCP URL handed to agents; derived when unset.")
    config_file: Path | None = Field(default=None, description="The TOML file read under the environment, if any.")
    engine: EngineConfig = Field(default_factory=EngineConfig)
    oracle: OracleSettings = Field(default_factory=OracleSettings, description="The ask_oracle back-end.")
    mcp_limits: DoorLimits = Field(default_factory=DoorLimits, description="Rate and capacity bounds of the MCP door.")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings,
                                     description="Browser nodes on a Ray cluster (`cluster.address` set).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Caller's values, then the environment, then the TOML file (defaults come last by themselves).

        No `.env` file and no secrets directory: an operator's settings live in one visible place.
        """
        return init_settings, SafebrowseEnvSource(settings_cls), ConfigFileSource(settings_cls)

    @classmethod
    def from_env(cls, config_file: str | Path | None = None, **overrides: object) -> ServerSettings:
        """Settings as the command line builds them; an override of None means "not given".

        `engine`, `oracle`, `mcp_limits` and `cluster` overrides may be dicts of some of their fields:
        the rest still comes from the environment, the file and the defaults.
        Raises `SettingsInputError` on any bad input, with a message for the operator.
        """
        given: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
        if config_file is not None:
            given["config_file"] = config_file
        try:
            return cls(**given)
        except ValidationError as error:
            raise SettingsInputError(describe_errors(error, given)) from None
        except SettingsError as error:
            raise SettingsInputError(f"invalid settings: {error}; a section given whole in one "
                                     "SAFEBROWSE_* variable must be a JSON object.") from None


def describe_errors(error: ValidationError, given: Mapping[str, Any]) -> str:
    """One paragraph: each setting at fault, where its value came from, and what is wrong with it."""
    problems = []
    for item in error.errors():
        location = tuple(str(part) for part in item["loc"])
        name = ".".join(location) or "settings"
        value = item.get("input")
        shown = ""
        if isinstance(value, (str, int, float, bool)) and not SECRET_FIELDS & set(location):
            shown = f" (got {value!r})"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name} from {_origin(location, given)}: {message}{shown}")
    return "invalid settings: " + "; ".join(problems) + "."


def _origin(location: tuple[str, ...], given: Mapping[str, Any]) -> str:
    """Where the value at `location` came from, by the same precedence the settings use."""
    table: object = given
    for part in location:
        table = table.get(part) if isinstance(table, Mapping) else None
    if table is not None:
        return "the command line"
    sectioned = ENV_PREFIX + "__".join(location).upper()
    names = [name for name in os.environ
             if os.environ[name] and (name.upper() == sectioned or name.upper().startswith(sectioned + "__"))]
    names += [name for name, path in SHORT_ENV_NAMES.items()
              if os.environ.get(name) and path[: len(location)] == location]
    if names:
        return ", ".join(sorted(set(names)))
    config_file = given.get("config_file") or os.environ.get("SAFEBROWSE_CONFIG")
    if config_file:
        return f"the config file {config_file}"
    return "the defaults"
