"""`safebrowse stdio`, spawned the way a desktop client spawns it, driven by the SDK's stdio client."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from engine.agent_view import EpisodeOverError

REPO = Path(__file__).resolve().parent.parent
SAFEBROWSE = str(Path(sys.executable).with_name("safebrowse"))
EXPECTED_TOOLS = {
    "observe", "click", "fill", "clear", "press", "select_option", "hover", "scroll", "drag_and_drop",
    "focus", "noop", "send_message", "tab_focus", "go_back", "ask_oracle",
}


def _params(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """`safebrowse stdio` as a desktop client starts it, with a data dir of its own (never the user's)."""
    passthrough = {key: os.environ[key] for key in ("SAFEBROWSE_CHROMIUM",) if key in os.environ}
    return StdioServerParameters(
        command=SAFEBROWSE,
        args=["stdio", "--task", "miniwob.click-test", "--seed", "1", "--data-dir", str(data_dir), *extra],
        env={**passthrough, **(env or {})},
        cwd=str(REPO),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _click_the_button(client: Client) -> tuple[str, str]:
    """Solve miniwob.click-test from the observation; returns the texts of the click and the call after it."""
    first = await client.call_tool("observe", {})
    assert not first.is_error
    page = first.structured_content
    assert page["goal"] == "Click the button." and page["step_index"] == 0
    button = next(e for e in page["elements"] if e["role"] == "button")
    clicked = await client.call_tool("click", {"id": button["id"]})
    assert not clicked.is_error
    assert clicked.structured_content["episode_over"] is True
    after = await client.call_tool("click", {"id": button["id"]})
    assert after.is_error
    return clicked.content[0].text, after.content[0].text


@pytest.mark.slow
def test_stdio_lists_the_tools_and_solves_click_test(tmp_path: Path):
    with tempfile.TemporaryFile("w+") as errlog:

        async def session() -> tuple[set[str], str, str]:
            async with Client(stdio_client(_params(tmp_path / "data"), errlog=errlog)) as client:
                assert client.server_info.name == "safebrowse"
                names = {tool.name for tool in (await client.list_tools()).tools}
                return names, *await _click_the_button(client)

        names, clicked, after = asyncio.run(session())
        errlog.seek(0)
        logs = errlog.read()
    assert names == EXPECTED_TOOLS
    assert "Episode over: no further actions are accepted." in clicked
    assert after == str(EpisodeOverError())
    assert "over stdio" in logs  # logs went to stderr, and stdout carried only the protocol


@pytest.mark.slow
def test_stdio_with_control_port_lets_a_trainer_see_the_outcome(tmp_path: Path):
    port, token = _free_port(), "ctl_" + secrets.token_urlsafe(16)
    control = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}

    async def session() -> list[dict]:
        params = _params(tmp_path / "data", "--control-port", str(port), env={"SAFEBROWSE_CONTROL_TOKEN": token})
        async with Client(stdio_client(params, errlog=sys.stderr)) as client, httpx.AsyncClient() as http:
            await _click_the_button(client)
            assert (await http.get(f"{control}/v1/episodes", timeout=30)).status_code == 401
            listed = await http.get(f"{control}/v1/episodes", headers=headers, timeout=30)
            assert listed.status_code == 200
            return listed.json()["episodes"]

    episodes = asyncio.run(session())
    assert len(episodes) == 1
    assert episodes[0]["task_id"] == "miniwob.click-test"
    assert episodes[0]["success"] is True
