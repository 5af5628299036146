"""Server settings from flags, `SAFEBROWSE_*` variables, a TOML file and the defaults.

Real environment variables (monkeypatch.setenv) and real files in tmp_path; the bad-input
cases also run the installed `safebrowse serve` command, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.config import find_chromium
from engine.oracle import HintsOracle, LLMOracle, build_oracle_factory
from safebrowse.settings import SHORT_ENV_NAMES, ServerSettings, SettingsInputError
from tasks import default_registry

SAFEBROWSE = Path(sys.executable).parent / "safebrowse"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the SAFEBROWSE_* variables it sets itself."""
    for name in list(os.environ):
        if name.upper().startswith("SAFEBROWSE_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "safebrowse.toml"
    path.write_text(text)
    return path


# -- precedence ------------------------------------------------------------------------------------


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_toml(tmp_path, "mcp_port = 9100\ncontrol_port = 9101\nhost = '0.0.0.0'\n"
                                  "[engine]\nworkers = 3\nidle_timeout_s = 60\nmax_open_episodes = 7\n")
    monkeypatch.setenv("SAFEBROWSE_MCP_PORT", "9200")
    monkeypatch.setenv("SAFEBROWSE_CONTROL_PORT", "9201")
    monkeypatch.setenv("SAFEBROWSE_WORKERS", "5")
    settings = ServerSettings.from_env(config_file=config, mcp_port=9300, engine={"max_open_episodes": 9})
    assert settings.mcp_port == 9300                 # flag over environment and file
    assert settings.control_port == 9201             # environment over file
    assert settings.host == "0.0.0.0"                # file over default
    assert settings.control_host == "127.0.0.1"      # default
    assert settings.engine.max_open_episodes == 9    # an engine flag over the file ...
    assert settings.engine.workers == 5              # ... leaves the environment's engine values
    assert settings.engine.idle_timeout_s == 60      # ... and the file's
    assert settings.engine.max_warm_contexts == 4    # ... and the defaults in place
    assert settings.config_file == config


def test_flags_not_given_leave_the_rest_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_HOST", "0.0.0.0")
    settings = ServerSettings.from_env(host=None, mcp_port=None, engine={})
    assert settings.host == "0.0.0.0" and settings.mcp_port == 8000


def test_defaults_without_any_input() -> None:
    settings = ServerSettings()
    assert (settings.host, settings.mcp_port, settings.control_port) == ("127.0.0.1", 8000, 8001)
    assert settings.config_file is None and settings.control_token is None
    assert settings.engine.chromium_args == [] and settings.engine.headless is True
    assert settings.oracle.mode == "hints"


def test_config_file_named_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = write_toml(tmp_path, "mcp_port = 9100\n")
    monkeypatch.setenv("SAFEBROWSE_CONFIG", str(named))
    assert ServerSettings().mcp_port == 9100
    other = tmp_path / "other.toml"
    other.write_text("mcp_port = 9500\n")
    assert ServerSettings.from_env(config_file=other).mcp_port == 9500  # --config over SAFEBROWSE_CONFIG


# -- environment names ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "path", "expected"), [
    ("SAFEBROWSE_HOST", "0.0.0.0", ("host",), "0.0.0.0"),
    ("SAFEBROWSE_MCP_PORT", "8100", ("mcp_port",), 8100),
    ("SAFEBROWSE_CONTROL_HOST", "10.0.0.2", ("control_host",), "10.0.0.2"),
    ("SAFEBROWSE_CONTROL_PORT", "8101", ("control_port",), 8101),
    ("SAFEBROWSE_CONTROL_TOKEN", "ctl_secret", ("control_token",), "ctl_secret"),
    ("SAFEBROWSE_PUBLIC_MCP_URL", "http://agents.example:8000/mcp", ("public_mcp_url",), "http://agents.example:8000/mcp"),
    ("SAFEBROWSE_TOKEN_FILE", "/run/safebrowse/token", ("token_file",), Path("/run/safebrowse/token")),
    ("SAFEBROWSE_WORKERS", "3", ("engine", "workers"), 3),
    ("SAFEBROWSE_CHROMIUM", "/opt/chromium/chrome", ("engine", "chromium_path"), "/opt/chromium/chrome"),
    ("SAFEBROWSE_TASKS_DIR", "/srv/tasks", ("engine", "extra_tasks_dir"), "/srv/tasks"),
    ("SAFEBROWSE_IDLE_TIMEOUT_S", "30.5", ("engine", "idle_timeout_s"), 30.5),
    ("SAFEBROWSE_MAX_OPEN_EPISODES", "12", ("engine", "max_open_episodes"), 12),
    ("SAFEBROWSE_MAX_WARM_CONTEXTS", "0", ("engine", "max_warm_contexts"), 0),
    ("SAFEBROWSE_ORACLE", "None", ("oracle", "mode"), "none"),
    ("SAFEBROWSE_ORACLE_URL", "http://127.0.0.1:9/v1", ("oracle", "url"), "http://127.0.0.1:9/v1"),
    ("SAFEBROWSE_ORACLE_MODEL", "qwen", ("oracle", "model"), "qwen"),
    ("SAFEBROWSE_ORACLE_TIMEOUT_S", "2.5", ("oracle", "timeout_s"), 2.5),
    ("SAFEBROWSE_ORACLE_API_KEY", "sk-local", ("oracle", "api_key"), "sk-local"),
    ("SAFEBROWSE_RAY_ADDRESS", "10.0.0.5:6379", ("cluster", "address"), "10.0.0.5:6379"),
    ("SAFEBROWSE_CLUSTER__NODE_CPUS", "2.5", ("cluster", "node_cpus"), 2.5),
    ("SAFEBROWSE_CLUSTER__NODE_RESOURCE", "browser", ("cluster", "node_resource"), "browser"),
])
def test_every_documented_variable_sets_its_field(monkeypatch: pytest.MonkeyPatch, name: str, raw: str,
                                                  path: tuple[str, ...], expected: object) -> None:
    monkeypatch.setenv(name, raw)
    value: object = ServerSettings()
    for part in path:
        value = getattr(value, part)
    assert value == expected


def test_the_episode_book_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    defaults = ServerSettings()
    assert defaults.data_dir == tmp_path / "state" / "safebrowse" == defaults.token_file.parent
    assert (defaults.book_max_episodes, defaults.book_max_age_days) == (1_000, None)
    assert (defaults.book_max_media_episodes, defaults.book_max_mb) == (100, None)
    monkeypatch.setenv("SAFEBROWSE_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SAFEBROWSE_BOOK_MAX_AGE_DAYS", "30")
    config = write_toml(tmp_path, 'data_dir = "/from/file"\nbook_max_episodes = 50\n')
    settings = ServerSettings.from_env(config_file=config)
    assert settings.data_dir == tmp_path / "from-env" and settings.book_max_age_days == 30
    assert settings.book_max_episodes == 50
    assert ServerSettings.from_env(data_dir=str(tmp_path / "flag")).data_dir == tmp_path / "flag"
    assert "book_max_episodes" in refusal(config_file=write_toml(tmp_path, "book_max_episodes = 0\n"))


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_MCP_PORT", "")
    monkeypatch.setenv("SAFEBROWSE_WORKERS", "")
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "")
    settings = ServerSettings()
    assert settings.mcp_port == 8000 and settings.engine.workers >= 1 and settings.oracle.mode == "hints"


def test_sectioned_names_reach_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_ENGINE__WORKERS", "2")
    monkeypatch.setenv("SAFEBROWSE_ENGINE__HEADLESS", "false")
    monkeypatch.setenv("SAFEBROWSE_ENGINE__CHROMIUM_ARGS", '["--lang=en-US", "--force-dark-mode"]')
    monkeypatch.setenv("SAFEBROWSE_ORACLE__MODE", "llm")
    monkeypatch.setenv("SAFEBROWSE_ORACLE__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SAFEBROWSE_MCP_LIMITS__BURST", "7")
    settings = ServerSettings()
    assert settings.engine.workers == 2 and settings.engine.headless is False
    assert settings.engine.chromium_args == ["--lang=en-US", "--force-dark-mode"]
    assert (settings.oracle.mode, settings.oracle.url) == ("llm", "http://127.0.0.1:9")
    assert settings.mcp_limits.burst == 7


def test_sectioned_name_beats_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_WORKERS", "3")
    monkeypatch.setenv("SAFEBROWSE_ENGINE__WORKERS", "2")
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "none")
    monkeypatch.setenv("SAFEBROWSE_ORACLE__MODE", "hints")
    settings = ServerSettings()
    assert settings.engine.workers == 2 and settings.oracle.mode == "hints"


def test_short_names_point_at_real_fields() -> None:
    """A table entry naming a field that does not exist would be refused at start, not ignored."""
    for name, path in SHORT_ENV_NAMES.items():
        model: Any = ServerSettings
        for part in path:
            assert part in model.model_fields, (name, path)
            model = model.model_fields[part].annotation


# -- TOML sections -------------------------------------------------------------------------------


def test_oracle_and_chromium_options_from_the_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path, """
[engine]
chromium_path = "/usr/bin/chromium"
headless = false
chromium_args = ["--lang=fr-FR"]

[oracle]
mode = "llm"
url = "http://127.0.0.1:9/v1"
model = "qwen2.5"
timeout_s = 4
api_key = "sk-local"

[mcp_limits]
max_in_flight = 32
""")
    settings = ServerSettings.from_env(config_file=config)
    engine, oracle = settings.engine, settings.oracle
    assert (engine.chromium_path, engine.headless) == ("/usr/bin/chromium", False)
    assert engine.chromium_args == ["--lang=fr-FR"]
    assert (oracle.mode, oracle.url, oracle.model, oracle.timeout_s, oracle.api_key) == (
        "llm", "http://127.0.0.1:9/v1", "qwen2.5", 4.0, "sk-local")
    assert settings.mcp_limits.max_in_flight == 32
    spec = default_registry().get("custom.login-form")
    assert isinstance(build_oracle_factory(oracle)(spec), LLMOracle)


def test_environment_overrides_one_key_of_a_file_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_toml(tmp_path, '[oracle]\nmode = "llm"\nurl = "http://127.0.0.1:9"\nmodel = "qwen"\n')
    monkeypatch.setenv("SAFEBROWSE_ORACLE", "hints")
    settings = ServerSettings.from_env(config_file=config)
    assert (settings.oracle.mode, settings.oracle.model) == ("hints", "qwen")
    assert isinstance(build_oracle_factory(settings.oracle)(default_registry().get("custom.login-form")), HintsOracle)


def test_find_chromium_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_CHROMIUM", "/nonexistent/chromium")
    assert Path(find_chromium()).exists()  # the variable reaches Chromium only through the settings
    assert ServerSettings().engine.chromium_path == "/nonexistent/chromium"
    with pytest.raises(FileNotFoundError, match="/nonexistent/chromium"):
        find_chromium(ServerSettings().engine.chromium_path)


# -- bad input -----------------------------------------------------------------------------------


def refusal(**kwargs: object) -> str:
    with pytest.raises(SettingsInputError) as caught:
        ServerSettings.from_env(**kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_WORKERS", "abc")
    message = refusal()
    assert "engine.workers" in message and "SAFEBROWSE_WORKERS" in message and "'abc'" in message


def test_unknown_and_mistyped_file_keys_are_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path, '[engine]\nworkerz = 2\nidle_timeout_s = "soon"\n')
    message = refusal(config_file=config)
    assert "engine.workerz" in message and "Extra inputs are not permitted" in message
    assert "engine.idle_timeout_s" in message and str(config) in message
    assert "unknown_top_level" in refusal(config_file=write_toml(tmp_path, "unknown_top_level = 1\n"))


def test_missing_and_malformed_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "absent.toml"
    assert f"{missing} does not exist" in refusal(config_file=missing)
    monkeypatch.setenv("SAFEBROWSE_CONFIG", str(missing))
    assert f"{missing} does not exist" in refusal()
    monkeypatch.delenv("SAFEBROWSE_CONFIG")
    assert "cannot be read as TOML" in refusal(config_file=write_toml(tmp_path, "[engine\nworkers = 2\n"))


def test_a_flag_out_of_range_is_refused() -> None:
    message = refusal(engine={"workers": 0})
    assert "engine.workers from the command line" in message


def test_chromium_arguments_that_undo_the_network_defence_are_refused(tmp_path: Path) -> None:
    resolver = write_toml(tmp_path, '[engine]\nchromium_args = ["--host-resolver-rules=MAP * 127.0.0.1"]\n')
    assert "--host-resolver-rules is not allowed" in refusal(config_file=resolver)
    bare = write_toml(tmp_path, '[engine]\nchromium_args = ["http://example.com"]\n')
    assert "must start with '--'" in refusal(config_file=bare)


def test_an_llm_oracle_without_url_is_refused(tmp_path: Path) -> None:
    message = refusal(config_file=write_toml(tmp_path, '[oracle]\nmode = "llm"\napi_key = "sk-hidden"\n'))
    assert "oracle from the config file" in message and "needs SAFEBROWSE_ORACLE_URL" in message
    assert "sk-hidden" not in message  # secrets are never echoed


def test_a_malformed_json_section_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEBROWSE_ENGINE", "{not json")
    assert "engine" in refusal()


@pytest.mark.parametrize(("env", "toml", "expected"), [
    ({}, "[engine]\nworkerz = 2\n", "engine.workerz"),
    ({"SAFEBROWSE_WORKERS": "abc"}, None, "SAFEBROWSE_WORKERS"),
    ({}, "[oracle]\ntimeout_s = 'soon'\n", "oracle.timeout_s"),
])
def test_serve_exits_with_one_clear_paragraph(tmp_path: Path, env: dict[str, str], toml: str | None,
                                              expected: str) -> None:
    args = [str(SAFEBROWSE), "serve", "--port", "0", "--control-port", "0"]
    if toml is not None:
        args += ["--config", str(write_toml(tmp_path, toml))]
    environment = {key: value for key, value in os.environ.items() if not key.upper().startswith("SAFEBROWSE_")}
    result = subprocess.run(args, capture_output=True, text=True, timeout=30,
                            env={**environment, **env, "XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "invalid settings" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "safebrowse" / "control-token").exists()  # nothing started


def test_serve_refuses_a_missing_config_file(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.upper().startswith("SAFEBROWSE_")}
    result = subprocess.run([str(SAFEBROWSE), "serve", "--config", str(tmp_path / "absent.toml")],
                            capture_output=True, text=True, timeout=30, env=environment)
    assert result.returncode == 2
    assert "absent.toml does not exist" in result.stderr and "Traceback" not in result.stderr
